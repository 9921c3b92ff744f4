"""Sensor studies re-simulate stored renders: no Blender, no copied frames, provenance recorded."""
import json
import shutil

import h5py
import hdf5plugin  # noqa: F401
import numpy as np

from nfs_synth.cli import main


def test_two_point_study(reference, tmp_path, monkeypatch):
    corpus = reference[0]
    poison = tmp_path / "poison"                 # render workers that import Blender would fail
    poison.mkdir()
    (poison / "bpy.py").write_text("raise ImportError('a sensor study must not render')\n")
    monkeypatch.setenv("PYTHONPATH", str(poison))
    study = tmp_path / "study"
    args = ["simulate", str(corpus), "--into", str(study), "--set", "sensors.events.k1=4.0,5.5",
            "--workers", "2", "--no-progress"]
    assert main(args) == 0
    source = {e["index"]: e for e in json.loads((corpus / "manifest.json").read_text())["scenes"]}
    low, high = ({e["index"]: e for e in json.loads((study / v / "manifest.json").read_text())["scenes"]}
                 for v in ("v000", "v001"))
    assert sorted(low) == sorted(high) == sorted(source)
    for i, entry in source.items():
        assert high[i]["events"] > low[i]["events"] > 0           # larger k1: lower threshold, more events
        path = study / "v001" / high[i]["file"]
        with h5py.File(path, "r") as h5, h5py.File(corpus / entry["file"], "r") as src:
            assert isinstance(h5.get("frames", getlink=True), h5py.ExternalLink)   # linked, not copied
            assert np.array_equal(h5["frames"][()], src["frames"][()])
            assert h5["events"].attrs["k1"] == 5.5
            assert json.loads(h5.attrs["study_params_json"]) == {"sensors.events.k1": 5.5}
            assert h5.attrs["source_sha256"] == entry["sha256"]
            assert (path.parent / h5.attrs["source_file"]).resolve() == (corpus / entry["file"]).resolve()
            assert isinstance(h5.get("spikes", getlink=True), h5py.ExternalLink)   # k1 leaves spikes alone
            assert np.array_equal(h5["spikes/packed"][()], src["spikes/packed"][()])
        assert path.stat().st_size < (corpus / entry["file"]).stat().st_size
    assert main(["validate", str(study / "v000"), "--no-progress"]) == 0
    assert main(args) == 0                                         # re-run: nothing left to do
    assert json.loads((study / "study.json").read_text())["grid"] == {"sensors.events.k1": [4.0, 5.5]}


def test_study_rejects_non_sensor_keys(reference, tmp_path):
    study = tmp_path / "study"
    assert main(["simulate", str(reference[0]), "--into", str(study), "--set", "render.samples=4,8"]) == 2
    assert main(["simulate", str(reference[0]), "--into", str(study), "--set", "sensors.events.k1=-1"]) == 2
    assert not study.exists()


def test_study_refuses_its_source_and_damaged_sources(reference, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    shutil.copytree(reference[0], corpus)
    before = sorted(corpus.rglob("*"))
    grid = ["--set", "sensors.events.k1=4.0", "--no-progress"]
    assert main(["simulate", str(corpus), "--into", str(corpus), *grid]) == 2
    assert "would write the study into the source corpus" in capsys.readouterr().err
    (corpus / "scenes" / "scene_00002.h5").write_bytes(b"not hdf5")    # refused once, not retried per variant
    assert main(["simulate", str(corpus), "--into", str(tmp_path / "study"), *grid]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: source scene file ") and "scene_00002.h5: " in err and err.count("\n") == 1
    assert sorted(corpus.rglob("*")) == before and not (tmp_path / "study").exists()


def test_copy_makes_self_contained_variants_equal_to_linked_ones(reference, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    shutil.copytree(reference[0], corpus)
    grid = ["--set", "sensors.spikes.readout_hz=10000", "--no-progress"]      # a spike-only grid
    assert main(["simulate", str(corpus), "--into", str(tmp_path / "linked"), *grid]) == 0
    assert main(["simulate", str(corpus), "--into", str(tmp_path / "copied"), "--copy", *grid]) == 0
    linked, copied = (sorted((tmp_path / s / "v000" / "scenes").glob("*.h5")) for s in ("linked", "copied"))
    for a, b in zip(linked, copied, strict=True):
        with h5py.File(a, "r") as la, h5py.File(b, "r") as cb:
            assert isinstance(la.get("events", getlink=True), h5py.ExternalLink)
            assert not any(isinstance(cb.get(n, getlink=True), h5py.ExternalLink) for n in cb)
            names = []
            cb.visit(names.append)
            for name in (n for n in names if isinstance(cb[n], h5py.Dataset)):
                assert np.array_equal(la[name][()], cb[name][()]), name
            assert cb["spikes"].attrs["readout_hz"] == 10000
        assert a.stat().st_size < b.stat().st_size
    shutil.move(corpus, tmp_path / "moved")                      # the links now dangle; the copies do not care
    assert main(["validate", str(tmp_path / "copied" / "v000"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["validate", str(tmp_path / "linked" / "v000"), "--no-progress"]) == 1
    assert "links to ../../../corpus/scenes/scene_00000.h5, which does not resolve" in capsys.readouterr().out
