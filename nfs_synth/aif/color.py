"""Colour conventions of the reconstruction methods and metrics (Lab on top of ``nfs_synth.colour``).

Scene files store linear Rec.709 RGB.  Methods and metrics work on sRGB-encoded images in [0, 1]
(linear values encoded with the sRGB curve, then clipped).  The refocusing equations act on intensity:
Lab's L is a function of the luminance Y alone, so L is taken to linear Y (what a neuromorphic pixel
integrates), changed there, and recombined with the input's a*b* (the paper's colour compensation C).
"""

from __future__ import annotations

import warnings

import numpy as np
from skimage import color as skcolor

from ..colour import luminance, srgb_decode, srgb_encode  # noqa: F401  (re-exported)

_BT601_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_DELTA = 6.0 / 29.0


def luma601(srgb: np.ndarray) -> np.ndarray:
    """BT.601 luma Y' of sRGB-encoded RGB in [0, 1] (the "y" metric convention, no 16-235 offset)."""
    return np.asarray(srgb, dtype=np.float32) @ _BT601_LUMA


def lightness_from_y(y: np.ndarray) -> np.ndarray:
    """CIE L* (0..100) from relative luminance Y (white = 1)."""
    y = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    f = np.where(y > _DELTA**3, np.cbrt(y), y / (3 * _DELTA**2) + 4.0 / 29.0)
    return 116.0 * f - 16.0


def lab_from_linear(linear_rgb: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) of linear Rec.709 RGB."""
    return skcolor.rgb2lab(srgb_encode(linear_rgb))


def compose_lab(luminance_y: np.ndarray, lab_reference: np.ndarray) -> np.ndarray:
    """sRGB image whose L* comes from ``luminance_y`` and whose a*b* come from ``lab_reference``."""
    lab = np.empty(lab_reference.shape, dtype=np.float64)
    lab[..., 0] = np.clip(lightness_from_y(luminance_y), 0.0, 100.0)
    lab[..., 1:] = lab_reference[..., 1:]
    with warnings.catch_warnings():
        # skimage warns when out-of-gamut a*b* give negative Z; the result is clipped below anyway.
        warnings.simplefilter("ignore", UserWarning)
        rgb = skcolor.lab2rgb(lab)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)
