"""Render cost of one scene: seconds per frame and per 480-frame sweep at 256x256, ~10 primitives.

    .venv/bin/python benchmarks/render.py [--threads 1] [--measured 6] [--size 256]

For 4, 16 and 16+denoise samples per pixel it builds one scene, renders `--measured` frames spread
evenly over a 480-frame near-to-far sweep (0.5-3 m, uniform in diopters, f/1.2, 100 mm), times each
stage, and writes every frame as float16 into an HDF5 dataset chunked per frame (Blosc zstd through
hdf5plugin), as the scene files do. The 480-frame figure is extrapolated:
build + 480 x mean(per-frame trace + read-back + write) + the all-in-focus render (measured once).
Overhead = everything but path tracing, per frame (scene build amortised over 480 frames), as a
share of the whole frame. Wall seconds suffer when other jobs share the cores; CPU seconds (all
threads of this process, time.process_time) are the cost to plan a corpus with. Quote --threads.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import h5py
import hdf5plugin
import numpy as np

from blender_scenes import SceneRenderer, blender_version
from blender_scenes.plan_format import PRIMITIVES

SWEEP_FRAMES, NEAR_M, FAR_M = 480, 0.5, 3.0
KINDS = (*PRIMITIVES, "cube", "uv_sphere")


def textures(rng: np.random.Generator, n: int, size: int = 256) -> dict[str, np.ndarray]:
    """Band-limited random colour patterns plus a checker: detail at all scales, like photographs."""
    out = {}
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        img = np.zeros((size, size, 3))
        for _ in range(6):
            freq, phase, colour = rng.uniform(2, 40, 2), rng.uniform(0, 2 * np.pi), rng.random(3)
            img += colour * (0.5 + 0.5 * np.sin(2 * np.pi * (freq[0] * xx + freq[1] * yy) + phase))[..., None]
        checker = ((xx * 16).astype(int) + (yy * 16).astype(int)) % 2
        out[f"tex_{i:02d}"] = (0.7 * img / 6 + 0.3 * checker[..., None]).astype(np.float32)
    return out


def bench_plan(size: int, samples: int, denoise: bool, focus: list[float], seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    half_view = 0.5 * 36.0 / 100.0  # half the view width at 1 m
    objects = []
    depths = 1.0 / np.linspace(1 / NEAR_M, 1 / FAR_M, len(KINDS) + 2)[1:-1]
    for i, (kind, z) in enumerate(zip(KINDS, depths)):
        s = 0.2 * half_view * z
        objects.append({"name": f"obj_{i:03d}", "primitive": kind,
                        "location_m": [float(rng.uniform(-0.7, 0.7) * half_view * z),
                                       float(rng.uniform(-0.7, 0.7) * half_view * z), float(-z)],
                        "rotation_euler_rad": rng.uniform(0, 2 * np.pi, 3).tolist(), "scale": [s, s, s],
                        "texture": f"tex_{i:02d}", "roughness": 0.6})
    objects.append({"name": "background", "primitive": "plane", "location_m": [0.0, 0.0, -FAR_M],
                    "rotation_euler_rad": [0.0, 0.0, 0.0], "scale": [1.5 * half_view * FAR_M] * 2 + [1.0],
                    "texture": f"tex_{len(KINDS):02d}", "roughness": 1.0})
    return {
        "version": 1, "scene_index": 0, "seed": seed,
        "camera": {"width": size, "height": size, "focal_length_mm": 100.0, "f_number": 1.2,
                   "sensor_width_mm": 36.0, "aperture_blades": 0, "aperture_rotation_deg": 0.0},
        "sweep": {"focus_distance_m": focus, "timestamps_us": list(range(len(focus)))},
        "ground_truth": {"f_number": None},
        "render": {"samples": samples, "denoise": denoise, "seed": 0, "max_bounces": 4,
                   "pixel_filter_px": 1.5, "exposure": 0.0},
        "world": {"color": [1.0, 1.0, 1.0], "strength": 0.5},
        "lights": [{"type": "SUN", "location_m": [0.0, 0.0, 1.0], "rotation_euler_rad": [0.3, -0.2, 0.0],
                    "energy": 3.0, "color": [1.0, 1.0, 1.0], "size_m": 0.05}],
        "objects": objects, "textures": {},
    }


def run(size: int, samples: int, denoise: bool, measured: int, threads: int, workdir: str) -> dict:
    sweep = 1.0 / np.linspace(1 / NEAR_M, 1 / FAR_M, SWEEP_FRAMES)
    focus = sweep[np.linspace(0, SWEEP_FRAMES - 1, measured).round().astype(int)].tolist()
    plan = bench_plan(size, samples, denoise, focus)
    tex = textures(np.random.default_rng(1), len(KINDS) + 1)
    path = os.path.join(workdir, f"bench_{samples}_{int(denoise)}.h5")
    write = cpu = 0.0
    with SceneRenderer(plan, tex, threads=threads) as renderer, h5py.File(path, "w") as h5:
        frames = h5.create_dataset("frames", (SWEEP_FRAMES, size, size, 3), np.float16,
                                   chunks=(1, size, size, 3),
                                   **hdf5plugin.Blosc(cname="zstd", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))
        sweep_frames = renderer.sweep()
        for i in range(measured):
            start = time.process_time()  # CPU seconds of all render threads: robust to a busy machine
            frame = next(sweep_frames)
            cpu += time.process_time() - start
            start = time.perf_counter()
            frames[i] = frame.astype(np.float16)
            write += time.perf_counter() - start
        per_frame = {k: renderer.timings[k] / measured for k in ("trace", "readback")}
        before, cpu_start = dict(renderer.timings), time.process_time()
        renderer.all_in_focus()
        aif_cpu = time.process_time() - cpu_start
        aif = sum(renderer.timings[k] - before[k] for k in ("trace", "readback"))
        build = renderer.timings["build"]
    per_frame["write"] = write / measured
    per_frame["build"] = build / SWEEP_FRAMES
    frame_total = sum(per_frame.values())
    return {"samples": samples, "denoise": denoise, "build_s": build, "aif_s": aif, **per_frame,
            "cpu_frame_s": cpu / measured, "frame_s": frame_total, "scene_s": SWEEP_FRAMES * frame_total + aif,
            "scene_cpu_s": SWEEP_FRAMES * (cpu / measured + per_frame["write"]) + aif_cpu + build,
            "overhead": (frame_total - per_frame["trace"]) / frame_total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--measured", type=int, default=6, help="frames rendered per configuration")
    parser.add_argument("--threads", type=int, default=1, help="Cycles threads (1: per-core figures)")
    args = parser.parse_args()
    configs = [(4, False), (16, False), (16, True)]
    with tempfile.TemporaryDirectory() as workdir:
        rows = [run(args.size, s, d, args.measured, args.threads, workdir) for s, d in configs]
    print(f"\nBlender {blender_version()}, Cycles CPU, {args.threads} thread(s), {args.size}x{args.size}, "
          f"{len(KINDS) + 1} textured primitives, {args.measured} of {SWEEP_FRAMES} frames measured")
    print(f"{'spp':>8} {'build s':>8} {'trace s/f':>10} {'CPU s/f':>8} {'readback':>9} {'h5 write':>9} "
          f"{'s/frame':>8} {'AIF s':>6} {'scene min':>9} {'scene CPU min':>13} {'overhead':>9}")
    for r in rows:
        spp = f"{r['samples']}{'+dn' if r['denoise'] else ''}"
        print(f"{spp:>8} {r['build_s']:8.3f} {r['trace']:10.3f} {r['cpu_frame_s']:8.3f} "
              f"{r['readback'] * 1e3:7.1f}ms {r['write'] * 1e3:7.1f}ms {r['frame_s']:8.3f} {r['aif_s']:6.2f} "
              f"{r['scene_s'] / 60:9.1f} {r['scene_cpu_s'] / 60:13.1f} {100 * r['overhead']:8.1f}%")
    print("trace, read-back, h5 write, s/frame: wall seconds per sweep frame; CPU s/f: CPU seconds of all "
          "threads per frame (render + read-back);\nscene min = (build + 480 x s/frame + AIF) / 60, wall; "
          "scene CPU min: the same in CPU time (h5 write counted as wall); "
          "overhead = (read-back + write + build/480) / s/frame.")


if __name__ == "__main__":
    main()
