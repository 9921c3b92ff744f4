"""Integrate-and-fire spike camera (PKU "Vidar" style): parameters, presets, streaming simulator, .dat files.

Units. Intensity is linear in scene radiance, 0 = black, 1 = full white. Charge is counted in the
same unit per readout step: a pixel adds gain * intensity + dark charge every step, so with the nominal
threshold phi = 1, no noise and subtract reset, full white fires one spike per step and intensity I
fires I / phi spikes per step (at most one per step; the excess saturates). Dark current is given as
the spike rate it causes in the dark at the nominal threshold (Hz), so it does not change with the
readout rate: charge per step = phi * dark_rate_hz / readout_hz.

Readout step n (n = 1, 2, ...) ends at t0 + n / readout_hz (t0 = the first frame's time) and is stamped
with that time, rounded to integer microseconds; its intensity is the rendered signal at that time,
interpolated linearly between the two frames around it (or held from the earlier frame).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.special import gammaincinv

from nfs_synth.color import REC709_LUMA, REC709_WEIGHTS
from nfs_synth.sensors.spike_reconstruction import fit_full_white_rate, tfi, tfp
from nfs_synth.sensors.spikes_kernel import integrate
from nfs_synth.errors import SpikeError
from nfs_synth.sensors.spike_params import PRESETS, SpikeParams, check_section

__all__ = [
    "MODEL_VERSION", "PRESETS", "SpikeError", "SpikeParams", "SpikeSimulator", "SpikeStream",
    "fit_full_white_rate", "from_recipe", "rgb_to_intensity", "simulate", "tfi", "tfp",
]

MODEL_VERSION = "1"
INTENSITY_CONVENTION = (
    "intensity = clip(scale * Rec.709 luminance of linear RGB, 0, 1); charge per readout step = "
    "gain * intensity + dark; nominal threshold phi; noise-free subtract reset fires intensity/phi "
    "spikes per step")


@dataclasses.dataclass
class SpikeStream:
    """Spike bits of N readout steps: packed (N, H, ceil(W/8)) uint8, bit x % 8 of byte x // 8 is pixel x
    of the row (little-endian), padding bits 0; t_us (N,) int64 end time of each step."""

    packed: np.ndarray
    t_us: np.ndarray
    height: int
    width: int

    def __post_init__(self):
        self.packed = np.asarray(self.packed)
        self.t_us = np.asarray(self.t_us)
        expected = (len(self.t_us), self.height, (self.width + 7) // 8)
        if self.packed.dtype != np.uint8 or self.packed.shape != expected:
            raise SpikeError(f"packed must be uint8 of shape {expected}, got {self.packed.dtype} "
                             f"{self.packed.shape}")
        if self.t_us.dtype != np.int64 or self.t_us.ndim != 1:
            raise SpikeError(f"t_us must be a 1-D int64 array, got {self.t_us.dtype} {self.t_us.shape}")

    def __len__(self) -> int:
        return len(self.t_us)

    def unpack(self, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Spikes of steps [start, stop) as bool (n, H, W)."""
        bits = np.unpackbits(self.packed[start:stop], axis=2, bitorder="little")
        return bits[:, :, :self.width].astype(bool)


class SpikeSimulator:
    """Streaming simulator: feed frames one at a time; each call returns the steps since the last frame.

    Memory is the state plus one chunk: (steps between two frames) x H x ceil(W/8) bytes.
    `rng` draws the fixed pattern, the initial charge and the key of the per-step noise, always the same
    number of draws in the same order, so changing one noise magnitude does not reshuffle the others.
    """

    def __init__(self, height: int, width: int, params: SpikeParams, rng: np.random.Generator):
        if not (isinstance(height, (int, np.integer)) and isinstance(width, (int, np.integer))
                and height > 0 and width > 0):
            raise SpikeError(f"height and width must be positive integers, got {height!r}, {width!r}")
        if not isinstance(params, SpikeParams):
            raise SpikeError(f"params must be a SpikeParams, got {type(params).__name__}")
        if not isinstance(rng, np.random.Generator):
            raise SpikeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
        self.height, self.width, self.params = int(height), int(width), params
        shape = (self.height, self.width)
        p = params
        self.noise_key = int(rng.integers(0, 2**64, dtype=np.uint64))
        z_threshold = rng.standard_normal(shape)
        z_gain = rng.standard_normal(shape)
        u_dark = rng.random(shape)
        u_charge = rng.random(shape)
        # Clipping only guards the > 5-sigma tail that spike_params._MAX_SPREAD allows.
        self.threshold_map = (p.threshold * np.maximum(1 + p.threshold_spread * z_threshold, 0.05)
                              ).astype(np.float32)
        self.gain_map = np.maximum(1 + p.gain_spread * z_gain, 0.05).astype(np.float32)
        dark_mean = p.threshold * p.dark_rate_hz / p.readout_hz
        if p.dark_rate_spread > 0:
            shape_k = p.dark_rate_spread ** -2
            dark = gammaincinv(shape_k, u_dark) * (dark_mean / shape_k)
        else:
            dark = np.full(shape, dark_mean)
        self.dark_map = dark.astype(np.float32)
        charge = u_charge * self.threshold_map if p.initial_charge == "random" else np.zeros(shape)
        self._charge = charge.astype(np.float32)
        self._fired = np.zeros(shape, bool)
        self._steps_done = 0
        self._t0 = self._prev_t = None
        self._prev_frame = None

    def feed(self, frame: np.ndarray, t_us: int) -> SpikeStream:
        """Add the rendered frame at t_us; return every readout step ending in (previous t_us, t_us]."""
        frame = _check_frames(np.asarray(frame)[None], (self.height, self.width))[0]
        t_us = _check_time(t_us)
        if self._prev_t is not None and t_us <= self._prev_t:
            raise SpikeError(f"timestamps must increase: {t_us} us after {self._prev_t} us")
        if self._t0 is None:
            self._t0 = t_us
            n_last = 0
        else:
            n_last = self._last_step_before(t_us)
        steps = np.arange(self._steps_done + 1, n_last + 1)
        out = np.empty((len(steps), self.height, (self.width + 7) // 8), np.uint8)
        if len(steps):
            weight = self._weights(steps, self._prev_t, t_us)
            self._run(self._prev_frame[None], (frame - self._prev_frame)[None],
                      np.zeros(len(steps), np.int64), weight, out)
        self._steps_done = n_last
        self._prev_t, self._prev_frame = t_us, frame
        return SpikeStream(out, self._step_times(steps), self.height, self.width)

    def _last_step_before(self, t_us):
        # The epsilon absorbs float rounding when a step ends exactly on t_us.
        return int(math.floor((t_us - self._t0) * self.params.readout_hz / 1e6 + 1e-9))

    def _step_times(self, steps):
        return self._t0 + np.round(steps * (1e6 / self.params.readout_hz)).astype(np.int64)

    def _weights(self, steps, t_a, t_b):
        """Interpolation weight of each step between frames at t_a and t_b."""
        t_end = self._t0 + steps * (1e6 / self.params.readout_hz)
        w = np.clip((t_end - t_a) / (t_b - t_a), 0.0, 1.0)
        if self.params.interpolation == "hold":  # the earlier frame, until a step ends on the next one
            w = np.where(w >= 1.0 - 1e-9, 1.0, 0.0)
        return w.astype(np.float32)

    def _run(self, start, delta, segment, weight, out):
        p = self.params
        integrate(self._charge, self._fired, start, delta, segment, weight, self.gain_map, self.dark_map,
                  self.threshold_map, np.float32(p.post_reset_gain), p.reset == "subtract",
                  np.float32(1.0 / p.photons_full_white if p.photons_full_white > 0 else 0.0),
                  np.float32(p.threshold_jitter), np.uint64(self.noise_key), self._steps_done + 1, out)

    def run_sequence(self, frames: np.ndarray, t_us: np.ndarray) -> SpikeStream:
        """Whole-sequence path: every step of every frame interval in one kernel call (same spikes as
        feeding the frames one by one). Only valid on a fresh simulator."""
        if self._t0 is not None:
            raise SpikeError("run_sequence needs a fresh simulator; use feed() to continue a stream")
        frames = _check_frames(np.asarray(frames), (self.height, self.width))
        t_us = np.asarray([_check_time(t) for t in np.asarray(t_us).ravel()], np.int64)
        if len(t_us) != len(frames) or len(frames) == 0:
            raise SpikeError(f"need one timestamp per frame, got {len(t_us)} for {len(frames)} frames")
        if np.any(np.diff(t_us) <= 0):
            raise SpikeError("timestamps must be strictly increasing")
        self._t0 = int(t_us[0])
        # Interval k gets the steps feed() would return for frame k + 1.
        bounds = np.array([self._last_step_before(int(t)) for t in t_us])
        n_last = int(bounds[-1])
        steps = np.arange(1, n_last + 1)
        segment = np.repeat(np.arange(len(t_us) - 1), np.diff(bounds))
        weight = np.empty(len(steps), np.float32)
        for k in range(len(t_us) - 1):
            lo, hi = bounds[k], bounds[k + 1]
            weight[lo:hi] = self._weights(steps[lo:hi], int(t_us[k]), int(t_us[k + 1]))
        out = np.empty((len(steps), self.height, (self.width + 7) // 8), np.uint8)
        if len(steps):
            self._run(frames[:-1], np.diff(frames, axis=0), segment.astype(np.int64), weight, out)
        self._steps_done = n_last
        self._prev_t, self._prev_frame = int(t_us[-1]), frames[-1]
        return SpikeStream(out, self._step_times(steps), self.height, self.width)


def _check_frames(frames, hw):
    if frames.ndim != 3 or frames.shape[1:] != hw:
        raise SpikeError(f"frames must have shape (T, {hw[0]}, {hw[1]}), got {frames.shape}")
    if not np.issubdtype(frames.dtype, np.number):
        raise SpikeError(f"frames must be numeric, got {frames.dtype}")
    frames = frames.astype(np.float32)  # a copy: the simulator keeps the last frame
    lo, hi = float(frames.min(initial=0.0)), float(frames.max(initial=0.0))  # NaN propagates
    if math.isnan(lo) or math.isnan(hi):
        raise SpikeError("frames contain NaN intensities")
    if lo < 0.0 or hi > 1.0:
        raise SpikeError(f"intensities must lie in [0, 1], got range [{lo}, {hi}]")
    return frames


def _check_time(t):
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer, float, np.floating)) \
            or not math.isfinite(t) or t != int(t):
        raise SpikeError(f"timestamps must be integer microseconds, got {t!r}")
    return int(t)


def simulate(frames: np.ndarray, t_us: np.ndarray, params: SpikeParams | None = None,
             seed: int | np.random.SeedSequence | None = 0) -> SpikeStream:
    """Spikes for a whole sequence: frames (T, H, W) linear intensity in [0, 1], t_us (T,) increasing."""
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise SpikeError(f"frames must have shape (T, H, W), got {frames.shape}")
    sim = SpikeSimulator(frames.shape[1], frames.shape[2], params or PRESETS["ideal"],
                         np.random.default_rng(seed))
    return sim.run_sequence(frames, t_us)


def rgb_to_intensity(rgb_linear: np.ndarray, scale: float) -> np.ndarray:
    """Sensor intensity (H, W) float32 in [0, 1] from a linear Rec.709 render (H, W, 3).

    A spike camera integrates photocurrent, which is linear in scene radiance, so this is the Rec.709
    luminance of the linear render (no tone curve, no gamma) times `scale`, the reciprocal of the
    radiance that counts as full white; brighter pixels saturate at 1.
    """
    rgb = np.asarray(rgb_linear)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise SpikeError(f"rgb_linear must have shape (H, W, 3), got {rgb.shape}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise SpikeError(f"intensity scale must be a positive finite number, got {scale!r}")
    luma = rgb.astype(np.float32) @ REC709_LUMA
    if not np.all(np.isfinite(luma)):
        raise SpikeError("rgb_linear contains NaN or infinite values")
    return np.clip(luma * np.float32(scale), 0.0, 1.0)


def from_recipe(section: dict, seed_seq: np.random.SeedSequence, height: int, width: int
                ) -> tuple[SpikeSimulator, dict]:
    """Simulator and HDF5 attributes from a validated [sensors.spikes] recipe table.

    The preset supplies the noise model; the table overrides readout rate, threshold and options.
    `enabled` is recorded but not acted on: the caller decides whether to simulate.
    """
    params, scale = check_section(section)
    if not isinstance(seed_seq, np.random.SeedSequence):
        raise SpikeError(f"seed_seq must be a numpy SeedSequence, got {type(seed_seq).__name__}")
    sim = SpikeSimulator(height, width, params, np.random.default_rng(seed_seq))
    attrs = {
        "model": "integrate-and-fire", "model_version": MODEL_VERSION, "enabled": bool(section["enabled"]),
        "preset": section["preset"], **params.as_attrs(), "intensity_scale": scale,
        "intensity_convention": INTENSITY_CONVENTION, "rec709_luma": list(REC709_WEIGHTS),
        "dark_charge_per_step_mean": params.threshold * params.dark_rate_hz / params.readout_hz,
        "noise_rng": "splitmix64(key, step, pixel) -> Irwin-Hall(4 bytes) normals",
        "seed_entropy": str(seed_seq.entropy), "seed_spawn_key": np.asarray(seed_seq.spawn_key, np.int64),
        "noise_key": str(sim.noise_key), "height": int(height), "width": int(width),
        "bit_order": "little", "t_us_convention": "end of each readout step, integer microseconds",
    }
    return sim, attrs
