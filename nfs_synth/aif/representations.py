"""What the networks see of a neuromorphic stream, and the colour conventions around it.

Conventions
- Images: sRGB-encoded float32 in [0, 1], channels first (3, H, W), as in evaluation (`aif.color`); the
  corpus stores linear RGB.
- Events: structured array with fields t (int64 us), x, y (uint16), p (uint8, 1 = ON, 0 = OFF).
- Spikes: planes (N, H, W) of 0/1 with their readout times t_us (N,); the simulator scales full white
  to one spike per step, so a plane average (TFP) is linear intensity in [0, 1].

NeuroRefocusNet input (64 channels, `NFS_BINS`)
- events, `event_stack`: the events between the input time t_in and the target time t_out in 64 equal
  time bins, ordered from t_in to t_out, each pixel holding (#ON - #OFF). When t_out < t_in the bins
  run backwards in time and the polarities are negated, so the sum over bins is always the log-intensity
  change from input to target in contrast-threshold units (Eq. 2). Equal-time bins (the conference
  code uses equal-count bins) keep a bin's meaning independent of the scene's event rate. The sensor's
  ON leak (DVS-Voltmeter's k4 + k5 * L, several events per pixel over a sweep at Table 3's k5, with a
  rate the net cannot tell from one interval) is removed as the hand-crafted methods remove it:
  `event_leak` fits the rate per pixel from the whole sweep, and each bin loses its expected share.
- spikes, `spike_window`: the 64 readout steps nearest to t_out (3.2 ms at 20 kHz); their mean is the
  TFP image (a 64-step window where the TFP literature uses 41).

NeuroMergeNet input (1 channel per stack image)
- events, `event_count_slice`: log(1 + #events) within +-half_window_us of the stack image's time: the in-focus moment of
  a pixel is where the sweep triggers the most events around it.
- spikes, `tfp_image`: the TFP image (64 steps) at the stack image's time: a sharp grey image of what is in focus.
"""
from __future__ import annotations

import numpy as np
import torch

from nfs_synth.aif.refocus import leak_rate
from nfs_synth.color import REC709_WEIGHTS, SRGB_GAMMA, SRGB_KNEE_LINEAR, SRGB_OFFSET, SRGB_SLOPE
from nfs_synth.errors import UsageError

NFS_BINS = 64
# BT.709 luma weights on encoded values (Y'CbCr), matching the corpus' Rec.709 primaries; green is
# what makes them sum to exactly 1, so Y'CbCr inverts.
_KR, _, _KB = REC709_WEIGHTS
_KG = 1.0 - _KR - _KB


def _srgb_encode_torch(x: torch.Tensor) -> torch.Tensor:
    """color.srgb_encode for tensors, differentiable (the clamp keeps the unused branch finite at 0)."""
    x = x.clamp(0.0, 1.0)
    curve = (1 + SRGB_OFFSET) * x.clamp(min=SRGB_KNEE_LINEAR) ** (1 / SRGB_GAMMA) - SRGB_OFFSET
    return torch.where(x <= SRGB_KNEE_LINEAR, SRGB_SLOPE * x, curve)


def luma_chroma_merge(luma_linear: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Y' from a linear grey image (B,1,H,W), Cb/Cr from an sRGB image (B,3,H,W) -> sRGB (Eq. 9's C).

    Y'CbCr rather than the paper's Lab (`color.compose_lab`): it is a few tensor operations, so it runs
    inside the network on any device and in autocast.
    """
    r, g, b = image.unbind(1)
    y_in = _KR * r + _KG * g + _KB * b
    cb, cr = (b - y_in) / (2 * (1 - _KB)), (r - y_in) / (2 * (1 - _KR))
    y = _srgb_encode_torch(luma_linear[:, 0].float())
    r2 = y + 2 * (1 - _KR) * cr
    b2 = y + 2 * (1 - _KB) * cb
    g2 = (y - _KR * r2 - _KB * b2) / _KG
    return torch.stack([r2, g2, b2], 1).clamp(0, 1)


def net_polarity(events: np.ndarray, height: int, width: int) -> np.ndarray:
    """(#ON - #OFF) per pixel of all the given events, (H, W) float32."""
    out = np.zeros((height, width), np.float32)
    np.add.at(out, (events["y"].astype(np.int64), events["x"].astype(np.int64)),
              np.where(events["p"] > 0, 1.0, -1.0).astype(np.float32))
    return out


def event_leak(sweep_polarity: np.ndarray, sweep_us: float, image: np.ndarray) -> np.ndarray:
    """Per-pixel ON-leak rate (events per us) of a sensor whose whole sweep (`sweep_us` long) left the
    net polarity `sweep_polarity` (H, W), for an sRGB image (H, W, 3) of the scene: `refocus.leak_rate`
    (a line in brightness fitted to the sweep's net polarity), with the BT.709 luma of the sRGB values
    as brightness. Returns (H, W) float32."""
    luma = np.asarray(image, np.float32) @ np.float32([_KR, _KG, _KB])
    return leak_rate(sweep_polarity, float(max(sweep_us, 1)), luma)


def event_stack(events: np.ndarray, t_in: int, t_out: int, height: int, width: int,
                bins: int = NFS_BINS, x0: int = 0, y0: int = 0, leak: np.ndarray | None = None) -> np.ndarray:
    """Signed event counts in `bins` equal time bins from t_in to t_out, window [y0:y0+height, x0:x0+width].

    `events` may hold more than the interval and the window; the rest is ignored. `leak` (height, width),
    events per us (`event_leak` of the window), is subtracted at its expected count per bin.
    Returns (bins, H, W) float32.
    """
    if t_in == t_out:
        raise UsageError("event_stack needs distinct input and target times")
    lo, hi = min(t_in, t_out), max(t_in, t_out)
    t = events["t"]
    x = events["x"].astype(np.int64) - x0
    y = events["y"].astype(np.int64) - y0
    keep = (t >= lo) & (t < hi) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    t, x, y = t[keep], x[keep], y[keep]
    sign = np.where(events["p"][keep] > 0, 1.0, -1.0).astype(np.float32)
    b = ((t - lo) * bins // (hi - lo)).astype(np.int64)
    if t_out < t_in:  # run backwards: bin 0 nearest the input time, polarities negated
        b, sign = bins - 1 - b, -sign
    out = np.zeros((bins, height, width), np.float32)
    np.add.at(out, (b, y, x), sign)
    if leak is not None:  # ON leak counts against the direction of the stack, as the polarities do
        out -= np.float32((1.0 if t_out > t_in else -1.0) * (hi - lo) / bins) * leak[None]
    return out


def event_count_slice(events: np.ndarray, t_center: int, half_window_us: int, height: int, width: int,
                      x0: int = 0, y0: int = 0) -> np.ndarray:
    """log(1 + #events) within +-half_window_us of t_center; (1, H, W) float32."""
    t = events["t"]
    x = events["x"].astype(np.int64) - x0
    y = events["y"].astype(np.int64) - y0
    keep = (np.abs(t - t_center) <= half_window_us) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    count = np.zeros((height, width), np.float32)
    np.add.at(count, (y[keep], x[keep]), 1.0)
    return np.log1p(count)[None]


def spike_window(planes: np.ndarray, t_us: np.ndarray, t_center: int, n: int = NFS_BINS) -> np.ndarray:
    """The n consecutive readout steps nearest t_center (shifted inward at the ends); (n, H, W) float32."""
    if len(t_us) < n:
        raise UsageError(f"need {n} spike readout steps around t={t_center} us, the stream has {len(t_us)}")
    start = int(np.clip(np.searchsorted(t_us, t_center) - n // 2, 0, len(t_us) - n))
    return np.asarray(planes[start:start + n], dtype=np.float32)


def spike_planes(read_window, t_center: int, step_us: int, window: tuple[slice, slice] = (slice(None),) * 2,
                 n: int = NFS_BINS) -> np.ndarray:
    """`spike_window` around t_center from a reader `read_window(t_start_us, t_end_us) -> SpikeStream`
    (e.g. `corpus.spikes_io.read_spikes` on an open file); reads a margin so the window can shift
    inward at the ends of the stream and unpacks only those steps. `window` crops (rows, columns)."""
    span = (n + 2) * max(1, int(step_us))
    stream = read_window(int(t_center) - span, int(t_center) + span)
    return spike_window(stream.unpack()[(slice(None), *window)], np.asarray(stream.t_us), t_center, n)


def tfp_image(planes: np.ndarray) -> np.ndarray:
    """TFP intensity (1, H, W) of spike planes: NeuroMergeNet's channel for spikes."""
    return planes.mean(0, keepdims=True)
