"""Colour conventions: frames are linear RGB; displays, metrics and PNGs use the sRGB curve."""
from __future__ import annotations

import numpy as np

REC709_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 transfer curve on values clipped to [0, 1]."""
    x = np.clip(np.asarray(linear, np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(encoded, np.float32), 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4)).astype(np.float32)


def luminance(linear_rgb: np.ndarray) -> np.ndarray:
    """Rec.709 / sRGB relative luminance of linear RGB (..., 3) -> (...)."""
    return np.asarray(linear_rgb, np.float32) @ REC709_LUMA


def to_uint8(encoded: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(encoded) * 255.0), 0, 255).astype(np.uint8)
