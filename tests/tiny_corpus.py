"""The tiny corpus that the orchestration, validation, study and CLI tests share (both sensors on);
its session-wide fixtures are in conftest.py."""
import json

from nfs_synth.cli import generate_main
from nfs_synth.scene.recipe import load_recipe

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
