"""The schema describes the files the pipeline writes: every dataset's dtype, shape, chunks and filter."""
import h5py

from nfs_synth.corpus.schema import ROOT_ATTR_NAMES, WALL_CLOCK_ATTRS, datasets


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
                if spec.filter:      # Blosc keeps level, shuffle and compressor in its last three options
                    expected = spec.filter.kwargs()
                    assert ds._filters[str(expected["compression"])][-3:] == expected["compression_opts"][-3:], name
            assert set(h5.attrs) <= ROOT_ATTR_NAMES and WALL_CLOCK_ATTRS <= set(h5.attrs)
