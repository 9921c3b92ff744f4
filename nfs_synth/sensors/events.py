"""DVS-Voltmeter-style stochastic event simulator (Lin et al., ECCV 2022), streaming.

Model, corrections to the reference implementation and options: docs/events.md.
Frames are gray on the 0..255 scale (see `rgb_to_gray`), timestamps integer microseconds.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
from concurrent.futures import ThreadPoolExecutor
from numbers import Real

import numba
import numpy as np

from nfs_synth.sensors import events_kernel as _k

MODEL = "DVS-Voltmeter (Lin et al., ECCV 2022), nfs_synth corrected"
# Changes whenever the same seed gives other events (2: the 1024-layer ziggurat, one draw per step).
MODEL_VERSION = "nfs_synth.events/2"

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])

PARAM_NAMES = ("k1", "k2", "k3", "k4", "k5", "k6")
TABLE3_RANGES = {
    "k1": (4.0, 5.5),
    "k2": (18.0, 25.0),
    "k3": (5e-5, 2.5e-4),
    "k4": (0.8e-7, 1.2e-7),
    "k5": (3e-9, 8e-8),
    "k6": (8e-6, 1.2e-5),
}
INTENSITY_MODES = ("srgb_luminance", "linear_luminance")
RECIPE_KEYS = frozenset(("enabled", "preset", *PARAM_NAMES, "ranges", "random_initial_residual",
                         "log_drift", "quantize_8bit", "intensity"))

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


class EventsError(ValueError):
    """Bad input to the event simulator or to the event files."""


def _real(name, value):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise EventsError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise EventsError(f"{name} must be finite, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class DVSParams:
    """The six constants of the DVS-Voltmeter model (units: L on 0..255, time in us).

    k1 signal gain, k2 dark-current offset, k3 shot-noise diffusion, k4 constant leak,
    k5 brightness-proportional leak, k6 diffusion floor.
    """
    k1: float
    k2: float
    k3: float
    k4: float
    k5: float
    k6: float

    def __post_init__(self):
        for name in PARAM_NAMES:
            object.__setattr__(self, name, _real(name, getattr(self, name)))
        if self.k1 <= 0.0:
            raise EventsError(f"k1 (signal gain) must be > 0, got {self.k1}")
        if self.k2 <= 0.0:
            raise EventsError(f"k2 (dark-current offset) must be > 0, got {self.k2}")
        for name in PARAM_NAMES[2:]:
            if getattr(self, name) < 0.0:
                raise EventsError(f"{name} must be >= 0, got {getattr(self, name)}")

    def as_array(self) -> np.ndarray:
        return np.array([getattr(self, n) for n in PARAM_NAMES], dtype=np.float64)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


DVS346 = DVSParams(0.00018 * 29250, 20.0, 1e-4, 1e-7, 5e-9, 1e-5)
DVS240 = DVSParams(0.000094 * 47065, 23.0, 2e-4, 1e-7, 5e-8, 1e-5)
PRESETS = {"DVS346": DVS346, "DVS240": DVS240}


def resolve_params(params) -> DVSParams:
    """A DVSParams, or a preset name."""
    if isinstance(params, DVSParams):
        return params
    if isinstance(params, str):
        if params not in PRESETS:
            raise EventsError(f"unknown event-sensor preset {params!r}; known: {sorted(PRESETS)}")
        return PRESETS[params]
    raise EventsError(f"params must be a DVSParams or a preset name, got {type(params).__name__}")


def _check_ranges(ranges) -> dict:
    if not isinstance(ranges, dict):
        raise EventsError(f"ranges must be a dict k1..k6 -> [min, max], got {type(ranges).__name__}")
    unknown = set(ranges) - set(PARAM_NAMES)
    if unknown:
        raise EventsError(f"unknown parameter(s) in ranges: {sorted(unknown)}")
    out = {}
    for name in PARAM_NAMES:
        pair = ranges.get(name, TABLE3_RANGES[name])
        if isinstance(pair, (str, bytes)) or len(pair) != 2:
            raise EventsError(f"range of {name} must be [min, max], got {pair!r}")
        lo, hi = _real(f"{name} min", pair[0]), _real(f"{name} max", pair[1])
        if lo > hi:
            raise EventsError(f"range of {name} has min {lo} > max {hi}")
        positive = name in ("k1", "k2")
        if lo < 0.0 or (positive and lo == 0.0):
            bound = "(0" if positive else "[0"
            raise EventsError(f"range of {name} must lie in {bound}, inf), got [{lo}, {hi}]")
        out[name] = (lo, hi)
    return out


def sample_params(rng: np.random.Generator, ranges: dict | None = None) -> DVSParams:
    """Draw each k uniformly from its range (default: the paper's Table 3).

    Always six draws in the order k1..k6, so one range never shifts the others' values.
    Missing keys take the Table 3 range.
    """
    bounds = _check_ranges({} if ranges is None else ranges)
    values = {name: rng.uniform(*bounds[name]) for name in PARAM_NAMES}
    return DVSParams(**values)


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
                 quantize_8bit: bool = False):
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
        if self.quantize_8bit:
            cur = np.clip(np.rint(cur), 0.0, 255.0)
        if self._prev is None:
            self._prev, self._t_prev = cur, t_us
            return np.empty(0, EVENT_DTYPE)
        events = self._interval_events(cur, t_us - self._t_prev)
        self._prev, self._t_prev = cur, t_us
        self._interval += 1
        return events

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


def simulate(frames, t_us, params, seed, *, device=None, **options) -> np.ndarray:
    """Events of a whole sequence: frames (T, H, W) gray 0..255, t_us (T,) increasing int.

    device (a torch device name) runs `TorchEventSimulator` there instead of the numba kernel:
    the same statistics, not the same events."""
    frames = np.asarray(frames)
    t_us = np.asarray(t_us)
    if frames.ndim != 3:
        raise EventsError(f"frames must be (T, H, W), got shape {frames.shape}")
    if t_us.shape != (frames.shape[0],):
        raise EventsError(f"t_us must have shape ({frames.shape[0]},), got {t_us.shape}")
    if t_us.dtype.kind not in "iu":
        raise EventsError(f"t_us must be integer microseconds, got dtype {t_us.dtype}")
    if np.any(np.diff(t_us) <= 0):
        i = int(np.flatnonzero(np.diff(t_us) <= 0)[0]) + 1
        raise EventsError(f"t_us must be strictly increasing (t_us[{i}] = {t_us[i]} <= {t_us[i - 1]})")
    if device is None:
        make = EventSimulator
    else:
        from nfs_synth.sensors.events_torch import TorchEventSimulator  # torch only when asked for
        make = functools.partial(TorchEventSimulator, device=device)
    sim = make(frames.shape[1], frames.shape[2], params, np.random.default_rng(seed), **options)
    chunks = [sim.feed(f, t) for f, t in zip(frames, t_us.tolist())]
    return np.concatenate(chunks) if chunks else np.empty(0, EVENT_DTYPE)


def _srgb_encode(y):
    return np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(y, 1.0 / 2.4, dtype=np.float32) - 0.055)


def rgb_to_gray(rgb_linear: np.ndarray, mode: str = "srgb_luminance") -> np.ndarray:
    """Linear RGB (H, W, 3) -> gray (H, W) float32 on the simulator's 0..255 scale.

    "srgb_luminance": Rec.709 luminance, sRGB-encoded, *255, not clipped or rounded (the
    reference's constants were calibrated on 8-bit display frames; values above white
    follow the same curve).  "linear_luminance": luminance*255.  Negative luminance
    (denoiser undershoot) is clamped to 0.
    """
    if mode not in INTENSITY_MODES:
        raise EventsError(f"unknown intensity mode {mode!r}; known: {list(INTENSITY_MODES)}")
    rgb = np.asarray(rgb_linear)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise EventsError(f"rgb_linear must be (H, W, 3), got shape {rgb.shape}")
    rgb = rgb.astype(np.float32, copy=False)
    lum = (rgb[..., 0] * np.float32(0.2126) + rgb[..., 1] * np.float32(0.7152)
           + rgb[..., 2] * np.float32(0.0722))
    if not np.isfinite(lum).all():
        raise EventsError("rgb_linear contains NaN or infinite values")
    np.maximum(lum, 0.0, out=lum)
    if mode == "srgb_luminance":
        lum = _srgb_encode(lum)
    return (lum * np.float32(255.0)).astype(np.float32, copy=False)


def _child(seed_seq: np.random.SeedSequence, i: int) -> np.random.SeedSequence:
    # Like spawn(), without mutating the caller's sequence.
    return np.random.SeedSequence(seed_seq.entropy, spawn_key=(*seed_seq.spawn_key, i),
                                  pool_size=seed_seq.pool_size)


def _flag(section, name):
    v = section[name]
    if not isinstance(v, (bool, np.bool_)):
        raise EventsError(f"[sensors.events] {name} must be true or false, got {v!r}")
    return bool(v)


def from_recipe(section: dict, seed_seq: np.random.SeedSequence, height: int,
                width: int) -> tuple[EventSimulator, dict]:
    """Build the simulator of a `[sensors.events]` recipe table; returns (sim, attrs).

    Parameters come from the preset (or a draw from `ranges` when preset is "random"),
    then any k1..k6 that is not None overrides it.  Parameters and simulator noise use
    two independent children of `seed_seq`, so switching the preset or overriding a k
    leaves the noise stream unchanged.  The caller acts on `enabled`.
    """
    if not isinstance(section, dict):
        raise EventsError("[sensors.events] must be a table")
    missing, unknown = RECIPE_KEYS - set(section), set(section) - RECIPE_KEYS
    if missing or unknown:
        raise EventsError(f"[sensors.events] missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    if not isinstance(seed_seq, np.random.SeedSequence):
        raise EventsError(f"seed_seq must be a numpy SeedSequence, got {type(seed_seq).__name__}")
    enabled = _flag(section, "enabled")
    preset = section["preset"]
    ranges = _check_ranges(section["ranges"])
    if preset == "random":
        base = sample_params(np.random.default_rng(_child(seed_seq, 0)), ranges)
    else:
        base = resolve_params(preset)
    overrides = {n: section[n] for n in PARAM_NAMES if section[n] is not None}
    params = dataclasses.replace(base, **overrides)
    intensity = section["intensity"]
    if intensity not in INTENSITY_MODES:
        raise EventsError(f"[sensors.events] unknown intensity {intensity!r}; known: {list(INTENSITY_MODES)}")
    options = {n: _flag(section, n) for n in ("random_initial_residual", "log_drift", "quantize_8bit")}
    sim = EventSimulator(height, width, params, np.random.default_rng(_child(seed_seq, 1)), **options)
    attrs = {
        "model": MODEL,
        "model_version": MODEL_VERSION,
        "enabled": enabled,
        "preset": preset,
        **params.as_dict(),
        "overridden": json.dumps(sorted(overrides)),
        "ranges_json": json.dumps({n: list(ranges[n]) for n in PARAM_NAMES}),
        **options,
        "intensity": intensity,
        "intensity_scale": "gray 0..255",
        "seed_entropy": str(seed_seq.entropy),
        "seed_spawn_key": json.dumps(list(seed_seq.spawn_key)),
        "time_unit": "us",
        "polarity": "1 = ON, 0 = OFF",
    }
    return sim, attrs
