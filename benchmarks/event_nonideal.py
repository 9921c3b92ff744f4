"""Cost of each event-camera non-ideality (issue 16) per paper-scale scene, against the model alone.

    python benchmarks/event_nonideal.py [--frames 480] [--width 346] [--height 260]

Feeds one sweep of drifting, defocusing texture (gray 0..255, 2 s) through the DVS-Voltmeter
simulator alone and then with each option of `recipes/hybrid_rig.toml` on by itself and all together;
prints CPU seconds per scene, events, and the cost of each over the model alone (seconds and ratio).
"""
import argparse
import os
import time

import cv2
import numpy as np

from nfs_synth.scene.recipe import RECIPES, load_recipe
from nfs_synth.sensors.dvs import DVS346
from nfs_synth.sensors.event_nonideal import NonIdeal, NonIdealEvents
from nfs_synth.sensors.event_simulator import EventSimulator


def sweep(frames: int, height: int, width: int) -> list[np.ndarray]:
    texture = np.random.default_rng(0).random((height + 64, width + 64)).astype(np.float32)
    out = []
    for k in range(frames):
        sigma = 0.5 + 6.0 * abs(k / (frames - 1) - 0.5)       # in focus mid-sweep
        shift = int(16 * k / frames)
        out.append(255.0 * cv2.GaussianBlur(texture, (0, 0), sigma)[shift:shift + height, shift:shift + width])
    return out


def run(frames, stamps, settings) -> tuple[float, int]:
    h, w = frames[0].shape
    sim = EventSimulator(h, w, DVS346, np.random.default_rng(1), scale=1.0)
    if settings.any:
        sim = NonIdealEvents(sim, settings, np.random.default_rng(2), h, w)
    started = time.process_time()
    n = sum(len(sim.feed(f, int(t))) for f, t in zip(frames, stamps))
    return time.process_time() - started, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=480)
    p.add_argument("--width", type=int, default=346)
    p.add_argument("--height", type=int, default=260)
    args = p.parse_args()
    rig = load_recipe(RECIPES / "hybrid_rig.toml")["sensors"]["events"]["nonideal"]
    frames = sweep(args.frames, args.height, args.width)
    stamps = np.linspace(0, 2_000_000, args.frames).astype(np.int64)
    run(frames[:3], stamps[:3], NonIdeal(**rig))                  # numba compilation outside the figures
    print(f"{args.width}x{args.height}, {args.frames} frames over 2 s; load average {os.getloadavg()[0]:.2f}")
    base, n0 = run(frames, stamps, NonIdeal())
    print(f"{'model alone (reference)':<34} {base:7.2f} CPU-s {n0:>10,} events")
    cases = [(k, NonIdeal(**{k: v})) for k, v in rig.items() if k != "hot_pixel_fraction"]
    cases[[k for k, _ in cases].index("hot_pixel_rate_hz")] = (
        "hot pixels", NonIdeal(hot_pixel_fraction=rig["hot_pixel_fraction"], hot_pixel_rate_hz=rig["hot_pixel_rate_hz"]))
    for name, settings in [*cases, ("all of hybrid_rig.toml", NonIdeal(**rig))]:
        cpu, n = run(frames, stamps, settings)
        print(f"{name:<34} {cpu:7.2f} CPU-s {n:>10,} events  +{cpu - base:6.2f} s  x{cpu / base:5.2f}")


if __name__ == "__main__":
    main()
