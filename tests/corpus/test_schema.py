"""The schema describes the files the pipeline writes: every dataset's dtype, shape, chunks and filter."""
import h5py
from schema_checks import assert_follows_schema

from nfs_synth.corpus.schema import DEFAULT_EVENT_COMPRESSION, EVENT_FILTERS
from nfs_synth.scene.recipe import SCHEMA


def test_rendered_scene_files_follow_the_schema(reference):
    out, _ = reference
    for path in sorted((out / "scenes").glob("scene_*.h5")):
        with h5py.File(path, "r") as h5:
            assert_follows_schema(h5)


def test_event_compression_choices_are_the_schemas():
    key = SCHEMA["corpus"]["event_compression"]
    assert set(key.choices) == set(EVENT_FILTERS) and key.default == DEFAULT_EVENT_COMPRESSION
