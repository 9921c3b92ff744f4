"""Layered engine vs per-frame Cycles: quality, speed and spurious events, per scene and focus distance.

    .venv/bin/python benchmarks/layered.py [--size 256] [--scenes 5] [--first 0] [--ref-samples 256]
                                           [--threads 2] [--set render.layered_tolerance_px=1.0]
                                           [--cache DIR]

Scenes are scenes first..first+N-1 of recipes/quick.toml at --size x --size with a 480-frame sweep (0.6-2.4 m,
uniform in diopters, f/1.2, 100 mm, bundled textures). For each scene:

- quality: at 5 focus distances spread over the sweep (frames 0, 120, 240, 359, 479), PSNR and SSIM
  against a --ref-samples Cycles render (no denoiser) of the layered frame (default settings: 0.5 px
  tolerance, 64 samples per slab), of 16-sample Cycles + OpenImageDenoise and of plain 16-sample Cycles.
  Metrics on sRGB-encoded images clipped to [0, 1] (display space), SSIM from scikit-image (7x7, RGB).
- speed, per 480-frame sweep, same thread count for both paths: layered is timed end to end over all
  480 frames (build, depth pass, slab renders, 480 composites); Cycles 16 spp (no denoiser) is build +
  480 x the mean per-frame trace + read-back of the 29 frames it renders (quality + events). With
  --size below 256 both are also scaled to 256x256 by the pixel count (path tracing and FFTs scale
  about linearly, the fixed per-render overhead does not: an estimate); at 256 nothing is scaled.
- spurious events: 24 consecutive frames around the middle of the 480-frame sweep through the DVS346
  event simulator (same seed for every path). "Static" pixels are those whose reference image (Gaussian
  sigma 1 px, 0..255 sRGB gray) changes by less than 0.5 levels between the first and last of those
  frames; events there are counted per 1000 static pixels.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from blender_scenes import SceneRenderer, blender_version
from nfs_synth.render.layered.renderer import LayeredRenderer
from nfs_synth.color import srgb_encode
from nfs_synth.scene import plan as plans, recipe as recipes, textures
from nfs_synth.sensors import events

FRAMES = 480
QUALITY_FRAMES = np.linspace(0, FRAMES - 1, 5).round().astype(int)
EVENT_FRAMES = np.arange(228, 252)
STATIC_LEVELS = 0.5


def psnr(a: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((srgb_encode(a) - srgb_encode(ref)) ** 2)))


def ssim(a: np.ndarray, ref: np.ndarray) -> float:
    return float(structural_similarity(srgb_encode(a), srgb_encode(ref), channel_axis=-1, data_range=1.0))


def subset(plan: dict, frames, **render) -> dict:
    """The plan restricted to some sweep frames, with render settings replaced."""
    out = copy.deepcopy(plan)
    out["sweep"]["focus_distance_m"] = [plan["sweep"]["focus_distance_m"][i] for i in frames]
    out["sweep"]["timestamps_us"] = [plan["sweep"]["timestamps_us"][i] for i in frames]
    out["render"].update(render)
    return out


def cycles(plan, tex, frames, threads, samples, denoise):
    with SceneRenderer(subset(plan, frames, samples=samples, denoise=denoise), tex, threads=threads) as r:
        images = list(r.sweep())
        return np.array(images), dict(r.timings)


def cycles_paths(plan, tex, both, args):
    """The reference, 16 spp and 16 spp + denoiser renders and the 16 spp timings, from --cache when it
    holds them for this plan and these settings (the Cycles paths do not change with the layered engine's)."""
    cached = None
    if args.cache:
        render = {k: v for k, v in plan["render"].items() if k != "engine" and not k.startswith("layered_")}
        key = hashlib.sha256(json.dumps([plan | {"render": render}, args.threads, args.ref_samples, blender_version()],
                                        sort_keys=True, default=str).encode()).hexdigest()[:16]
        cached = Path(args.cache) / f"cycles-{key}.npz"
        if cached.exists():
            with np.load(cached) as f:
                t16 = dict(zip(f["timing_keys"], f["timing_values"]))
                print(f"Cycles renders from {cached} (timed in the run that made them, {f['when']})")
                return f["ref"], f["c16"], f["c16dn"], t16
    ref, _ = cycles(plan, tex, both, args.threads, args.ref_samples, False)
    c16, t16 = cycles(plan, tex, np.concatenate([QUALITY_FRAMES, EVENT_FRAMES]), args.threads, 16, False)
    c16dn, _ = cycles(plan, tex, np.concatenate([QUALITY_FRAMES, EVENT_FRAMES]), args.threads, 16, True)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()) + f", load {os.getloadavg()[0]:.2f}"
        tmp = cached.with_suffix(".tmp.npz")
        np.savez(tmp, ref=ref, c16=c16, c16dn=c16dn, timing_keys=list(t16), when=when,
                 timing_values=[float(v) for v in t16.values()])
        os.replace(tmp, cached)
    return ref, c16, c16dn, t16


def layered(plan, tex, threads, keep):
    """All 480 frames, timed end to end; returns the frames listed in `keep`, seconds, timings, settings."""
    start = time.perf_counter()
    with LayeredRenderer(plan, tex, threads=threads) as r:
        frames = {i: f for i, f in enumerate(r.sweep()) if i in keep}
        seconds = time.perf_counter() - start
        return np.array([frames[i] for i in keep]), seconds, dict(r.timings), dict(r.settings)


def event_counts(frames, stamps, static) -> int:
    gray = np.array([events.rgb_to_gray(f) for f in frames])
    ev = events.simulate(gray, stamps, "DVS346", seed=7)
    return int(static[ev["y"], ev["x"]].sum())


def run_scene(recipe, index, args) -> dict:
    plan = plans.sample_plan(recipe, index)
    tex = {tid: textures.load_texture(ref, recipe["textures"]) for tid, ref in plan["textures"].items()}
    stamps = np.asarray(plan["sweep"]["timestamps_us"])[EVENT_FRAMES]
    both = np.concatenate([QUALITY_FRAMES, EVENT_FRAMES[[0, -1]]])
    ref, c16, c16dn, t16 = cycles_paths(plan, tex, both, args)
    lay, lay_s, lay_t, settings = layered(plan, tex, args.threads, [*QUALITY_FRAMES, *EVENT_FRAMES])
    q = len(QUALITY_FRAMES)
    gray_ends = [gaussian_filter(events.rgb_to_gray(f), 1.0) for f in ref[q:]]
    static = np.abs(gray_ends[1] - gray_ends[0]) < STATIC_LEVELS
    per_frame16 = (t16["trace"] + t16["readback"]) / len(c16)
    paths = {"layered": lay[:q], "16+dn": c16dn[:q], "16": c16[:q]}
    return {
        "scene": index, "slabs": settings["layered_slabs"], "overscan": settings["layered_overscan_px"],
        "focus_m": [plan["sweep"]["focus_distance_m"][i] for i in QUALITY_FRAMES],
        "psnr": {k: [psnr(a, b) for a, b in zip(v, ref[:q])] for k, v in paths.items()},
        "ssim": {k: [ssim(a, b) for a, b in zip(v, ref[:q])] for k, v in paths.items()},
        "layered_s": lay_s, "layered_timings": lay_t,
        "cycles16_s": t16["build"] + FRAMES * per_frame16,
        "static_px": int(static.sum()),
        "events": {"layered": event_counts(lay[q:], stamps, static),
                   "16": event_counts(c16[q:], stamps, static),
                   "16+dn": event_counts(c16dn[q:], stamps, static)},
    }


def report(rows, args) -> None:
    scale = (256 / args.size) ** 2
    print(f"\nBlender {blender_version()}, Cycles CPU, {args.threads} thread(s), {args.size}x{args.size}, "
          f"{len(rows)} scenes of recipes/quick.toml, reference {args.ref_samples} spp, sRGB metrics")
    print(f"{'scene':>5} {'focus m':>7} | {'PSNR layered':>12} {'16+dn':>6} {'16':>6} | "
          f"{'SSIM layered':>12} {'16+dn':>6} {'16':>6}")
    for r in rows:
        for i, f in enumerate(r["focus_m"]):
            p, s = r["psnr"], r["ssim"]
            print(f"{r['scene']:>5} {f:7.3f} | {p['layered'][i]:12.2f} {p['16+dn'][i]:6.2f} "
                  f"{p['16'][i]:6.2f} | {s['layered'][i]:12.4f} {s['16+dn'][i]:6.4f} {s['16'][i]:6.4f}")
    for key in ("psnr", "ssim"):
        means = {k: np.mean([np.mean(r[key][k]) for r in rows]) for k in ("layered", "16+dn", "16")}
        worst = {k: min(min(r[key][k]) for r in rows) for k in means}
        print(f"mean {key.upper()}: " + ", ".join(f"{k} {v:.4g}" for k, v in means.items())
              + " | worst frame: " + ", ".join(f"{k} {v:.4g}" for k, v in worst.items()))
    print(f"\n{'scene':>5} {'slabs':>5} {'overscan':>8} | {'layered s/sweep':>15} {'cycles16 s/sweep':>16} "
          f"{'speed-up':>8} | {'static px':>9} {'events: layered':>15} {'16':>6} {'16+dn':>6}")
    for r in rows:
        print(f"{r['scene']:>5} {r['slabs']:>5} {r['overscan']:>8} | {r['layered_s']:15.1f} "
              f"{r['cycles16_s']:16.1f} {r['cycles16_s'] / r['layered_s']:7.1f}x | {r['static_px']:>9} "
              f"{r['events']['layered']:>15} {r['events']['16']:>6} {r['events']['16+dn']:>6}")
    lay, cyc = sum(r["layered_s"] for r in rows), sum(r["cycles16_s"] for r in rows)
    print(f"total: layered {lay:.1f} s, cycles16 {cyc:.1f} s per {len(rows)} sweeps of {FRAMES} frames: "
          f"{cyc / lay:.1f}x" + (f"; scaled to 256x256 by pixel count: layered {lay * scale:.0f} s, "
                                   f"cycles16 {cyc * scale:.0f} s" if args.size != 256 else ""))
    static = sum(r["static_px"] for r in rows)
    for k in ("layered", "16", "16+dn"):
        n = sum(r["events"][k] for r in rows)
        print(f"events in static regions, {k}: {n} ({1000 * n / max(static, 1):.2f} per 1000 static px, "
              f"{len(EVENT_FRAMES) - 1} intervals)")
    print("layered timings of the last scene (s):",
          {k: round(v, 2) for k, v in rows[-1]["layered_timings"].items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--scenes", type=int, default=5)
    parser.add_argument("--first", type=int, default=0, help="index of the first scene")
    parser.add_argument("--ref-samples", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", metavar="DIR", help="keep the Cycles renders here and reuse them: compare "
                        "layered settings against references rendered once (their timings are that run's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override, e.g. render.layered_tolerance_px=1.0")
    args = parser.parse_args()
    recipe = recipes.load_recipe(None, [f"camera.width={args.size}", f"camera.height={args.size}",
                                        f"sweep.frames={FRAMES}", *args.set])
    rows = []
    for index in range(args.first, args.first + args.scenes):
        rows.append(run_scene(recipe, index, args))
        print(f"scene {index} done: PSNR layered {np.mean(rows[-1]['psnr']['layered']):.2f}, "
              f"16+dn {np.mean(rows[-1]['psnr']['16+dn']):.2f}", flush=True)
    report(rows, args)


if __name__ == "__main__":
    main()
