"""Merging a focal stack into one all-in-focus image (Eq. 5) and the per-pixel focus measures.

Hand-crafted weights come from the neuromorphic stream: Eq. 12 (event polarity symmetry around the
in-focus time) or Eq. 13 (local variance of the spike rate), Gaussian-smoothed and normalised over the
stack.  The classical baselines work on rendered frames and show what a perfect image focal stack gives.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage
from scipy.special import logsumexp

from nfs_synth.aif.streams import EventStack, SpikeStack
from nfs_synth.errors import UsageError


def normalise_weights(scores: np.ndarray, sharpness: float = 1.0, floor: float = 1e-12) -> np.ndarray:
    """Weights proportional to scores**sharpness along axis 0, summing to 1 per pixel.

    Computed in the log domain: with a large exponent the plain ratio underflows to 0/0.  Pixels whose
    scores are all zero get equal weights.
    """
    s = np.asarray(scores, dtype=np.float64)
    if np.any(s < 0):
        raise UsageError("focus scores must be non-negative")
    log_s = sharpness * np.log(s + floor)
    return np.exp(log_s - logsumexp(log_s, axis=0, keepdims=True)).astype(np.float32)


def merge_stack(stack: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Eq. 5: per-pixel weighted sum of a (K, H, W, C) stack with (K, H, W) weights, the same weight for
    every channel."""
    return np.einsum("khwc,khw->hwc", stack, weights).astype(np.float32)


def event_symmetry_scores(events: EventStack, indices: list[int], sigma: float) -> np.ndarray:
    """Eq. 12 at each grid index: max(min(OFF before, ON after), min(ON before, OFF after)), counted over
    the whole sweep, then Gaussian-smoothed over the image (a single pixel has too few events)."""
    scores = []
    for k in indices:
        on_before, off_before = events.on[k], events.off[k]
        on_after, off_after = events.total_on - on_before, events.total_off - off_before
        f = np.maximum(np.minimum(off_before, on_after), np.minimum(on_before, off_after)).astype(np.float32)
        scores.append(ndimage.gaussian_filter(f, sigma) if sigma > 0 else f)
    return np.stack(scores)


def spike_rate_variance_scores(spikes: SpikeStack, steps: list[int], half_window: int, sigma: float) -> np.ndarray:
    """Eq. 13 at each readout step: local variance (Gaussian window ``sigma``) of the spike rate counted
    in the window U(t) of 2*half_window+1 steps; a sharp texture fires unevenly across neighbours."""
    scores = []
    for k in steps:
        rate = spikes.tfp(k, half_window).astype(np.float64)
        mean = ndimage.gaussian_filter(rate, sigma)
        scores.append(np.maximum(ndimage.gaussian_filter(rate * rate, sigma) - mean * mean, 0.0))
    return np.stack(scores).astype(np.float32)


def _gray(stack: np.ndarray) -> np.ndarray:
    return stack.mean(axis=-1) if stack.ndim == 4 else stack


def laplacian_energy_fusion(stack: np.ndarray, window: int = 9, median: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel selection of the frame with the largest local Laplacian energy (``window`` box), the
    index map median-filtered against speckle.  Returns (image, index map)."""
    gray = _gray(stack).astype(np.float32)
    energy = np.stack([cv2.boxFilter(cv2.Laplacian(g, cv2.CV_32F, ksize=3) ** 2, -1, (window, window)) for g in gray])
    index = ndimage.median_filter(np.argmax(energy, axis=0), size=median, mode="nearest")
    image = np.take_along_axis(stack, index[None, ..., None], axis=0)[0]
    return image.astype(np.float32), index


def _pyramid(img: np.ndarray, levels: int) -> list[np.ndarray]:
    gauss = [img]
    for _ in range(levels):
        gauss.append(cv2.pyrDown(gauss[-1]))
    lap = [g - cv2.pyrUp(n, dstsize=(g.shape[1], g.shape[0])) for g, n in zip(gauss[:-1], gauss[1:])]
    return lap + [gauss[-1]]


def laplacian_pyramid_fusion(stack: np.ndarray, levels: int = 4, window: int = 5) -> np.ndarray:
    """Laplacian-pyramid fusion: at each detail level keep the coefficient of the frame with the largest
    local energy, average the base level, collapse."""
    h, w = stack.shape[1:3]
    levels = max(0, min(levels, int(np.log2(min(h, w))) - 2))
    pyramids = [_pyramid(f.astype(np.float32), levels) for f in stack]
    fused = []
    for lvl in range(levels):
        coeffs = np.stack([p[lvl] for p in pyramids])
        energy = np.stack([cv2.boxFilter(_gray(c[None])[0] ** 2, -1, (window, window)) for c in coeffs])
        pick = np.argmax(energy, axis=0)
        fused.append(np.take_along_axis(coeffs, pick[None, ..., None], axis=0)[0])
    out = np.mean([p[levels] for p in pyramids], axis=0)
    for lvl in reversed(range(levels)):
        out = cv2.pyrUp(out, dstsize=(fused[lvl].shape[1], fused[lvl].shape[0])) + fused[lvl]
    return np.clip(out, 0.0, 1.0).astype(np.float32)
