"""The lens aperture's image: the spectrum of a disk or of Cycles' regular polygon, and evenly spread
points on it (for the visibility correction)."""
from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy.special import j1

from nfs_synth.errors import LayeredSettingsError

# Below this diameter (px) the aperture's image is far smaller than the pixel filter: no blur.
SHARP_PX = 0.05
# 2 J1(x) / x is tabulated at this step: linear interpolation errs by at most step^2 / 32 (|f''| <= 1/4),
# 2e-6 of the DC term, and costs a fraction of evaluating J1 at every frequency of every slab and frame.
_AIRY_STEP = 1.0 / 128
_airy_table = np.ones(1, np.float32)


def disk_spectrum(diameter_px: float, radial_freq: np.ndarray) -> np.ndarray:
    """Fourier transform (unit DC, real) of a uniform disk of the given diameter at radial frequencies
    in cycles per pixel: 2 J1(x) / x with x = pi * diameter * radial_freq, from a table. float32."""
    global _airy_table
    if diameter_px < SHARP_PX:
        return np.ones(np.shape(radial_freq), np.float32)
    radial_freq = np.asarray(radial_freq, np.float32)
    scale = np.float32(np.pi * diameter_px / _AIRY_STEP)  # radial frequency -> table index
    needed = int(scale * radial_freq.max()) + 2
    table = _airy_table  # one reference per call: frame threads may grow the global meanwhile
    if needed > len(table):  # grow (doubling), once per new widest blur
        arg = np.arange(max(needed, 2 * len(table))) * _AIRY_STEP
        safe = np.where(arg > 0, arg, 1.0)
        table = _airy_table = np.where(arg > 0, 2.0 * j1(safe) / safe, 1.0).astype(np.float32)
    return _lookup(radial_freq, scale, table)


@njit(cache=True, nogil=True)
def _lookup(radial, scale, table):
    out = np.empty_like(radial)
    flat, res = radial.ravel(), out.ravel()
    for i in range(flat.size):
        x = flat[i] * scale
        k = int(x)
        res[i] = table[k] + (x - k) * (table[k + 1] - table[k])
    return out


def aperture_spectrum(diameter_px: float, fy: np.ndarray, fx: np.ndarray, blades: int = 0,
                      rotation_rad: float = 0.0, flipped: bool = False) -> np.ndarray:
    """Fourier transform (unit DC) of the aperture's image, at frequencies fy, fx in cycles per pixel.

    blades 0: a uniform disk of the given diameter (2 J1(x)/x). blades >= 3: Cycles' regular polygon
    inscribed in that circle, its first vertex at rotation + pi/blades from +x (y up). Points nearer
    than the focus plane see the aperture rotated by 180 degrees (`flipped`); that matters for odd blades.
    fy runs down the image rows, as numpy's axis 0 does.
    """
    radius = 0.5 * diameter_px
    kx, ky = 2.0 * np.pi * fx, 2.0 * np.pi * fy
    if radius < 0.5 * SHARP_PX:
        return np.ones(np.broadcast_shapes(np.shape(kx), np.shape(ky)), np.complex128)
    if blades == 0:
        return disk_spectrum(diameter_px, np.hypot(fy, fx)).astype(np.complex128)
    angles = rotation_rad + np.pi / blades + 2.0 * np.pi * np.arange(blades) / blades
    sign = -1.0 if flipped else 1.0
    # (x, y) with y up -> image (col, row) with rows down.
    verts = sign * radius * np.stack([np.cos(angles), -np.sin(angles)], axis=1)
    a, b = verts, np.roll(verts, -1, axis=0)
    mid, edge = 0.5 * (a + b), b - a
    normal = np.stack([edge[:, 1], -edge[:, 0]], axis=1)
    normal *= np.sign(np.sum(normal * mid, axis=1, keepdims=True))  # outward: the centre is at 0
    area = 0.5 * blades * radius ** 2 * math.sin(2.0 * np.pi / blades)
    k2 = kx ** 2 + ky ** 2
    total = np.zeros(np.broadcast_shapes(np.shape(kx), np.shape(ky)), np.complex128)
    for (nx, ny), (mx, my), (ex, ey) in zip(normal, mid, edge):
        # Divergence theorem: F(k) = i/|k|^2 * sum over edges of (k.n) * integral of exp(-i k.x) ds,
        # with |n| = edge length; the edge integral is exp(-i k.mid) * sinc(k.edge / 2).
        total += (kx * nx + ky * ny) * np.exp(-1j * (kx * mx + ky * my)) \
            * np.sinc((kx * ex + ky * ey) / (2.0 * np.pi))
    safe = np.where(k2 > 0, k2, 1.0)
    return np.where(k2 > 0, 1j * total / (safe * area), 1.0)


def aperture_samples(n: int, blades: int = 0, rotation_rad: float = 0.0) -> np.ndarray:
    """n points spread evenly over the aperture (unit circumradius), as (row, col) offsets with rows
    down, in the orientation of `aperture_spectrum` (unflipped). Disk: Vogel's golden-angle spiral;
    polygon: its triangles from the centre, each filled with a share of the points by an
    area-preserving map of a 2-D low-discrepancy sequence. Deterministic."""
    if n < 1:
        raise LayeredSettingsError(f"need at least one aperture sample, got {n}")
    golden = math.pi * (3.0 - math.sqrt(5.0))
    if blades == 0:
        i = np.arange(n) + 0.5
        r, theta = np.sqrt(i / n), i * golden
        return np.stack([-r * np.sin(theta), r * np.cos(theta)], axis=1)
    angles = rotation_rad + np.pi / blades + 2.0 * np.pi * np.arange(blades + 1) / blades
    verts = np.stack([-np.sin(angles), np.cos(angles)], axis=1)  # (row, col), rows down
    out = []
    for t in range(blades):
        m = n // blades + (t < n % blades)
        a = np.sqrt((np.arange(m) + 0.5) / max(m, 1))
        b = (np.arange(m) * golden / (2.0 * np.pi) + 0.5 / max(m, 1)) % 1.0
        out.append(a[:, None] * ((1.0 - b)[:, None] * verts[t] + b[:, None] * verts[t + 1]))
    return np.concatenate(out)
