"""DVS-Voltmeter-style stochastic event simulator (Lin et al., ECCV 2022), streaming.

Model, corrections to the reference implementation and options: docs/events.md.
Frames are gray on the 0..255 scale (see `rgb_to_gray`), timestamps integer microseconds.
"""
from __future__ import annotations

import dataclasses
import functools
import json

import numpy as np

from nfs_synth.color import REC709_LUMA, srgb_curve
from nfs_synth.sensors.dvs import (DVS240, DVS346, EVENT_DTYPE, INTENSITY_MODES, PARAM_NAMES, PRESETS, TABLE3_RANGES,
                                   DVSParams, check_section, resolve_params, sample_params)
from nfs_synth.errors import EventsError
from nfs_synth.sensors.event_nonideal import NonIdeal, NonIdealEvents
from nfs_synth.sensors.event_simulator import EventSimulator

__all__ = ["DVS240", "DVS346", "EVENT_DTYPE", "MODEL", "MODEL_VERSION", "PARAM_NAMES", "PRESETS", "TABLE3_RANGES",
           "DVSParams", "EventSimulator", "EventsError", "from_recipe", "resolve_params",
           "rgb_to_gray", "sample_params", "simulate"]

MODEL = "DVS-Voltmeter (Lin et al., ECCV 2022), nfs_synth corrected"
# Changes whenever the same seed gives other events (2: the 1024-layer ziggurat, one draw per step).
MODEL_VERSION = "nfs_synth.events/2"



def simulate(frames, t_us, params, seed, *, device=None, **options) -> np.ndarray:
    """Events of a whole sequence: frames (T, H, W) gray 0..255, t_us (T,) increasing int.

    device (a torch device name) runs `TorchEventSimulator` there instead of the numba kernel:
    the same statistics, not the same events."""
    frames = np.asarray(frames)
    t_us = np.asarray(t_us)
    if frames.ndim != 3:
        raise EventsError(f"frames must be (T, H, W), got shape {frames.shape}")
    if t_us.shape != (frames.shape[0],):
        raise EventsError(f"t_us must have shape ({frames.shape[0]},), got {t_us.shape}")
    if t_us.dtype.kind not in "iu":
        raise EventsError(f"t_us must be integer microseconds, got dtype {t_us.dtype}")
    if np.any(np.diff(t_us) <= 0):
        i = int(np.flatnonzero(np.diff(t_us) <= 0)[0]) + 1
        raise EventsError(f"t_us must be strictly increasing (t_us[{i}] = {t_us[i]} <= {t_us[i - 1]})")
    if device is None:
        make = EventSimulator
    else:
        from nfs_synth.sensors.events_torch import TorchEventSimulator  # torch only when asked for
        make = functools.partial(TorchEventSimulator, device=device)
    sim = make(frames.shape[1], frames.shape[2], params, np.random.default_rng(seed), **options)
    chunks = [sim.feed(f, t) for f, t in zip(frames, t_us.tolist())]
    return np.concatenate(chunks) if chunks else np.empty(0, EVENT_DTYPE)


def rgb_to_gray(rgb_linear: np.ndarray, mode: str = "srgb_luminance") -> np.ndarray:
    """Linear RGB (H, W, 3) -> gray (H, W) float32 on the simulator's 0..255 scale.

    "srgb_luminance": Rec.709 luminance, sRGB-encoded, *255, not clipped or rounded (the
    reference's constants were calibrated on 8-bit display frames; values above white
    follow the same curve).  "linear_luminance": luminance*255.  Negative luminance
    (denoiser undershoot) is clamped to 0.
    """
    if mode not in INTENSITY_MODES:
        raise EventsError(f"unknown intensity mode {mode!r}; known: {list(INTENSITY_MODES)}")
    rgb = np.asarray(rgb_linear)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise EventsError(f"rgb_linear must be (H, W, 3), got shape {rgb.shape}")
    rgb = rgb.astype(np.float32, copy=False)
    kr, kg, kb = REC709_LUMA
    lum = rgb[..., 0] * kr + rgb[..., 1] * kg + rgb[..., 2] * kb
    if not np.isfinite(lum).all():
        raise EventsError("rgb_linear contains NaN or infinite values")
    np.maximum(lum, 0.0, out=lum)
    if mode == "srgb_luminance":
        lum = srgb_curve(lum)
    return (lum * np.float32(255.0)).astype(np.float32, copy=False)


def _child(seed_seq: np.random.SeedSequence, i: int) -> np.random.SeedSequence:
    # Like spawn(), without mutating the caller's sequence.
    return np.random.SeedSequence(seed_seq.entropy, spawn_key=(*seed_seq.spawn_key, i),
                                  pool_size=seed_seq.pool_size)


def from_recipe(section: dict, seed_seq: np.random.SeedSequence, height: int,
                width: int) -> tuple[EventSimulator, dict]:
    """Build the simulator of a `[sensors.events]` recipe table; returns (sim, attrs).

    Parameters come from the preset (or a draw from `ranges` when preset is "random"),
    then any k1..k6 that is not None overrides it.  Parameters and simulator noise use
    two independent children of `seed_seq`, so switching the preset or overriding a k
    leaves the noise stream unchanged.  The caller acts on `enabled`.
    """
    ranges, overrides, options = check_section(section)
    if not isinstance(seed_seq, np.random.SeedSequence):
        raise EventsError(f"seed_seq must be a numpy SeedSequence, got {type(seed_seq).__name__}")
    preset, intensity = section["preset"], section["intensity"]
    if preset == "random":
        base = sample_params(np.random.default_rng(_child(seed_seq, 0)), ranges)
    else:
        base = resolve_params(preset)
    params = dataclasses.replace(base, **overrides)
    # rgb_to_gray's frames are on 0..255: scale=1 states it (a dark scene is no [0, 1] mistake)
    sim = EventSimulator(height, width, params, np.random.default_rng(_child(seed_seq, 1)), scale=1.0, **options)
    nonideal = NonIdeal(**section["nonideal"])
    if nonideal.any:           # a third stream of its own: off, the model's events stay what they were
        sim = NonIdealEvents(sim, nonideal, np.random.default_rng(_child(seed_seq, 2)), height, width)
    attrs = {
        "model": MODEL,
        "model_version": MODEL_VERSION,
        "enabled": bool(section["enabled"]),
        "preset": preset,
        **params.as_dict(),
        "overridden": json.dumps(sorted(overrides)),
        "ranges_json": json.dumps({n: list(ranges[n]) for n in PARAM_NAMES}),
        **options,
        "intensity": intensity,
        "intensity_scale": "gray 0..255",
        "seed_entropy": str(seed_seq.entropy),
        "seed_spawn_key": json.dumps(list(seed_seq.spawn_key)),
        "time_unit": "us",
        "polarity": "1 = ON, 0 = OFF",
        **(nonideal.as_attrs() if nonideal.any else {}),
    }
    return sim, attrs
