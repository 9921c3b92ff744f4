"""Event-camera non-idealities around the DVS-Voltmeter model, each off at 0 (docs/events.md).

Definitions follow v2e (Hu, Liu, Delbruck, CVPRW 2021), adapted to a simulator fed frame by frame:
- photoreceptor low-pass: a first-order filter of each pixel's gray level before the model, with a
  cutoff proportional to intensity (`lowpass_cutoff_hz` at full white, 255), time constant
  tau = 1 / (2 pi f): a dark pixel answers slower, as in v2e. The discrete update is exact for an input
  held over each frame interval, so a step reaches 1 - 1/e of its height after tau.
- background activity: shot-noise events, a Poisson process of `background_rate_hz` per pixel, ON or
  OFF with equal probability (v2e's shot noise; v2e also shapes it by intensity, we do not).
- hot pixels: a fixed random `hot_pixel_fraction` of the pixels fires ON events as a Poisson process of
  `hot_pixel_rate_hz` (v2e models leaky pixels through threshold mismatch; a fixed-rate process is
  what a calibration of a real sensor's hot pixels measures).
- timestamp jitter: Gaussian with `jitter_us` standard deviation, kept within the frame interval so
  the stream stays sorted across intervals.
- refractory period: after an event, a pixel drops every event within `refractory_us`; applied last,
  so no two events of one pixel in the stream are closer (v2e applies it per timestep of its model).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numba
import numpy as np

from nfs_synth.sensors.dvs import EVENT_DTYPE

DARKEST = 1.0        # gray level below which the low-pass cutoff stops falling (v2e: a dark-current floor)


@dataclass(frozen=True)
class NonIdeal:
    refractory_us: float = 0.0
    background_rate_hz: float = 0.0
    hot_pixel_fraction: float = 0.0
    hot_pixel_rate_hz: float = 0.0
    lowpass_cutoff_hz: float = 0.0
    jitter_us: float = 0.0

    @property
    def any(self) -> bool:
        return any(asdict(self).values())

    def as_attrs(self) -> dict:
        return {f"nonideal_{k}": float(v) for k, v in asdict(self).items()}


@numba.njit(cache=True)
def _refractory_keep(t, x, y, last, period):
    """Keep mask: an event survives when its pixel's last kept event is at least `period` before."""
    keep = np.zeros(len(t), np.bool_)
    for i in range(len(t)):
        if t[i] - last[y[i], x[i]] >= period:
            keep[i] = True
            last[y[i], x[i]] = t[i]
    return keep


class NonIdealEvents:
    """Wraps an event simulator: `feed(gray, t_us)` low-passes the frame, runs the model, adds noise
    events, jitters, sorts, and applies the refractory period. `rng` is this layer's own stream."""

    def __init__(self, sim, settings: NonIdeal, rng: np.random.Generator, height: int, width: int):
        self.sim, self.s, self.rng = sim, settings, rng
        self.height, self.width = height, width
        hot = rng.random((height, width)) < settings.hot_pixel_fraction
        self.hot_y, self.hot_x = (a.astype(np.uint16) for a in np.nonzero(hot))
        self.last = np.full((height, width), np.iinfo(np.int64).min // 2, np.int64)
        self.filtered: np.ndarray | None = None
        self.t_prev: int | None = None

    def feed(self, gray: np.ndarray, t_us: int) -> np.ndarray:
        gray = self._lowpass(np.asarray(gray, np.float32), int(t_us))
        events = self.sim.feed(gray, t_us)
        t0, self.t_prev = self.t_prev, int(t_us)
        if t0 is None:
            return events
        events = np.concatenate([events, self._noise(t0, int(t_us))])
        if self.s.jitter_us > 0 and len(events):
            jitter = np.rint(self.rng.normal(0.0, self.s.jitter_us, len(events))).astype(np.int64)
            events["t"] = np.clip(events["t"] + jitter, t0, int(t_us))
        events = events[np.argsort(events["t"], kind="stable")]
        if self.s.refractory_us > 0 and len(events):
            events = events[_refractory_keep(events["t"], events["x"], events["y"], self.last,
                                             np.int64(math.ceil(self.s.refractory_us)))]
        return events

    def _lowpass(self, gray: np.ndarray, t_us: int) -> np.ndarray:
        if self.s.lowpass_cutoff_hz <= 0:
            return gray
        if self.filtered is None:
            self.filtered = gray.copy()          # settled at the first frame
        else:
            dt = (t_us - self.t_prev) * 1e-6
            tau = 1.0 / (2 * np.pi * self.s.lowpass_cutoff_hz * np.maximum(gray, DARKEST) / 255.0)
            self.filtered += (1.0 - np.exp(-dt / tau)).astype(np.float32) * (gray - self.filtered)
        return self.filtered.copy()

    def _noise(self, t0: int, t1: int) -> np.ndarray:
        """Background and hot-pixel events in (t0, t1]: Poisson counts, uniform times."""
        dt, parts = (t1 - t0) * 1e-6, []
        if self.s.background_rate_hz > 0:
            n = self.rng.poisson(self.s.background_rate_hz * dt * self.height * self.width)
            part = np.empty(n, EVENT_DTYPE)
            part["y"] = self.rng.integers(0, self.height, n)
            part["x"] = self.rng.integers(0, self.width, n)
            part["p"] = self.rng.integers(0, 2, n)
            parts.append(part)
        if self.s.hot_pixel_rate_hz > 0 and len(self.hot_x):
            counts = self.rng.poisson(self.s.hot_pixel_rate_hz * dt, len(self.hot_x))
            part = np.empty(int(counts.sum()), EVENT_DTYPE)
            part["y"], part["x"], part["p"] = np.repeat(self.hot_y, counts), np.repeat(self.hot_x, counts), 1
            parts.append(part)
        noise = np.concatenate(parts) if parts else np.empty(0, EVENT_DTYPE)
        noise["t"] = self.rng.integers(t0 + 1, t1 + 1, len(noise))
        return noise
