"""Scene files open in any HDF5 build: plain h5py in a process that never loads hdf5plugin reads them.

Also: files of schema 1 (Blosc everywhere) still read here, with the same content hash.
"""
import hashlib
import json
import subprocess
import sys

import h5py
import hdf5plugin
import numpy as np

from nfs_synth.commands.validate import schema_problems
from nfs_synth.corpus.events_io import read_events
from nfs_synth.corpus.scene_file import SceneReader, content_hash
from nfs_synth.corpus.schema import datasets, parts_written

STOCK_READER = r"""
import hashlib, json, os, sys
import h5py
digests = {}
with h5py.File(sys.argv[1], "r") as h5:
    for name in json.loads(sys.argv[2]):
        digests[name] = hashlib.sha256(h5[name][()].tobytes()).hexdigest()
assert "hdf5plugin" not in sys.modules
print(json.dumps(digests))
"""


def test_every_dataset_reads_without_hdf5plugin(reference, tmp_path):
    path = sorted((reference[0] / "scenes").glob("scene_*.h5"))[0]
    with h5py.File(path, "r") as h5:
        names = [name for name, _ in datasets(*parts_written(json.loads(h5.attrs["recipe_json"])))]
    no_plugins = tmp_path / "no-plugins"        # HDF5 looks for filter plugins here and finds none
    no_plugins.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HDF5_PLUGIN_PATH": str(no_plugins)}
    run = subprocess.run([sys.executable, "-c", STOCK_READER, str(path), json.dumps(names)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    with h5py.File(path, "r") as h5:
        expected = {n: hashlib.sha256(h5[n][()].tobytes()).hexdigest() for n in names}
    assert json.loads(run.stdout) == expected


def test_schema_1_blosc_files_still_read(reference, tmp_path):
    """A file rewritten as schema 1 stored it (Blosc zstd on every array) holds the same data."""
    src = sorted((reference[0] / "scenes").glob("scene_*.h5"))[0]
    old = tmp_path / "scene_00000.h5"
    blosc = dict(hdf5plugin.Blosc(cname="zstd", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))
    with h5py.File(src, "r") as a, h5py.File(old, "w") as b:
        b.attrs.update(a.attrs)

        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                b.require_group(name).attrs.update(obj.attrs)
            else:
                opts = dict(chunks=obj.chunks, maxshape=obj.maxshape, **blosc) if obj.chunks else {}
                b.create_dataset(name, data=obj[()], **opts).attrs.update(obj.attrs)
        a.visititems(copy)
        b.attrs["schema_version"] = 1
    with h5py.File(old, "r") as h5:
        assert "32001" in h5["frames"]._filters and "32001" in h5["spikes/packed"]._filters
    with SceneReader(src) as new_scene, SceneReader(old) as old_scene:
        np.testing.assert_array_equal(old_scene.frame(3), new_scene.frame(3))
    np.testing.assert_array_equal(read_events(old), read_events(src))
    with h5py.File(src, "r") as h5:
        entry = {"frames": h5["frames"].shape[0], "height": h5["frames"].shape[1], "width": h5["frames"].shape[2],
                 "events": h5["events/t"].shape[0], "spike_steps": h5["spikes/t_us"].shape[0],
                 "index": int(h5.attrs["scene_index"])}
    with h5py.File(old, "r") as h5:
        assert schema_problems(h5, entry) == []
    with h5py.File(old, "r+") as h5:       # the hash covers the data, not its storage
        h5.attrs["schema_version"] = 2
    assert content_hash(old) == content_hash(src)
