"""The check that a scene file follows the schema to the last chunk and filter, shared by the tests of the
reference corpus and of the optional parts (the RGB camera)."""
import json

import h5py

from nfs_synth.corpus.schema import ROOT_ATTR_NAMES, WALL_CLOCK_ATTRS, Blosc, Deflate, datasets, parts_written
from nfs_synth.sensors.rgb_camera import capture_count


def stored_as(ds: h5py.Dataset, spec_filter) -> bool:
    """Whether `ds` carries the filter the schema names (and no other compression)."""
    if isinstance(spec_filter, Deflate):
        return (ds.compression, ds.compression_opts, ds.shuffle) == ("gzip", spec_filter.level, True)
    if isinstance(spec_filter, Blosc):   # hdf5plugin's registered id; level, shuffle, compressor last
        return ds._filters.get("32001", ())[-3:] == spec_filter.kwargs()["compression_opts"][-3:]
    return ds.compression is None and not ds.shuffle and set(ds._filters) <= {"fletcher32"}


def assert_follows_schema(h5: h5py.File) -> None:
    """Exactly the datasets of the parts its recipe writes, each with the schema's dtype, shape, chunks and
    filter; only the schema's root attributes."""
    recipe = json.loads(h5.attrs["recipe_json"])
    parts = parts_written(recipe)
    t, h, w, _ = h5["frames"].shape
    sizes = {"T": t, "H": h, "W": w}
    if "events" in parts:
        sizes |= {"N": h5["events/t"].shape[0], "M": h5["ms_to_idx"].shape[0]}
    if "spikes" in parts:
        sizes["S"] = h5["spikes/t_us"].shape[0]
    if "rgb" in parts:
        rgb = recipe["rgb_camera"]
        sizes |= {"s": rgb["scale"], "C": capture_count(t, rgb["exposure_frames"])}
    names = []
    h5.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    assert sorted(names) == sorted(name for name, _ in datasets(*parts))
    for name, spec in datasets(*parts):
        ds = h5[name]
        assert (ds.dtype, ds.shape) == (spec.dtype, spec.shape_for(**sizes)), name
        if spec.chunks:
            assert ds.chunks == spec.chunks_for(**sizes), name
        if spec.filter and ds.size > 16:     # tiny arrays are stored unfiltered
            assert stored_as(ds, spec.filter), (name, ds._filters)
            assert spec.filter.builtin, name
    assert set(h5.attrs) <= ROOT_ATTR_NAMES and WALL_CLOCK_ATTRS <= set(h5.attrs)
