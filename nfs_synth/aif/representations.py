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

import numba
import numpy as np
import torch

from nfs_synth.aif.refocus import leak_from_line, leak_line
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
    sign = np.where(events["p"] > 0, 1.0, -1.0)
    return _counts(events["y"].astype(np.int64) * width + events["x"], sign, height * width).reshape(height, width)


def _counts(flat_index: np.ndarray, weights: np.ndarray | None, size: int) -> np.ndarray:
    """Per-cell sums of +-1 or 1 weights, float32 (exact: integer sums far below 2**24)."""
    return np.bincount(flat_index, weights, minlength=size).astype(np.float32)


def event_leak(sweep_polarity: np.ndarray, sweep_us: float, image: np.ndarray) -> np.ndarray:
    """Per-pixel ON-leak rate (events per us) of a sensor whose whole sweep (`sweep_us` long) left the
    net polarity `sweep_polarity` (H, W), for an sRGB image (H, W, 3) of the scene: `refocus.leak_rate`
    (a line in brightness fitted to the sweep's net polarity), with the BT.709 luma of the sRGB values
    as brightness. Returns (H, W) float32."""
    return event_leak_map(event_leak_line(sweep_polarity, image), sweep_us, image)


def event_leak_line(sweep_polarity: np.ndarray, image: np.ndarray) -> np.ndarray:
    """`event_leak`'s line (slope, intercept) in luma, fitted on a whole sRGB image (H, W, 3)."""
    return leak_line(sweep_polarity, _luma(image))


def event_leak_map(line: np.ndarray, sweep_us: float, image: np.ndarray) -> np.ndarray:
    """`event_leak` from its line, for an sRGB image or a crop of one (H, W, 3)."""
    return leak_from_line(line, float(max(sweep_us, 1)), _luma(image))


def _luma(image: np.ndarray) -> np.ndarray:
    r, g, b = (np.asarray(image[..., c], np.float32) for c in range(3))
    return np.float32(_KR) * r + np.float32(_KG) * g + np.float32(_KB) * b


def event_stack(events: np.ndarray, t_in: int, t_out: int, height: int, width: int,
                bins: int = NFS_BINS, x0: int = 0, y0: int = 0, leak: np.ndarray | None = None) -> np.ndarray:
    """Signed event counts in `bins` equal time bins from t_in to t_out, window [y0:y0+height, x0:x0+width].

    `events` may hold more than the interval and the window; the rest is ignored. `leak` (height, width),
    events per us (`event_leak` of the window), is subtracted at its expected count per bin.
    Returns (bins, H, W) float32.
    """
    out = event_counts(events, t_in, t_out, height, width, bins, x0, y0, np.int32).astype(np.float32)
    if leak is not None:
        out -= event_leak_scale(t_in, t_out, bins) * leak[None]
    return out


def event_counts(events: np.ndarray, t_in: int, t_out: int, height: int, width: int, bins: int = NFS_BINS,
                 x0: int = 0, y0: int = 0, dtype=np.int8) -> np.ndarray:
    """`event_stack` without the leak, as integers (bins, H, W); int8 by default, 4x fewer bytes than
    float32 to make and to move to the training device. A count beyond the dtype is an error, never a
    wrapped count."""
    if t_in == t_out:
        raise UsageError("event_stack needs distinct input and target times")
    out = np.zeros((bins, height, width), dtype)
    limit = np.iinfo(dtype).max
    if not _bin_events(events["t"], events["x"], events["y"], events["p"], min(t_in, t_out), max(t_in, t_out),
                       x0, y0, t_out < t_in, out, limit):
        raise UsageError(f"an event-stack bin between t={t_in} and {t_out} us holds more than {limit} events "
                         f"of one pixel")
    return out


def event_leak_scale(t_in: int, t_out: int, bins: int = NFS_BINS) -> np.float32:
    """What `event_stack` subtracts per bin, per unit of leak rate: the bin's length in us, signed
    (ON leak counts against the direction of the stack, as the polarities do)."""
    return np.float32((1.0 if t_out > t_in else -1.0) * abs(t_out - t_in) / bins)


def dense_nfs(item: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A compact sample or batch (`nfs` as int8 event counts with `leak`/`leak_scale`, or uint8 spike
    planes) as the network reads it: float32 planes with the leak removed, bit for bit what
    `event_stack` with `leak` gives."""
    out = {k: v for k, v in item.items() if k not in ("leak", "leak_scale")}
    nfs = item["nfs"].float()
    if "leak" in item:
        scale = item["leak_scale"]
        nfs = nfs - scale.reshape(*scale.shape, 1, 1, 1) * item["leak"].unsqueeze(-3)
    out["nfs"] = nfs
    return out


@numba.njit(cache=True, nogil=True)
def _bin_events(t, x, y, p, lo, hi, x0, y0, backwards, out, limit):
    """`event_counts` in one pass over the events, with none of a numpy version's temporaries; False
    when a count leaves +-limit."""
    bins, height, width = out.shape
    for k in range(t.size):
        if t[k] < lo or t[k] >= hi:
            continue
        xx, yy = np.int64(x[k]) - x0, np.int64(y[k]) - y0
        if xx < 0 or xx >= width or yy < 0 or yy >= height:
            continue
        b = (t[k] - lo) * bins // (hi - lo)
        sign = 1 if p[k] > 0 else -1
        if backwards:  # run backwards: bin 0 nearest the input time, polarities negated
            b, sign = bins - 1 - b, -sign
        count = np.int64(out[b, yy, xx]) + sign
        if count > limit or count < -limit:
            return False
        out[b, yy, xx] = count
    return True


def event_count_slice(events: np.ndarray, t_center: int, half_window_us: int, height: int, width: int,
                      x0: int = 0, y0: int = 0) -> np.ndarray:
    """log(1 + #events) within +-half_window_us of t_center; (1, H, W) float32."""
    t = events["t"]
    x = events["x"].astype(np.int64) - x0
    y = events["y"].astype(np.int64) - y0
    keep = (np.abs(t - t_center) <= half_window_us) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    count = _counts(y[keep] * width + x[keep], None, height * width).reshape(height, width)
    return np.log1p(count)[None]


def spike_window_start(t_us: np.ndarray, t_center: int, n: int = NFS_BINS) -> int:
    """First of the n consecutive readout steps nearest t_center (shifted inward at the ends)."""
    if len(t_us) < n:
        raise UsageError(f"need {n} spike readout steps around t={t_center} us, the stream has {len(t_us)}")
    return int(np.clip(np.searchsorted(t_us, t_center) - n // 2, 0, len(t_us) - n))


def spike_window(planes: np.ndarray, t_us: np.ndarray, t_center: int, n: int = NFS_BINS) -> np.ndarray:
    """The n consecutive readout steps nearest t_center (`spike_window_start`); (n, H, W) float32."""
    start = spike_window_start(t_us, t_center, n)
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
