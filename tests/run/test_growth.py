"""A corpus grows: raising corpus.scenes adds scenes, keeps the others and their splits, and equals a
fresh corpus of the new size; every other recipe change is still refused."""
import json

import pytest

from nfs_synth.corpus.manifest import SPLITS, split_of
from nfs_synth.scene.recipe import load_recipe
from tiny_corpus import generate, hashes


def splits(out) -> dict[int, str]:
    return {e["index"]: e["split"] for e in json.loads((out / "manifest.json").read_text())["scenes"]}


def test_raising_corpus_scenes_adds_scenes_and_keeps_the_others(reference, tmp_path, capsys):
    out = tmp_path / "corpus"
    assert generate(out, "--set", "corpus.scenes=2") == 0
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "scenes").glob("*.h5")}
    assert generate(out) == 0                                          # the tiny recipe: 4 scenes
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in (out / "scenes").glob("*.h5") if p.name in kept} == kept      # not made again
    assert hashes(out) == hashes(reference[0]) and splits(out) == splits(reference[0])
    capsys.readouterr()
    assert generate(out, "--set", "corpus.scenes=3") == 2
    assert "would shrink it" in capsys.readouterr().err
    assert generate(out, "--set", "corpus.scenes=5", "--set", "sensors.spikes.readout_hz=1000") == 2
    err = capsys.readouterr().err
    assert "made from another recipe" in err and "sensors.spikes.readout_hz" in err


@pytest.mark.parametrize("fractions", [(0.5, 0.25, 0.25), (0.8, 0.1, 0.1), (0.7, 0.0, 0.3), (0.34, 0.33, 0.33)])
def test_splits_of_every_prefix_are_within_one_scene_of_the_fractions(fractions):
    recipe = load_recipe(None, ["corpus.scenes=400", *(f"corpus.splits.{s}={f}" for s, f in zip(SPLITS, fractions))])
    labels = split_of(recipe)
    for n in range(1, 401):
        for name, fraction in zip(SPLITS, fractions):
            assert abs(labels[:n].count(name) - fraction * n) < 1, (n, name)
    assert split_of(load_recipe(None, ["corpus.scenes=40", *(f"corpus.splits.{s}={f}"
                                       for s, f in zip(SPLITS, fractions))])) == labels[:40]
