"""Colour conventions, one home for each: frames are linear Rec.709 RGB; displays, metrics and PNGs use the
sRGB curve.

Methods and metrics work on sRGB-encoded images in [0, 1] (linear values encoded with the sRGB curve,
then clipped).  The refocusing equations act on intensity: Lab's L is a function of the luminance Y
alone, so L is taken to linear Y (what a neuromorphic pixel integrates), changed there, and recombined
with the input's a*b* (the paper's colour compensation C).
"""
from __future__ import annotations

import warnings

import numpy as np

# Rec.709 / sRGB relative-luminance weights of linear RGB; they sum to 1.
REC709_WEIGHTS = (0.2126, 0.7152, 0.0722)
REC709_LUMA = np.array(REC709_WEIGHTS, np.float32)
# IEC 61966-2-1: linear slope below the knee, power 1/GAMMA with offset above it.
SRGB_KNEE_LINEAR, SRGB_KNEE_ENCODED = 0.0031308, 0.04045
SRGB_SLOPE, SRGB_GAMMA, SRGB_OFFSET = 12.92, 2.4, 0.055


def srgb_curve(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve on values >= 0, not clipped: values above white follow the same
    curve (the event simulator's gray scale needs them)."""
    # Computed in the input's precision (float32 arrays stay float32; a scalar is float64) and returned
    # as float32, so array and scalar inputs give exactly what they gave before the curve had one home.
    x = np.asarray(linear)
    return np.where(x <= SRGB_KNEE_LINEAR, SRGB_SLOPE * x,
                    (1 + SRGB_OFFSET) * np.power(x, 1 / SRGB_GAMMA) - SRGB_OFFSET).astype(np.float32, copy=False)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 transfer curve on values clipped to [0, 1]."""
    return srgb_curve(np.clip(np.asarray(linear, np.float32), 0.0, 1.0))


_HALF_LUT: np.ndarray | None = None


def srgb_encode_half(linear: np.ndarray) -> np.ndarray:
    """`srgb_encode` of a float16 array through a table of all 65,536 float16 values: the same float32
    results, 1.6x faster on 256 px training crops (the corpus stores frames in float16)."""
    global _HALF_LUT
    if _HALF_LUT is None:
        with np.errstate(invalid="ignore"):  # the table's NaN entries stay NaN, as srgb_encode keeps them
            _HALF_LUT = srgb_encode(np.arange(1 << 16, dtype=np.uint16).view(np.float16))
    linear = np.asarray(linear)
    if linear.dtype != np.float16:
        raise TypeError(f"srgb_encode_half needs float16, got {linear.dtype}")
    return _HALF_LUT[linear.view(np.uint16)]


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(encoded, np.float32), 0.0, 1.0)
    return np.where(x <= SRGB_KNEE_ENCODED, x / SRGB_SLOPE,
                    np.power((x + SRGB_OFFSET) / (1 + SRGB_OFFSET), SRGB_GAMMA)).astype(np.float32)


def luminance(linear_rgb: np.ndarray) -> np.ndarray:
    """Rec.709 / sRGB relative luminance of linear RGB (..., 3) -> (...)."""
    return np.asarray(linear_rgb, np.float32) @ REC709_LUMA


def to_uint8(encoded: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(encoded) * 255.0), 0, 255).astype(np.uint8)


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
    from skimage import color as skcolor  # Lab only for the methods: previews and sensors skip skimage

    return skcolor.rgb2lab(srgb_encode(linear_rgb))


def compose_lab(luminance_y: np.ndarray, lab_reference: np.ndarray) -> np.ndarray:
    """sRGB image whose L* comes from ``luminance_y`` and whose a*b* come from ``lab_reference``."""
    from skimage import color as skcolor

    lab = np.empty(lab_reference.shape, dtype=np.float64)
    lab[..., 0] = np.clip(lightness_from_y(luminance_y), 0.0, 100.0)
    lab[..., 1:] = lab_reference[..., 1:]
    with warnings.catch_warnings():
        # skimage warns when out-of-gamut a*b* give negative Z; the result is clipped below anyway.
        warnings.simplefilter("ignore", UserWarning)
        rgb = skcolor.lab2rgb(lab)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)
