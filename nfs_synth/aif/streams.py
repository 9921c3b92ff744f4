"""Neuromorphic streams as cumulative per-pixel counts on a time grid.

Every refocus, sharpness probe and merging weight needs "how many events (spikes) did pixel (x, y)
see between times a and b".  Cumulative counts along a time grid answer that with one subtraction of
two (H, W) slices, so a golden-section search costs O(patch) per probe instead of a pass over the
stream.  Memory is (grid length) x H x W x 4 bytes per array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nfs_synth.errors import UsageError


def _cumulative_counts(bins: np.ndarray, y: np.ndarray, x: np.ndarray, n_bins: int, shape) -> np.ndarray:
    """counts[k, y, x] = number of items with bin index <= k (items with bin >= n_bins dropped)."""
    h, w = shape
    keep = bins < n_bins
    flat = (bins[keep].astype(np.int64) * h + y[keep].astype(np.int64)) * w + x[keep].astype(np.int64)
    hist = np.bincount(flat, minlength=n_bins * h * w).reshape(n_bins, h, w)
    return np.cumsum(hist, axis=0, dtype=np.int32)


@dataclass(frozen=True)
class EventStack:
    """ON / OFF event counts with timestamp <= ``edges_us[k]``, per pixel: ``on[k]``, ``off[k]``."""

    edges_us: np.ndarray  # (K,) int64, increasing
    on: np.ndarray  # (K, H, W) int32
    off: np.ndarray  # (K, H, W) int32
    total_on: np.ndarray  # (H, W) int32, all ON events of the stream
    total_off: np.ndarray

    @classmethod
    def from_events(cls, events: np.ndarray, shape: tuple[int, int], edges_us: np.ndarray) -> "EventStack":
        """``events``: structured array with fields t (us), x, y, p (1 = ON, 0 = OFF)."""
        edges = np.asarray(edges_us, dtype=np.int64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise UsageError("edges_us must be a strictly increasing 1-D array of at least 2 times")
        h, w = shape
        t, x, y = events["t"], events["x"], events["y"]
        if events.size and (x.max() >= w or y.max() >= h):
            raise UsageError(f"events fall outside the {w}x{h} sensor")
        on = events["p"] == 1
        # An event at time t is counted at every edge >= t (state "after the events up to this edge").
        bins = np.searchsorted(edges, t, side="left")
        counts = [_cumulative_counts(bins[m], y[m], x[m], edges.size, shape) for m in (on, ~on)]
        totals = [np.bincount(y[m].astype(np.int64) * w + x[m], minlength=h * w).reshape(h, w).astype(np.int32)
                  for m in (on, ~on)]
        return cls(edges, counts[0], counts[1], totals[0], totals[1])

    @property
    def shape(self) -> tuple[int, int]:
        return self.on.shape[1:]

    def polarity_sum(self, k_from: int, k_to: int, region=np.s_[:, :]) -> np.ndarray:
        """Signed sum of polarities (ON +1, OFF -1) between grid points; negative when going back in time."""
        return (self.on[k_to][region] - self.off[k_to][region]) - (self.on[k_from][region] - self.off[k_from][region])

    def index_of(self, t_us: float) -> int:
        """Grid index nearest to ``t_us``."""
        return int(np.argmin(np.abs(self.edges_us - t_us)))


@dataclass(frozen=True)
class SpikeStack:
    """Spike counts on a grid of readout-step boundaries: ``cum[j]`` counts the spikes of steps
    [0, j * stride) per pixel; ``t_us[j]`` is the time of boundary j.  A stride > 1 keeps long streams
    (20 kHz over a whole sweep) in memory, at the price of TFP windows snapping to whole grid cells."""

    t_us: np.ndarray  # (J + 1,) int64
    cum: np.ndarray  # (J + 1, H, W) int32
    stride: int

    @classmethod
    def from_bits(cls, bits: np.ndarray, t_us: np.ndarray, stride: int = 1) -> "SpikeStack":
        """``bits``: (N, H, W) 0/1 spikes, one slice per readout step; ``t_us``: (N,) end time of each step."""
        return cls.from_chunks([np.asarray(bits)], np.asarray(t_us), stride)

    @classmethod
    def from_chunks(cls, chunks, t_us: np.ndarray, stride: int) -> "SpikeStack":
        """Same as ``from_bits`` from an iterable of consecutive (n, H, W) bit chunks (streams unpacked
        piecewise never hold the whole bit volume)."""
        t_us = np.asarray(t_us, dtype=np.int64)
        if stride < 1 or t_us.ndim != 1 or t_us.size < 2 * stride:
            raise UsageError(f"need at least two grid cells of {stride} readout steps")
        n_cells = t_us.size // stride
        counts, carry, seen = [], None, 0
        for chunk in chunks:
            chunk = np.asarray(chunk)
            if chunk.ndim != 3:
                raise UsageError("spike bits must be (N, H, W)")
            seen += chunk.shape[0]
            chunk = chunk if carry is None else np.concatenate([carry, chunk])
            usable = (chunk.shape[0] // stride) * stride
            if usable:
                counts.append(chunk[:usable].reshape(-1, stride, *chunk.shape[1:]).sum(axis=1, dtype=np.int32))
            carry = chunk[usable:]
        if seen != t_us.size:
            raise UsageError(f"{seen} readout steps of spikes for {t_us.size} timestamps")
        cells = np.concatenate(counts)[:n_cells]
        cum = np.zeros((n_cells + 1,) + cells.shape[1:], dtype=np.int32)
        np.cumsum(cells, axis=0, out=cum[1:])
        # Boundary j sits between step j*stride - 1 and step j*stride: use the earlier step's end time.
        step_period = (t_us[-1] - t_us[0]) / max(t_us.size - 1, 1)
        times = np.concatenate([[t_us[0] - step_period], t_us[stride - 1 :: stride][:n_cells]])
        return cls(np.rint(times).astype(np.int64), cum, int(stride))

    @property
    def n_steps(self) -> int:
        """Number of grid boundaries (the search space of the refocus-time selection)."""
        return self.t_us.size

    @property
    def shape(self) -> tuple[int, int]:
        return self.cum.shape[1:]

    def index_of(self, t_us: float) -> int:
        return int(np.argmin(np.abs(self.t_us - t_us)))

    def tfp(self, j: int, half_window: int, region=np.s_[:, :]) -> np.ndarray:
        """Texture from playback: spikes per readout step in the 2 * half_window grid cells around
        boundary ``j`` (shortened at the ends of the stream)."""
        lo = max(0, j - half_window)
        hi = min(self.n_steps - 1, j + half_window)
        return (self.cum[hi][region] - self.cum[lo][region]).astype(np.float32) / float((hi - lo) * self.stride)
