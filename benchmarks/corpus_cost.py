"""What a corpus costs: CPU and wall seconds, bytes and peak RSS per stage of each scene, projected to a corpus.

    PYTHONPATH=. .venv/bin/python benchmarks/corpus_cost.py [--recipe recipes/paper.toml] [--scenes 2]
        [--engines layered,cycles] [--cycles-frames K] [--threads T] [--json cost.json] [--set key=value ...]

Each engine runs `generate.py RECIPE --workers 1` in a subprocess (bundled textures: COCO is not here) and
reads the stage timings back from each scene's `timings_json` (nfs_synth/run/stages.py, measured inside
the worker). "start-up" is the subprocess's CPU and wall outside every scene (interpreter, imports,
Blender start, worker pool), counted once per worker. --cycles-frames K renders K frames with identical
per-frame settings and frame rate (the sweep's duration scaled by K/T, so each frame also feeds as many
spike steps); the per-frame stages are then multiplied by T/K and the figures are marked PROJECTED.
Reference in the same run: SHA-256 over the file's raw bytes, against the content hash stage.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py

from nfs_synth.scene.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
STAGES = ("plan", "build", "render_aif", "render_frames", "events", "spikes", "hdf5", "hash")
PER_FRAME = {"render_frames", "events", "spikes", "hdf5", "hash"}     # scale with frames for --cycles-frames
TARGET_CPU_S = 90.0                   # 5 core-hours over 200 scenes (issue #18)


def stage_of(name: str) -> str:
    """The stage that produced a dataset, for bytes on disk."""
    top = name.split("/")[0]
    if top in ("events", "ms_to_idx", "t_offset"):
        return "events"
    return {"frames": "render_frames", "all_in_focus": "render_aif", "depth_m": "render_aif",
            "spikes": "spikes"}.get(top, "hdf5")


def stored_bytes(path: Path) -> dict[str, int]:
    out = dict.fromkeys(STAGES, 0)
    with h5py.File(path, "r") as h5:
        def add(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[stage_of(name)] += obj.id.get_storage_size()
        h5.visititems(add)
    out["hdf5"] += path.stat().st_size - sum(out.values())     # metadata, attributes, free space
    return out


def raw_sha256_s(path: Path) -> float:
    start = time.perf_counter()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    return time.perf_counter() - start


def run_engine(args, engine: str, out: Path) -> dict:
    recipe = load_recipe(args.recipe, args.set)
    frames = recipe["sweep"]["frames"]
    sets = [*args.set, f"render.engine={json.dumps(engine)}", f"corpus.scenes={args.scenes}"]
    k = args.cycles_frames if engine == "cycles" and args.cycles_frames else frames
    if k != frames:
        sets += [f"sweep.frames={k}", f"sweep.duration_s={recipe['sweep']['duration_s'] * k / frames!r}"]
    cmd = [sys.executable, str(REPO / "generate.py"), str(args.recipe), "--out", str(out), "--workers", "1",
           "--no-progress"] + (["--threads", str(args.threads)] if args.threads else [])
    for item in sets:
        cmd += ["--set", item]
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)})
    after, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - start
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    scenes = []
    for path in sorted((out / "scenes").glob("scene_*.h5")):
        with h5py.File(path, "r") as h5:
            t = json.loads(h5.attrs["timings_json"])
        scale = frames / k
        stages = {s: {"cpu_s": t["stages"][s]["cpu_s"] * (scale if s in PER_FRAME else 1.0),
                      "wall_s": t["stages"][s]["wall_s"] * (scale if s in PER_FRAME else 1.0)}
                  for s in STAGES if s in t["stages"]}
        for s, b in stored_bytes(path).items():
            stages.setdefault(s, {"cpu_s": 0.0, "wall_s": 0.0})["bytes"] = int(b * (scale if s in PER_FRAME else 1))
        scenes.append({"file": path.name, "measured_wall_s": t["wall_s"], "measured_cpu_s": t["cpu_s"],
                       "measured_stage_wall_s": sum(v["wall_s"] for v in t["stages"].values()),
                       "cpu_s": sum(v["cpu_s"] for v in stages.values()),
                       "wall_s": sum(v["wall_s"] for v in stages.values()),
                       "peak_rss_bytes": t["peak_rss_bytes"], "stages": stages, "renderer": t["renderer"],
                       "measured_hash_wall_s": t["stages"]["hash"]["wall_s"], "raw_sha256_s": raw_sha256_s(path)})
    return {"engine": engine, "frames": frames, "frames_rendered": k, "projected": k != frames,
            "process_cpu_s": cpu, "process_wall_s": wall,
            "startup_cpu_s": cpu - sum(s["measured_cpu_s"] for s in scenes),
            "startup_wall_s": wall - sum(s["measured_wall_s"] for s in scenes), "scenes": scenes}


def report(result: dict, corpus_scenes: int) -> None:
    tag = f" PROJECTED from {result['frames_rendered']} of {result['frames']} frames" if result["projected"] else ""
    print(f"\n== {result['engine']}{tag}: start-up (once per worker) {result['startup_cpu_s']:.1f} CPU-s, "
          f"{result['startup_wall_s']:.1f} s wall")
    for sc in result["scenes"]:
        print(f"-- {sc['file']}: {sc['cpu_s']:.1f} CPU-s, {sc['wall_s']:.1f} s, peak RSS "
              f"{sc['peak_rss_bytes'] / 2**20:.0f} MiB")
        print(f"   {'stage':<14}{'CPU-s':>9}{'wall-s':>9}{'MB':>9}{'% CPU':>7}")
        for name, st in sc["stages"].items():
            print(f"   {name:<14}{st['cpu_s']:9.2f}{st['wall_s']:9.2f}{st.get('bytes', 0) / 1e6:9.1f}"
                  f"{100 * st['cpu_s'] / sc['cpu_s']:7.1f}")
        resid = sc["measured_wall_s"] - sc["measured_stage_wall_s"]
        print(f"   measured: stages sum {sc['measured_stage_wall_s']:.2f} s of {sc['measured_wall_s']:.2f} s wall, "
              f"residual {resid:.2f} s ({100 * resid / sc['measured_wall_s']:.1f} %)")
        print(f"   reference: raw SHA-256 of the file {sc['raw_sha256_s']:.2f} s; content hash / raw "
              f"{sc['measured_hash_wall_s'] / max(sc['raw_sha256_s'], 1e-9):.1f}x (as measured, not projected)")
    mean = sum(s["cpu_s"] for s in result["scenes"]) / len(result["scenes"])
    print(f"   mean {mean:.1f} CPU-s/scene = {mean / TARGET_CPU_S:.2f}x the 90 CPU-s target; "
          f"{corpus_scenes} scenes: {corpus_scenes * mean / 3600:.2f} core-hours{tag}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", type=Path, default=REPO / "recipes/paper.toml")
    p.add_argument("--scenes", type=int, default=2)
    p.add_argument("--engines", default="layered,cycles")
    p.add_argument("--cycles-frames", type=int, default=0, help="render K frames with Cycles, project to all")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", type=Path)
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args()
    args.set = ['textures.source="bundled"', *args.set]
    corpus_scenes = load_recipe(args.recipe, args.set)["corpus"]["scenes"]
    load = os.getloadavg()
    print(f"{args.recipe.name}, {args.scenes} scene(s), {os.cpu_count()} cores, load {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f} at start")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for engine in args.engines.split(","):
            results.append(run_engine(args, engine, Path(tmp) / engine))
            report(results[-1], corpus_scenes)
    if len(results) == 2:
        a, b = (sum(s["cpu_s"] for s in r["scenes"]) for r in results)
        print(f"\n{results[1]['engine']} / {results[0]['engine']} CPU per scene: {b / a:.1f}x")
    load_end = os.getloadavg()
    print(f"load {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f} at end")
    if args.json:
        args.json.write_text(json.dumps({"recipe": args.recipe.name, "overrides": args.set, "load_start": load,
                                         "load_end": load_end, "cores": os.cpu_count(),
                                         "corpus_scenes": corpus_scenes, "results": results}, indent=1))


if __name__ == "__main__":
    main()
