"""Refocus-time selection (paper Algorithm 1) and the uniform selection of the ablation."""

from __future__ import annotations

from typing import Callable

import numpy as np
from nfs_synth.errors import UsageError

GOLDEN = (1.0 + 5.0**0.5) / 2.0


def golden_section_max(f: Callable[[float], float], lo: float, hi: float, tol: float) -> float:
    """Maximiser of a unimodal ``f`` on [lo, hi] by golden-section search, stopping when the bracket
    is at most ``tol`` wide (Algorithm 1's mu); returns the bracket's middle.

    Algorithm 1 evaluates both interior points every iteration; one of them always coincides with a
    point of the previous iteration, so it is reused (same result, one evaluation per step).
    """
    if not hi > lo:
        raise UsageError(f"empty search interval [{lo}, {hi}]")
    if tol <= 0:
        raise UsageError("the tolerance mu must be positive")
    left, right = float(lo), float(hi)
    t1, t2 = right - (right - left) / GOLDEN, left + (right - left) / GOLDEN
    f1, f2 = f(t1), f(t2)
    while right - left > tol:
        if f1 > f2:
            right, t2, f2 = t2, t1, f1
            t1 = right - (right - left) / GOLDEN
            f1 = f(t1)
        else:
            left, t1, f1 = t1, t2, f2
            t2 = left + (right - left) / GOLDEN
            f2 = f(t2)
    return 0.5 * (left + right)


def patch_grid(shape: tuple[int, int], n: int) -> list[tuple[slice, slice]]:
    """N x N non-overlapping patches covering an (H, W) image (sizes differ by at most one pixel)."""
    h, w = shape
    if not 1 <= n <= min(h, w):
        raise UsageError(f"a {n}x{n} patch grid does not fit a {w}x{h} image")
    ys, xs = np.linspace(0, h, n + 1).round().astype(int), np.linspace(0, w, n + 1).round().astype(int)
    return [(slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1])) for i in range(n) for j in range(n)]


def select_refocus_indices(
    sharpness: Callable[[int, tuple[slice, slice]], float],
    shape: tuple[int, int],
    n_grid: int,
    n_steps: int,
    mu: float,
) -> list[int]:
    """Per-patch golden-section search over grid indices 0..n_steps-1 for the sharpest refocus (Eq. 10).

    ``sharpness(k, patch)`` is the variance of the patch refocused to grid index ``k``.  Returns the
    sorted distinct indices found (patches in focus at the same time share one refocused image).
    """
    found = set()
    for patch in patch_grid(shape, n_grid):
        t = golden_section_max(lambda u: sharpness(int(round(u)), patch), 0.0, float(n_steps - 1), mu)
        found.add(int(round(t)))
    return sorted(found)


def uniform_indices(n_steps: int, count: int) -> list[int]:
    """``count`` grid indices evenly spread over the sweep (the paper's "Uniform" ablation)."""
    if count < 1:
        raise UsageError("need at least one refocus time")
    return sorted(set(np.linspace(0, n_steps - 1, count).round().astype(int).tolist()))
