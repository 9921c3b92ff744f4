"""Intensity from spikes: TFP (window spike count), TFI (inter-spike interval), full-white rate fit.

`spikes` is anything with `unpack(start, stop)` (a SpikeStream) or a (N, H, W) array of 0/1. Both
estimators return firing rate divided by `rate_full_white` (spikes per step at intensity 1), so with the
default 1.0 they return spikes per step; for the noise-free subtract model that is intensity / phi.
"""

from __future__ import annotations

import numpy as np
from nfs_synth.errors import ReconstructionError


def _window(spikes, center: int, half_window: int) -> np.ndarray:
    n = len(spikes)
    if half_window < 0 or center - half_window < 0 or center + half_window >= n:
        raise ReconstructionError(f"window {center} +- {half_window} steps does not fit in {n} steps")
    lo, hi = center - half_window, center + half_window + 1
    if hasattr(spikes, "unpack"):
        return spikes.unpack(lo, hi)
    return np.asarray(spikes[lo:hi]) != 0


def tfp(spikes, center: int, half_window: int = 20, rate_full_white: float = 1.0) -> np.ndarray:
    """Texture from playback: spike count over steps [center - hw, center + hw] / (2 hw + 1) / rate."""
    win = _window(spikes, center, half_window)
    return (win.sum(axis=0, dtype=np.float64) / (win.shape[0] * rate_full_white)).astype(np.float32)


def tfi(spikes, center: int, half_window: int = 20, rate_full_white: float = 1.0) -> np.ndarray:
    """Texture from interval: 1 / (interval * rate) where the interval runs from the last spike in
    [center - hw, center] to the first in [center + 1, center + hw]; 2 hw when either is missing."""
    win = _window(spikes, center, half_window)
    before = win[half_window::-1]  # index 0 = center, going back in time
    after = win[half_window + 1:]
    found = before.any(axis=0) & after.any(axis=0)
    interval = np.argmax(before, axis=0) + np.argmax(after, axis=0) + 1
    interval = np.where(found, interval, 2 * half_window)
    return (1.0 / (interval * rate_full_white)).astype(np.float32)


def fit_full_white_rate(spike_rate: np.ndarray, intensity: np.ndarray, fit_offset: bool = False
                        ) -> tuple[float, float]:
    """Least-squares fit spike_rate ~ rate * intensity (+ offset) against a known image.

    spike_rate: per-pixel spikes per step (e.g. `tfp` over a long window with rate_full_white=1).
    Returns (rate at full white, offset); the threshold in intensity units is 1 / rate. Fit only the
    linear (unsaturated) range of the subtract model; `fit_offset` absorbs the dark rate.
    """
    y = np.asarray(spike_rate, np.float64).ravel()
    x = np.asarray(intensity, np.float64).ravel()
    if x.shape != y.shape:
        raise ReconstructionError(f"spike_rate and intensity differ in size: {y.size} vs {x.size}")
    design = np.stack([x, np.ones_like(x)], axis=1) if fit_offset else x[:, None]
    if (not np.all(np.isfinite(design)) or not np.all(np.isfinite(y)) or not np.any(x)
            or (fit_offset and np.ptp(x) == 0)):
        raise ReconstructionError("the known image must be finite and non-constant (non-zero without offset)")
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    return float(coef[0]), float(coef[1]) if fit_offset else 0.0
