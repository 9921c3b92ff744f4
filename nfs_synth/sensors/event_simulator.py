"""The streaming event simulator on the numba kernel (`EventSimulator`); model and options: docs/events.md."""
from __future__ import annotations

import itertools
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from nfs_synth.sensors import events_kernel as _k
from nfs_synth.sensors.dvs import EVENT_DTYPE, resolve_params
from nfs_synth.errors import EventsError

# Longest interval (us) whose time histograms the kernel builds in passing (per band; the
# counting sort then runs in bands, in threads); up to _COUNTING_SORT_MAX_DT a serial
# counting sort, beyond it a stable argsort.
_FUSED_SORT_MAX_DT = 1 << 16
_COUNTING_SORT_MAX_DT = 1 << 22
_ROWS_PER_TASK = 8
_EVENTS_PER_GATHER_TASK = 65536  # fewer events are scattered in one thread
_NO_HIST = np.zeros(0, np.int64)
_POOLS = {}


def _pool(threads: int) -> ThreadPoolExecutor:
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="nfs-events")
    return _POOLS[threads]


def _split(n: int, parts: int) -> list[int]:
    """Edges of `parts` near-equal ranges covering 0..n."""
    return [i * n // parts for i in range(parts + 1)]


def _check_frame(frame, shape, what="frame") -> np.ndarray:
    arr = np.asarray(frame)
    if arr.dtype.kind not in "uif":
        raise EventsError(f"{what} must be numeric gray intensities, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise EventsError(f"{what} has shape {arr.shape}, expected {shape}")
    arr = np.array(arr, dtype=np.float64, order="C")  # a copy: the caller may reuse its buffer
    lo, hi = arr.min(), arr.max()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise EventsError(f"{what} contains NaN or infinite intensities")
    if lo < 0.0:
        raise EventsError(f"{what} contains negative intensities (min {lo})")
    return arr


def _available_bytes() -> int:
    """Memory this machine can still give (MemAvailable; all of it where /proc is missing)."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# Bytes one event takes while an interval is simulated: the per-row buffer (int64), the output record
# and the sort's copy.
_BYTES_PER_EVENT = 8 + 2 * EVENT_DTYPE.itemsize


def _check_time(t_us) -> int:
    if isinstance(t_us, bool) or not isinstance(t_us, (int, np.integer)):
        raise EventsError(f"timestamps must be integer microseconds, got {t_us!r}")
    return int(t_us)


class EventSimulator:
    """Streaming simulator: feed frames one at a time with their timestamps.

    State (previous frame, residual voltage, interval counter) is O(H*W); per-row event
    buffers grow to the densest interval seen.  The first `feed` only initialises.
    """

    def __init__(self, height: int, width: int, params, rng: np.random.Generator, *,
                 random_initial_residual: bool = False, log_drift: bool = False,
                 quantize_8bit: bool = False, scale: float | None = None):
        for name, v in (("height", height), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 < v <= 65536:
                raise EventsError(f"{name} must be an integer in 1..65536, got {v!r}")
        if not isinstance(rng, np.random.Generator):
            raise EventsError(f"rng must be a numpy Generator, got {type(rng).__name__}")
        self.height, self.width = int(height), int(width)
        self.params = resolve_params(params)
        self.random_initial_residual = bool(random_initial_residual)
        self.log_drift = bool(log_drift)
        self.quantize_8bit = bool(quantize_8bit)
        if scale is not None and not (isinstance(scale, (int, float)) and 0 < scale < math.inf):
            raise EventsError(f"scale must be a positive number (or None), got {scale!r}")
        # None: frames are gray 0..255 as given (k1..k6 are calibrated there), and [0, 1]-looking
        # frames get a warning; a number: frames are multiplied by it first.
        self.scale = scale
        self._brightest = 0.0
        self._k = self.params.as_array()
        self._key = np.uint64(rng.integers(0, 2**64, dtype=np.uint64))
        shape = (self.height, self.width)
        if self.random_initial_residual:
            # Stationary phase of the leak cycle: leak events spread uniformly from t=0.
            self._res = rng.random(shape)
        else:
            self._res = np.zeros(shape)
        self._prev = None
        self._t_prev = None
        self._interval = 0
        self._init_backend()

    def _init_backend(self):
        self._res_next = np.empty_like(self._res)
        self._rows = np.arange(self.height, dtype=np.int64)
        self._counts = np.zeros(self.height, np.int64)
        self._alloc(max(64, 2 * self.width))

    def _alloc(self, cap):
        self._cap = int(cap)
        self._buf = np.empty((self.height, self._cap), np.int64)

    def feed(self, frame, t_us) -> np.ndarray:
        """Events since the previous frame (rounded times in [t_prev, t_us]), sorted by t.

        The first call only stores the frame and returns an empty EVENT_DTYPE array.
        """
        t_us = _check_time(t_us)
        cur = _check_frame(frame, (self.height, self.width))
        if self._t_prev is not None and t_us <= self._t_prev:
            raise EventsError(f"timestamp {t_us} us is not after the previous frame's {self._t_prev} us")
        if self.scale is not None and self.scale != 1.0:
            cur *= self.scale
        elif self.scale is None and self._brightest <= 1.0:
            self._brightest = max(self._brightest, float(cur.max()))
            if 0.0 < self._brightest <= 1.0:
                warnings.warn("EventSimulator: the frames so far lie in [0, 1], but the model expects gray "
                              "0..255 (k1..k6 are calibrated there): multiply them by 255 or pass scale=255 "
                              "(scale=1 says [0, 1] is meant)", UserWarning, stacklevel=2)
                self._brightest = math.inf                   # loudly, but once
        if self._prev is not None:
            self._check_interval(cur, t_us - self._t_prev)
        if self.quantize_8bit:
            cur = np.clip(np.rint(cur), 0.0, 255.0)
        if self._prev is None:
            self._prev, self._t_prev = cur, t_us
            return np.empty(0, EVENT_DTYPE)
        events = self._interval_events(cur, t_us - self._t_prev)
        self._prev, self._t_prev = cur, t_us
        self._interval += 1
        return events

    def _check_interval(self, cur: np.ndarray, dt: int) -> None:
        """Refuse an interval whose events would not fit in memory (timestamps in ns, a paused stream),
        with the size it would need. A bound from the brightest pixel first, so that ordinary intervals
        cost no array pass; then the expected count: drift |mu| dt and diffusion sigma^2 dt per pixel."""
        k1, k2, k3, k4, k5, k6 = self._k
        available = _available_bytes()
        top = max(float(self._prev.max()), float(cur.max()))
        bound = self.height * self.width * (k1 * top / k2 + (k4 + k5 * top) * dt
                                            + (k3 * math.sqrt(top) / k2 + k6) ** 2 * dt + 1.0)
        if bound * _BYTES_PER_EVENT <= available:
            return
        lm = 0.5 * (self._prev + cur)
        mu = np.abs(k1 * (cur - self._prev) / dt / (lm + k2) + k4 + k5 * lm)
        sigma = k3 * np.sqrt(lm) / (lm + k2) + k6
        expected = float(np.sum(mu * dt + sigma ** 2 * dt))
        if expected * _BYTES_PER_EVENT > available:
            raise EventsError(
                f"the interval of {dt} us before t = {self._t_prev + dt} us would make about {expected:.3g} events, "
                f"needing {expected * _BYTES_PER_EVENT / 2**30:.3g} GiB, more than the {available / 2**30:.3g} GiB "
                "available: are the timestamps integer microseconds? Feed frames closer together")

    def _interval_events(self, cur, dt):
        """Events of the interval from self._prev to cur (dt us after it); advances the residual."""
        edges = self._band_edges()
        # Per band, the histogram of event times the kernel builds for the counting sort.
        hist = np.zeros((len(edges) - 1, dt + 2 if dt <= _FUSED_SORT_MAX_DT else 0), np.int64)
        self._run(self._prev, cur, dt, edges, hist)
        over = np.flatnonzero(self._counts > self._cap)
        if over.size:
            # Counter-based randomness makes re-running those rows identical, only complete.
            old = self._buf
            self._alloc(int(self._counts.max() * 1.25) + 16)
            self._buf[:, :old.shape[1]] = old
            self._simulate(self._prev, cur, dt, over.astype(np.int64), _NO_HIST)
            if hist.size:  # recount: the first run counted events it could not store
                hist[:] = 0
                for b in range(len(hist)):
                    _k.band_histogram(self._buf, self._counts, edges[b], edges[b + 1], hist[b])
        events = self._gather(self._t_prev, dt, edges, hist)
        self._res, self._res_next = self._res_next, self._res
        return events

    def _band_edges(self) -> list[int]:
        """Row bands, a few per thread: a delayed thread holds up less."""
        threads = min(numba.get_num_threads(), self.height // _ROWS_PER_TASK)
        bands = min(2 * threads, self.height // _ROWS_PER_TASK) if threads > 1 else 1
        return _split(self.height, bands)

    def _simulate(self, l0, l1, dt, rows, hist):
        _k.simulate_interval(l0, l1, self._res, self._res_next, float(dt), self._k, self.log_drift,
                             self._key, self._interval, rows, self._cap, self._buf, self._counts, hist)

    def _run(self, l0, l1, dt, edges, hist):
        def run(b):
            self._simulate(l0, l1, dt, self._rows[edges[b]:edges[b + 1]], hist[b])

        # Plain threads on the GIL-free kernel: a waiting thread sleeps instead of spinning
        # (OpenMP's default), and a delayed one holds up no one.
        self._map(run, len(edges) - 1)

    def _map(self, fn, tasks):
        """fn(0), ..., fn(tasks - 1) in this thread and up to numba's thread count - 1 pool
        threads, each taking the next task when done (a thread the host delays takes fewer);
        this thread starts at once instead of waiting for a pool thread to wake."""
        helpers = min(numba.get_num_threads(), tasks) - 1
        if helpers == 0:
            for b in range(tasks):
                fn(b)
            return
        order = itertools.count()  # next() is atomic under the GIL

        def take():
            while (b := next(order)) < tasks:
                fn(b)

        pending = [_pool(helpers).submit(take) for _ in range(helpers)]
        take()
        for f in pending:
            f.result()

    def _gather(self, t0, dt, edges, hist):
        n = int(self._counts.sum())
        out = np.empty(n, EVENT_DTYPE)
        if n == 0:
            return out
        fields = (out["t"], out["x"], out["y"], out["p"])
        bufs = (self._buf, self._counts)
        if hist.size:  # the counting sort in bands, with the kernel's histograms
            start = _k.band_starts(hist)
            bands = len(hist)
            tasks = 1 if n < _EVENTS_PER_GATHER_TASK else min(numba.get_num_threads(), bands)
            groups = _split(bands, tasks)

            def scatter(g):  # adjacent bands in one task: threads share fewer output lines
                for b in range(groups[g], groups[g + 1]):
                    _k.band_scatter(*bufs, edges[b], edges[b + 1], t0, start[b], *fields)

            self._map(scatter, tasks)
        elif dt <= _COUNTING_SORT_MAX_DT:
            _k.gather_sorted(*bufs, t0, dt, *fields)
        else:
            _k.gather_rows(*bufs, t0, *fields)
            out = out[np.argsort(out["t"], kind="stable")]
        return out
