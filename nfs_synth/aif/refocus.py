"""Refocusing one frame to another focus time with events (Eq. 8) or spikes (Eq. 9), on luminance.

An event pixel responds to ln(g + offset), where g is the gray level it is fed: nfs_synth's simulator
feeds sRGB-encoded luminance ("srgb_luminance", its default, as DVS-Voltmeter was calibrated on 8-bit
frames) or linear luminance ("linear_luminance"), and DVS-Voltmeter's dark-current term k2 is the
offset (k2 / 255 on the 0..1 scale).  Eq. 8 is applied in that domain and mapped back to luminance.
Its contrast threshold c is unknown and varies with the sensor, so it is chosen per refocused image by
minimising Eq. 11.  Spikes measure intensity directly: TFP (spike rate in a window) times a gain
fitted against the input frame.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from nfs_synth.color import lightness_from_y, srgb_decode, srgb_encode
from nfs_synth.errors import UsageError

EVENT_INTENSITIES = ("srgb_luminance", "linear_luminance")


def refocus_events(y_input: np.ndarray, polarity_sum: np.ndarray, threshold: float, log_offset: float,
                   intensity: str = "srgb_luminance") -> np.ndarray:
    """Eq. 8: g' = (g + offset) * exp(c * sum p) - offset with g = the sensor's gray level of luminance
    ``y_input``; returns the luminance of g', clipped to [0, 1] (the display range of the result)."""
    g = event_gray(y_input, intensity)
    g = np.clip((g + log_offset) * np.exp(threshold * polarity_sum) - log_offset, 0.0, 1.0)
    return (srgb_decode(g) if intensity == "srgb_luminance" else g).astype(np.float32)


def event_gray(y: np.ndarray, intensity: str) -> np.ndarray:
    """The gray level (0..1) an event pixel of luminance ``y`` was fed."""
    if intensity not in EVENT_INTENSITIES:
        raise UsageError(f"unknown event intensity convention {intensity!r}; expected one of {EVENT_INTENSITIES}")
    return srgb_encode(y) if intensity == "srgb_luminance" else np.clip(y, 0.0, 1.0)


def leak_rate(total_polarity: np.ndarray, duration_us: float, gray: np.ndarray, bins: int = 8) -> np.ndarray:
    """Per-pixel signed event rate (per us) not explained by the focus sweep: the leak of DVS-Voltmeter
    (k4 + k5 * L ON events per us, several events per pixel over a 0.5 s sweep at Table 3's k5)."""
    return leak_from_line(leak_line(total_polarity, gray, bins), duration_us, gray)


def leak_line(total_polarity: np.ndarray, gray: np.ndarray, bins: int = 8) -> np.ndarray:
    """The leak's net polarity over a whole sweep as a line in the gray level: (slope, intercept).

    Over a whole sweep a pixel's true log change is small and of either sign, while leak adds ON events
    at a rate linear in brightness; so the line is fitted to the median net polarity of brightness bins
    (medians ignore the pixels the sweep does change)."""
    edges = np.unique(np.quantile(gray, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 2:  # a uniform image: one brightness, one rate
        return np.array([0.0, np.median(total_polarity)])
    which = np.clip(np.searchsorted(edges, gray, side="right") - 1, 0, len(edges) - 2)
    centres, medians = [], []
    for b in range(len(edges) - 1):
        sel = which == b
        if np.any(sel):
            centres.append(float(np.median(gray[sel])))
            medians.append(float(np.median(total_polarity[sel])))
    return np.polyfit(centres, medians, 1) if len(centres) > 1 else np.array([0.0, medians[0]])


def leak_from_line(line: np.ndarray, duration_us: float, gray: np.ndarray) -> np.ndarray:
    """`leak_line` evaluated per pixel, as events per us (float32); elementwise, so a crop of the
    gray image gives the crop of the whole image's rate."""
    return (np.polyval(line, gray) / duration_us).astype(np.float32)


def sobel_tv_energy(y: np.ndarray, alpha: float, beta: float) -> float:
    """Eq. 11: -alpha * mean Sobel gradient magnitude + beta * mean anisotropic total variation,
    both on L*/100 so the balance does not depend on the intensity scale."""
    img = lightness_from_y(y) / 100.0
    sobel = np.hypot(ndimage.sobel(img, axis=0), ndimage.sobel(img, axis=1)).mean()
    tv = np.abs(np.diff(img, axis=0)).mean() + np.abs(np.diff(img, axis=1)).mean()
    return float(-alpha * sobel + beta * tv)


def estimate_event_threshold(
    y_input: np.ndarray,
    polarity_sum: np.ndarray,
    candidates: np.ndarray,
    alpha: float,
    beta: float,
    log_offset: float,
    intensity: str = "srgb_luminance",
) -> float:
    """The candidate threshold whose Eq. 8 refocus minimises Eq. 11 (an exhaustive search: Eq. 11 is
    not unimodal in c when events are noisy)."""
    if not np.any(polarity_sum):
        return float(np.median(candidates))  # nothing happened: any threshold gives the input
    energies = [sobel_tv_energy(refocus_events(y_input, polarity_sum, c, log_offset, intensity), alpha, beta) for c in candidates]
    return float(candidates[int(np.argmin(energies))])


def spike_gain(rate_at_input: np.ndarray, y_input: np.ndarray) -> float:
    """Least-squares gain g minimising ||g * TFP(t_input) - Y_input||: the inverse of the spike threshold
    in luminance units, estimated against the input frame (the paper's threshold for Eq. 9)."""
    denom = float(np.sum(rate_at_input.astype(np.float64) ** 2))
    if denom == 0.0:
        raise UsageError("no spikes around the input frame's time: cannot calibrate the spike threshold")
    return float(np.sum(rate_at_input * y_input, dtype=np.float64) / denom)
