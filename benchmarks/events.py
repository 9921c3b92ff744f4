"""Event simulator speed: numba kernel vs a straightforward numpy port of the reference.

    python benchmarks/events.py [--frames 300] [--ref-frames 40] [--scene FILE.h5] [--torch-device cuda]

Prints frames/s and events/s of both (and of the torch path on --torch-device) on the same
frames (the straightforward version on the first --ref-frames intervals only, it is slow), their ratio (of total wall-clock time,
of CPU time, and of the median wall-clock time per interval, which an interval delayed by
other work on a shared machine does not move), the DSEC write speed, and the peak traced
memory of the streaming simulator against sequence length.
"""
import argparse
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

import h5py
import numba
import numpy as np
from scipy import ndimage

from nfs_synth.corpus.events_io import EventWriter
from nfs_synth.sensors.events import DVS346, EVENT_DTYPE, EventSimulator, rgb_to_gray
from nfs_synth.sensors.events_torch import TorchEventSimulator


# --- the straightforward implementation (per-frame float64 numpy, recursive re-sampling) ---

def _ref_first_passage(e, c, sigma, rng):
    """Inverse Gaussian (mean e/c, shape (e/sigma)^2), Levy when c == 0."""
    z2 = rng.standard_normal(e.shape) ** 2
    u = rng.random(e.shape)
    out = np.empty_like(e)
    zero = c == 0
    out[zero] = (e[zero] / sigma[zero]) ** 2 / z2[zero]
    m = e[~zero] / c[~zero]
    lam = (e[~zero] / sigma[~zero]) ** 2
    y = z2[~zero]
    x = m + m * m * y / (2 * lam) - m / (2 * lam) * np.sqrt(4 * m * lam * y + (m * y) ** 2)
    out[~zero] = np.where(u[~zero] <= m / (m + x), x, m * m / x)
    return out


def _ref_generate(mu, sigma, res, t_start, t_end, xs, ys, rng):
    """One round for the given pixels; pixels that fired recurse from their event time."""
    a_dist, b_dist = 1 - res, 1 + res
    s2 = sigma ** 2
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        e2b = np.exp(2 * mu * b_dist / s2)
        p_on = (e2b - 1) / (e2b - np.exp(-2 * mu * a_dist / s2))
    p_on = np.where(np.isnan(p_on), 1.0, p_on)
    p_on = np.where(mu == 0, b_dist / (a_dist + b_dist), p_on)
    on = rng.random(mu.shape) <= p_on
    e = np.where(on, a_dist, b_dist)
    tau = _ref_first_passage(e, np.abs(mu), sigma, rng)
    t_hit = t_start + tau
    fired = t_hit < t_end
    new_res = res.copy()
    idle = ~fired
    new_res[idle] += np.where(on, e, -e)[idle] * (t_end - t_start[idle]) / tau[idle]
    out = [(t_hit[fired], xs[fired], ys[fired], on[fired])]
    if fired.any():
        sub = _ref_generate(mu[fired], sigma[fired], np.zeros(fired.sum()), t_hit[fired], t_end,
                            xs[fired], ys[fired], rng)
        out += sub[0]
        new_res[fired] = sub[1]
    return out, new_res


class RefSimulator:
    def __init__(self, height, width, params, seed):
        self.k = params.as_array()
        self.rng = np.random.default_rng(seed)
        ys, xs = np.mgrid[:height, :width]
        self.xs, self.ys = xs.ravel(), ys.ravel()
        self.res = np.zeros(height * width)
        self.prev = None

    def feed(self, frame, t_us):
        cur = np.asarray(frame, np.float64).ravel()
        if self.prev is None:
            self.prev, self.t = cur, t_us
            return np.empty(0, EVENT_DTYPE)
        k1, k2, k3, k4, k5, k6 = self.k
        lm = (cur + self.prev) / 2
        mu = k1 * (cur - self.prev) / (t_us - self.t) / (lm + k2) + k4 + k5 * lm
        sigma = k3 * np.sqrt(lm) / (lm + k2) + k6
        parts, self.res = _ref_generate(mu, sigma, self.res, np.full(mu.shape, float(self.t)), float(t_us),
                                        self.xs, self.ys, self.rng)
        t, x, y, p = (np.concatenate(c) for c in zip(*parts))
        order = np.argsort(t, kind="stable")
        ev = np.empty(t.size, EVENT_DTYPE)
        ev["t"], ev["x"], ev["y"], ev["p"] = np.rint(t[order]), x[order], y[order], p[order]
        self.prev, self.t = cur, t_us
        return ev


# --- inputs ---------------------------------------------------------------------------------

def moving_texture(n, height, width, speed_px, sharpness=1.0, seed=0):
    """Gray frames (2..252) of a periodic random texture translating by speed_px per frame;
    sharpness > 1 pushes it towards black and white with soft edges (denser events)."""
    rng = np.random.default_rng(seed)
    span = 2 * width  # periodic, so the input's memory does not grow with n
    tex = ndimage.gaussian_filter(rng.random((height, span)), 2.0, mode="wrap")
    tex = np.tanh(sharpness * (tex - tex.mean()) / tex.std())
    tex = (tex - tex.min()) / (tex.max() - tex.min()) * 250 + 2
    cols = np.arange(width)
    for i in range(n):
        s = speed_px * i
        j, a = int(s), s - int(s)
        yield (1 - a) * tex[:, (cols + j) % span] + a * tex[:, (cols + j + 1) % span], 1000 * i


def scene_frames(path, intensity):
    with h5py.File(path, "r") as f:
        ts = f["timestamps_us"][:]
        for i in range(len(ts)):
            yield rgb_to_gray(f["frames"][i], intensity), int(ts[i])


# --- measurements ---------------------------------------------------------------------------

def run(sim, frames):
    """(intervals, events, wall seconds, CPU seconds of all threads, median wall seconds per
    interval) inside feed()."""
    n_ev, n_fr, wall, cpu, each = 0, 0, 0.0, 0.0, []
    for frame, t in frames:
        w0, c0 = time.perf_counter(), time.process_time()
        n_ev += len(sim.feed(frame, t))
        each.append(time.perf_counter() - w0)
        wall += each[-1]
        cpu += time.process_time() - c0
        n_fr += 1
    return n_fr - 1, n_ev, wall, cpu, float(np.median(each[1:])) if n_fr > 1 else float("nan")


def report(name, intervals, events, wall, cpu, median):
    print(f"  {name:<16} {intervals:4d} intervals {events / max(intervals, 1):8.0f} ev/interval "
          f"{intervals / wall:7.1f} frames/s {events / wall / 1e6:6.2f} M ev/s (wall) | "
          f"{intervals / cpu:7.1f} frames/s {events / cpu / 1e6:6.2f} M ev/s per CPU-second")
    return intervals / wall, intervals / cpu, 1.0 / median


def compare(label, make_frames, height, width, ref_frames, torch_device=None):
    print(f"{label} ({width}x{height}, {numba.get_num_threads()} numba threads)")
    head_frames = lambda: (f for f, _ in zip(make_frames(), range(ref_frames + 1)))
    ref = run(RefSimulator(height, width, DVS346, 1), head_frames())
    slow = report("straightforward", *ref)
    sims = {"numba kernel": lambda seed: EventSimulator(height, width, DVS346, np.random.default_rng(seed))}
    if torch_device:
        sims[f"torch {torch_device}"] = lambda seed: TorchEventSimulator(
            height, width, DVS346, np.random.default_rng(seed), device=torch_device)
    for name, make in sims.items():
        run(make(0), (f for f, _ in zip(make_frames(), range(3))))  # compile / load the cache, warm up
        report(name, *run(make(1), make_frames()))
        head = run(make(1), head_frames())
        fast = report("  same, head", *head)
        print(f"  speed-up on the same {ref_frames} intervals: {fast[0] / slow[0]:.1f}x wall-clock, "
              f"{fast[1] / slow[1]:.1f}x CPU time, {fast[2] / slow[2]:.1f}x median wall-clock per interval "
              f"(event counts {head[1]} vs {ref[1]})")


def write_speed(make_frames, height, width):
    sim = EventSimulator(height, width, DVS346, np.random.default_rng(2))
    batches = [sim.feed(f, t) for f, t in make_frames()]
    n = sum(len(b) for b in batches)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ev.h5"
        start = time.perf_counter()
        with h5py.File(path, "w") as f:
            writer = EventWriter(f, height, width, {})
            for b in batches:
                writer.append(b)
            writer.close(int(batches[-1]["t"][-1]) if n else 0)
        elapsed = time.perf_counter() - start
        size = path.stat().st_size
    print(f"DSEC write (Blosc zstd5 + bitshuffle): {n / elapsed / 1e6:.1f} M events/s, {size / max(n, 1):.2f} B/event")


def memory_flatness(height, width, lengths=(50, 100, 200)):
    print("peak traced memory of the streaming simulator (events discarded as they come):")
    for n in lengths:
        tracemalloc.start()
        run(EventSimulator(height, width, DVS346, np.random.default_rng(3)), moving_texture(n, height, width, 1.5))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"  {n:4d} frames: {peak / 2**20:7.1f} MiB")


def _warm():
    sim = EventSimulator(4, 4, DVS346, np.random.default_rng(0))
    sim.feed(np.zeros((4, 4)), 0)
    sim.feed(np.ones((4, 4)), 1000)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--ref-frames", type=int, default=40)
    ap.add_argument("--height", type=int, default=260)
    ap.add_argument("--width", type=int, default=346)
    ap.add_argument("--scene", type=Path, help="scene file: frames (T,H,W,3 float16) and timestamps_us")
    ap.add_argument("--intensity", default="srgb_luminance")
    ap.add_argument("--torch-device", help="also time the torch path there (cuda, cpu, ...)")
    args = ap.parse_args()
    h, w = args.height, args.width
    _warm()
    print(f"numba threading layer: {numba.threading_layer()}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    for label, speed, sharp in (("moving texture, 0.5 px/frame, 1 kHz", 0.5, 0.3),
                                ("dense: black-and-white texture, 4 px/frame, 1 kHz", 4.0, 3.0)):
        compare(label, lambda s=speed, k=sharp: moving_texture(args.frames, h, w, s, k), h, w, args.ref_frames,
                args.torch_device)
    if args.scene:
        with h5py.File(args.scene, "r") as f:
            _, sh, sw, _ = f["frames"].shape
        compare(f"scene {args.scene.name}", lambda: scene_frames(args.scene, args.intensity), sh, sw, args.ref_frames,
                args.torch_device)
    write_speed(lambda: moving_texture(args.frames, h, w, 4.0, 3.0), h, w)
    memory_flatness(h, w)


if __name__ == "__main__":
    main()
