"""The README's recipe reference and scene-file table are generated from the schemas: keep them in step."""
from pathlib import Path

from nfs_synth.corpus import schema
from nfs_synth.scene.recipe import reference_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_recipe_reference_is_current():
    assert reference_markdown() in README.read_text(), \
        "README recipe reference is stale: paste the output of `python -m nfs_synth.scene.recipe`"


def test_scene_file_format_is_current():
    assert schema.reference_markdown() in README.read_text(), \
        "README scene-file table is stale: paste the output of `python -m nfs_synth.corpus.schema`"
