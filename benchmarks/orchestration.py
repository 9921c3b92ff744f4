"""Scale-out figures: scenes per hour, orchestration overhead, and render-worker memory over many scenes.

    .venv/bin/python benchmarks/orchestration.py [--scenes 6] [--memory-scenes 50] [--set KEY=VALUE ...]

1. Throughput: the quick recipe (recipes/quick.toml plus any --set, printed) made from scratch with
   1 and 2 joblib render workers and with a 2-process local Dask cluster, one Cycles thread per worker
   (--threads), so N workers use N cores; scenes per hour and scaling efficiency = rate / (slots x
   rate with 1 worker). Content hashes are compared across the runs; datasets that differ are named.
2. Overhead per scene as a share of the scene's own cost (seconds inside `render_scene`: plan, render,
   simulate, write, hash): `run` = (wall x slots - scene seconds) / scene seconds over the whole run,
   so it includes worker start-up (Blender import), Dask start-up, scheduling, transfer, manifest
   writes and the idle tail when slots finish unevenly; `dispatch` = what a slot spends per scene
   beyond the scene itself (pickling, pipes, worker start and recycling, amortised).
3. Memory: one render worker making --memory-scenes scenes without recycling (--memory-set, small
   sweeps by default: Blender's per-scene state, not frame count, is what could leak); RSS after
   each scene, first / median / last / max and the least-squares slope in MB per 10 scenes.
Wall figures suffer when other jobs share the cores: quote `nproc` and the load next to them.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401 (filters)
import numpy as np

from nfs_synth.run.orchestrate import generate_corpus
from nfs_synth.run.pipeline import scene_path
from nfs_synth.scene.recipe import load_recipe
from nfs_synth.run.workers import DaskPool, LocalPool, Policy


def run(recipe: dict, out: Path, pool, threads: int | None, max_units: int = 20) -> dict:
    telemetry = []
    started = time.perf_counter()
    with pool:
        manifest = generate_corpus(recipe, out, pool=pool, progress=False, telemetry=telemetry,
                                   policy=Policy(max_units=max_units, threads=threads,
                                                 slots_per_host=pool.slots_per_host))
    wall = time.perf_counter() - started
    scene_s = sum(o.entry["seconds"] for o in telemetry)
    dispatch = sum(o.stats["slot_s"] - o.stats["unit_s"] for o in telemetry)
    return {"wall": wall, "slots": pool.slots, "scene_s": scene_s, "n": len(telemetry),
            "run_overhead": (wall * pool.slots - scene_s) / scene_s, "dispatch": dispatch / scene_s,
            "hashes": [e["sha256"] for e in manifest["scenes"]],
            "rss": [o.stats["rss_mb"] for o in sorted(telemetry, key=lambda o: o.entry["index"])]}


def differing(corpus_a: Path, corpus_b: Path, index: int) -> list[str]:
    with h5py.File(scene_path(corpus_a, index), "r") as a, h5py.File(scene_path(corpus_b, index), "r") as b:
        names = []
        a.visit(names.append)
        return [n for n in names if isinstance(a[n], h5py.Dataset)
                and (n not in b or not np.array_equal(a[n][()], b[n][()]))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenes", type=int, default=6, help="scenes per throughput run (even)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="quick-recipe override")
    p.add_argument("--memory-scenes", type=int, default=50)
    p.add_argument("--memory-set", action="append", default=["sweep.frames=8"])
    p.add_argument("--threads", type=int, default=1,
                   help="Cycles threads per render worker (default 1: N workers use N cores; 0 = share)")
    args = p.parse_args()
    recipe = load_recipe(None, [*args.overrides, f"corpus.scenes={args.scenes}"])
    print(f"quick recipe, overrides: {args.overrides or 'none'}; {args.scenes} scenes of "
          f"{recipe['camera']['width']}x{recipe['camera']['height']} x {recipe['sweep']['frames']} frames, "
          f"{recipe['render']['samples']} spp; Cycles threads per worker: {args.threads or 'cores / workers'}; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for name, make_pool in (("1 worker", lambda: LocalPool(1)), ("2 workers", lambda: LocalPool(2)),
                                ("dask local:2", lambda: DaskPool(cluster=("local", 2)))):
            results[name] = r = run(recipe, Path(tmp) / name.replace(" ", "_"), make_pool(), args.threads or None)
            rate = 3600 * r["n"] / r["wall"]
            base = 3600 * results["1 worker"]["n"] / results["1 worker"]["wall"]
            print(f"{name:13s} {r['wall']:7.1f} s wall  {rate:7.1f} scenes/h  scaling efficiency "
                  f"{rate / (r['slots'] * base):5.1%}  scene cost {r['scene_s'] / r['n']:5.2f} s  "
                  f"overhead: run {r['run_overhead']:6.1%}, dispatch {r['dispatch']:6.2%}")
        same = len({tuple(r["hashes"]) for r in results.values()}) == 1
        print(f"content hashes identical across the three runs: {same}")
        for name, r in list(results.items())[1:]:
            for i, (a, b) in enumerate(zip(results["1 worker"]["hashes"], r["hashes"])):
                if a != b:
                    print(f"  scene {i}, {name} vs 1 worker, datasets that differ: "
                          f"{differing(Path(tmp) / '1_worker', Path(tmp) / name.replace(' ', '_'), i)}")
        memory = load_recipe(None, [*args.overrides, *args.memory_set, f"corpus.scenes={args.memory_scenes}"])
        r = run(memory, Path(tmp) / "memory", LocalPool(1), args.threads or None, max_units=args.memory_scenes)
        rss = np.array(r["rss"])
        slope = np.polyfit(np.arange(len(rss)), rss, 1)[0] * 10
        half = len(rss) // 2          # the second half, after caches have warmed up
        late = np.polyfit(np.arange(half, len(rss)), rss[half:], 1)[0] * 10 if len(rss) - half >= 2 else float("nan")
        print(f"memory, 1 worker, {len(rss)} scenes ({args.memory_set}), no recycling: RSS first "
              f"{rss[0]:.0f} MB, median {np.median(rss):.0f}, last {rss[-1]:.0f}, max {rss.max():.0f}; "
              f"slope {slope:+.1f} MB per 10 scenes (second half: {late:+.1f})")


if __name__ == "__main__":
    main()
