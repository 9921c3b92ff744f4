"""A tiny corpus shared by the orchestration, validation and study tests (both sensors on)."""
import json
import shutil

import pytest

from nfs_synth.cli import generate_main
from nfs_synth.recipe import load_recipe

# Every primitive kind, smooth-shaded ones included: bit-identical data across processes is the point.
TINY = ["camera.width=32", "camera.height=32", "sweep.frames=5", "sweep.duration_s=0.05",
        "render.samples=1", "corpus.scenes=4"]
ARGS = [a for item in TINY for a in ("--set", item)] + ["--no-progress"]


def tiny_recipe() -> dict:
    return load_recipe(None, TINY)


def generate(out, *extra) -> int:
    return generate_main([*ARGS, "--out", str(out), *map(str, extra)])


def hashes(out) -> dict[int, str]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {e["index"]: e.get("sha256") for e in manifest["scenes"]}


_made = {}      # test modules import the fixture, so each has its own: make the corpus once


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """One render worker, recycled every 2 scenes: (corpus folder, telemetry of every scene)."""
    from nfs_synth.orchestrate import generate_corpus
    from nfs_synth.workers import LocalPool, Policy

    if not _made:
        out = tmp_path_factory.mktemp("reference")
        telemetry = []
        with LocalPool(1) as pool:
            generate_corpus(tiny_recipe(), out, pool=pool, policy=Policy(max_units=2), progress=False,
                            telemetry=telemetry)
        _made["reference"] = out, telemetry
    return _made["reference"]


@pytest.fixture
def reference_copy(reference, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(reference[0], out)
    return out
