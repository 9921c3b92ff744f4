"""The schema describes the files the pipeline writes: every dataset's dtype, shape, chunks and filter."""
import h5py

from nfs_synth.corpus.schema import (DEFAULT_EVENT_COMPRESSION, EVENT_FILTERS, ROOT_ATTR_NAMES, WALL_CLOCK_ATTRS,
                                     Blosc, Deflate, datasets)
from nfs_synth.scene.recipe import SCHEMA


def stored_as(ds: h5py.Dataset, spec_filter) -> bool:
    """Whether `ds` carries the filter the schema names (and no other compression)."""
    if isinstance(spec_filter, Deflate):
        return (ds.compression, ds.compression_opts, ds.shuffle) == ("gzip", spec_filter.level, True)
    if isinstance(spec_filter, Blosc):   # hdf5plugin's registered id; level, shuffle, compressor last
        return ds._filters.get("32001", ())[-3:] == spec_filter.kwargs()["compression_opts"][-3:]
    return ds.compression is None and not ds.shuffle and set(ds._filters) <= {"fletcher32"}


def test_rendered_scene_files_follow_the_schema(reference):
    out, _ = reference
    for path in sorted((out / "scenes").glob("scene_*.h5")):
        with h5py.File(path, "r") as h5:
            t, h, w, _ = h5["frames"].shape
            sizes = {"T": t, "H": h, "W": w, "N": h5["events/t"].shape[0], "M": h5["ms_to_idx"].shape[0],
                     "S": h5["spikes/t_us"].shape[0]}
            names = []
            h5.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
            assert sorted(names) == sorted(name for name, _ in datasets())
            for name, spec in datasets():
                ds = h5[name]
                assert (ds.dtype, ds.shape) == (spec.dtype, spec.shape_for(**sizes)), name
                if spec.chunks:
                    assert ds.chunks == spec.chunks_for(**sizes), name
                if spec.filter and ds.size > 16:     # tiny arrays are stored unfiltered
                    assert stored_as(ds, spec.filter), (name, ds._filters)
                    assert spec.filter.builtin, name
            assert set(h5.attrs) <= ROOT_ATTR_NAMES and WALL_CLOCK_ATTRS <= set(h5.attrs)


def test_event_compression_choices_are_the_schemas():
    key = SCHEMA["corpus"]["event_compression"]
    assert set(key.choices) == set(EVENT_FILTERS) and key.default == DEFAULT_EVENT_COMPRESSION
