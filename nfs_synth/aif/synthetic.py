"""Small synthetic focal sweeps with noise-free events and spikes, for tests and quick checks.

A textured plane split into depth layers is blurred, frame by frame, with a disk whose radius grows
with the distance (in frames) to each layer's in-focus frame.  The ideal sensors are the textbook
models, so their errors are known exactly: an ideal event pixel keeps a reference log level within one
threshold of its log intensity; an ideal integrate-and-fire pixel's count over M steps is within one
spike of the integrated intensity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata, transform

from nfs_synth.sensors.dvs import EVENT_DTYPE

@dataclass
class SyntheticSweep:
    frames: np.ndarray  # (T, H, W, 3) linear RGB
    t_us: np.ndarray  # (T,) int64
    all_in_focus: np.ndarray  # (H, W, 3) linear RGB
    focus_frame: np.ndarray  # (H, W) int: the frame where each pixel is in focus
    depth_m: np.ndarray  # (H, W)


def disk_blur(img: np.ndarray, radius: float) -> np.ndarray:
    if radius < 0.5:
        return img.copy()
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    kernel = (np.hypot(yy, xx) <= radius).astype(np.float32)
    return cv2.filter2D(img, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def layered_sweep(size: int = 48, n_frames: int = 24, layers: int = 3, blur_per_frame: float = 0.6,
                  colour: bool = False, seed: int = 0, frame_us: int = 1000) -> SyntheticSweep:
    """Vertical bands at increasing depth, each in focus at its own frame, textured with a crop of a
    bundled photograph (scikit-image's 'astronaut'), intensities in [0.05, 0.95]."""
    rng = np.random.default_rng(seed)
    photo = skdata.astronaut().astype(np.float32) / 255.0
    y0, x0 = rng.integers(0, photo.shape[0] - 4 * size, size=2)
    crop = transform.resize(photo[y0 : y0 + 4 * size, x0 : x0 + 4 * size], (size, size), anti_aliasing=True)
    crop = crop if colour else np.repeat(crop.mean(axis=2, keepdims=True), 3, axis=2)
    aif = (0.05 + 0.9 * (crop - crop.min()) / max(np.ptp(crop), 1e-6)).astype(np.float32) ** 2.2
    band = np.minimum(np.arange(size) * layers // size, layers - 1)
    layer_of = np.broadcast_to(band[None, :], (size, size))
    focus_frames = np.linspace(0.15, 0.85, layers) * (n_frames - 1)
    frames = np.empty((n_frames, size, size, 3), dtype=np.float32)
    for i in range(n_frames):
        blurred = [disk_blur(aif, blur_per_frame * abs(i - f)) for f in focus_frames]
        frames[i] = np.choose(layer_of[..., None], blurred)
    return SyntheticSweep(
        frames=frames,
        t_us=np.arange(n_frames, dtype=np.int64) * frame_us,
        all_in_focus=aif,
        focus_frame=np.rint(focus_frames[layer_of]).astype(int),
        depth_m=(1.0 + layer_of).astype(np.float32),
    )


def ideal_events(gray: np.ndarray, t_us: np.ndarray, threshold: float, log_offset: float) -> np.ndarray:
    """Noise-free events of (T, H, W) luminance: log(Y + offset) is interpolated linearly between frames
    and an event fires at every crossing of the pixel's reference level +- threshold (the reference
    starts at the first frame's level and moves by one threshold per event)."""
    logs = np.log(gray.astype(np.float64) + log_offset)
    ref = logs[0].copy()
    h, w = ref.shape
    out = []
    for i in range(1, len(logs)):
        l0, l1 = logs[i - 1], logs[i]
        step = l1 - l0
        n_up = np.maximum(np.floor((l1 - ref) / threshold + 1e-12), 0).astype(int)
        n_down = np.maximum(np.floor((ref - l1) / threshold + 1e-12), 0).astype(int)
        for n, sign, pol in ((n_up, 1.0, 1), (n_down, -1.0, 0)):
            ys, xs = np.nonzero(n)
            reps = n[ys, xs]
            yy, xx = np.repeat(ys, reps), np.repeat(xs, reps)
            j = np.concatenate([np.arange(1, r + 1) for r in reps]) if reps.size else np.zeros(0)
            level = ref[yy, xx] + sign * j * threshold
            frac = np.clip((level - l0[yy, xx]) / step[yy, xx], 0.0, 1.0)
            ev = np.empty(yy.size, dtype=EVENT_DTYPE)
            ev["t"] = t_us[i - 1] + np.maximum(np.rint(frac * (t_us[i] - t_us[i - 1])), 1)
            ev["x"], ev["y"], ev["p"] = xx, yy, pol
            out.append(ev)
            ref[ys, xs] += sign * reps * threshold
    events = np.concatenate(out) if out else np.zeros(0, EVENT_DTYPE)
    return events[np.argsort(events["t"], kind="stable")]


def ideal_spikes(gray: np.ndarray, t_us: np.ndarray, steps_per_frame: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free integrate-and-fire spikes of (T, H, W) luminance (1 = one spike per step), frames held
    for ``steps_per_frame`` readout steps, random initial accumulator, reset by subtraction.
    Returns (bits (N, H, W) uint8, step times (N,) int64)."""
    rng = np.random.default_rng(seed)
    acc = rng.uniform(0.0, 1.0, gray.shape[1:])
    bits = np.zeros((len(gray) * steps_per_frame,) + gray.shape[1:], dtype=np.uint8)
    for n in range(bits.shape[0]):
        acc += gray[n // steps_per_frame]
        fire = acc >= 1.0
        bits[n] = fire
        acc[fire] -= 1.0
    dt = np.diff(t_us).mean() / steps_per_frame if len(t_us) > 1 else 1.0
    times = (t_us[0] + np.rint(np.arange(bits.shape[0]) * dt)).astype(np.int64)
    return bits, times


def write_synthetic_corpus(root: str | Path, splits: list[str], size: int = 64, n_frames: int = 32,
                           frame_us: int = 10_000, event_preset: str = "DVS346", spike_preset: str = "vidar_250x400",
                           rgb_camera: dict | None = None) -> Path:
    """A corpus folder (manifest.json, scenes/) of colour layered sweeps with the project's own event and
    spike simulators, in the scene-file schema; scene i uses seed i and gets split ``splits[i]``.
    A stand-in for rendered corpora where Blender is too slow (tests, quick checks).

    ``rgb_camera``: a recipe's `[rgb_camera]` table (`sensors.rgb_camera`) with "shift_px" (dx, dy) for
    the beam splitter's misalignment: the sweep is made at the RGB camera's resolution, the sensor sees
    it through `rgb/to_sensor`, and the `rgb` group holds the captures."""
    from nfs_synth.corpus.events_io import EventWriter
    from nfs_synth.corpus.scene_file import SceneWriter, scene_name
    from nfs_synth.corpus.spikes_io import SpikeWriter
    from nfs_synth.sensors import events as ev_sim, rgb_camera as rgb_cam, spikes as sp_sim

    root = Path(root)
    entries = []
    scale = int(rgb_camera["scale"]) if rgb_camera else 1
    for index, split in enumerate(splits):
        sw = layered_sweep(size=size * scale, n_frames=n_frames, layers=3, blur_per_frame=0.5 * scale,
                           colour=True, seed=index, frame_us=frame_us)
        rgb_sweep = sw
        if rgb_camera:
            shift = np.eye(3)
            shift[:2, 2] = rgb_camera.get("shift_px", (0.0, 0.0))
            to_sensor = rgb_cam.to_sensor_matrix(scale, shift)
            view = rgb_cam.SensorView(to_sensor, size, size, scale)
            sw = SyntheticSweep(np.stack([view(f) for f in sw.frames]), sw.t_us, view(sw.all_in_focus),
                                rgb_cam.bin_to_sensor(sw.focus_frame, scale, np.min),
                                rgb_cam.bin_to_sensor(sw.depth_m, scale, np.min))
        gray = np.stack([ev_sim.rgb_to_gray(f) for f in sw.frames])
        events = ev_sim.simulate(gray, sw.t_us, event_preset, seed=index)
        intensity = np.stack([sp_sim.rgb_to_intensity(f, 1.0) for f in sw.frames])
        spikes = sp_sim.simulate(intensity, sw.t_us, sp_sim.PRESETS[spike_preset], seed=index)
        name = f"scenes/{scene_name(index)}"
        with SceneWriter(root / name, n_frames, size, size) as out:
            for i, f in enumerate(sw.frames):
                out.write_frame(i, f)
            out.write_array("timestamps_us", sw.t_us)
            out.write_array("focus_distance_m", np.linspace(0.5, 3.0, n_frames))
            out.write_array("all_in_focus", sw.all_in_focus)
            out.write_array("depth_m", sw.depth_m)
            params = ev_sim.resolve_params(event_preset)
            writer = EventWriter(out.h5, size, size, {"intensity": "srgb_luminance", **params.as_dict()})
            writer.append(events)
            writer.close(int(sw.t_us[-1]))
            with SpikeWriter(out.h5, size, size, {"preset": spike_preset}) as sp_writer:
                sp_writer.append(spikes)
            if rgb_camera:
                _write_rgb(out, rgb_camera, rgb_sweep, to_sensor, index)
        entries.append({"index": index, "file": name, "split": split, "status": "complete"})
    (root / "manifest.json").write_text(json.dumps({"format": "nfs_synth synthetic corpus", "scenes": entries}))
    return root


def _write_rgb(out, cfg: dict, sweep: SyntheticSweep, to_sensor: np.ndarray, seed: int) -> None:
    from nfs_synth.sensors import rgb_camera as rgb_cam

    camera = rgb_cam.RgbCamera(cfg, np.random.default_rng(seed))
    n = int(cfg["exposure_frames"])
    out.h5.create_group("rgb").attrs.update({"scale": int(cfg["scale"]), "exposure_frames": n})
    captures = [c for f in sweep.frames for c in camera.feed(f)]
    dataset = out.create_dataset("rgb/captures", H=sweep.frames.shape[1] // cfg["scale"],
                                 W=sweep.frames.shape[2] // cfg["scale"], s=int(cfg["scale"]), C=len(captures))
    dataset[:] = np.stack(captures)
    out.write_array("rgb/to_sensor", to_sensor)
    out.write_array("rgb/all_in_focus", sweep.all_in_focus.astype(np.float16).astype(np.float32))
