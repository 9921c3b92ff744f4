"""DVS-Voltmeter's parameters: the six constants k1..k6, the sensor presets, the paper's Table 3 ranges
they are drawn from, and the event record. numpy only, so recipes and readers use them without the
numba kernel."""
from __future__ import annotations

import dataclasses
import math
from numbers import Real

import numpy as np
from nfs_synth.errors import EventsError

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])

PARAM_NAMES = ("k1", "k2", "k3", "k4", "k5", "k6")
POSITIVE = ("k1", "k2")     # k1 divides the threshold crossing, k2 is the log-drift offset; others >= 0
TABLE3_RANGES = {
    "k1": (4.0, 5.5),
    "k2": (18.0, 25.0),
    "k3": (5e-5, 2.5e-4),
    "k4": (0.8e-7, 1.2e-7),
    "k5": (3e-9, 8e-8),
    "k6": (8e-6, 1.2e-5),
}


def real_number(name, value, key=None):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise EventsError(f"{name} must be a real number, got {value!r}", key=key)
    value = float(value)
    if not math.isfinite(value):
        raise EventsError(f"{name} must be finite, got {value!r}", key=key)
    return value


def check_k(name: str, value, key: str | None = None) -> float:
    """One of k1..k6 as the model needs it: k1 (signal gain) and k2 (dark-current offset) > 0, the
    others >= 0."""
    value = real_number(name, value, key)
    if name in POSITIVE and value <= 0.0:
        raise EventsError(f"{name} must be > 0, got {value}; allowed (0, 1e+06]", key=key)
    if value < 0.0:
        raise EventsError(f"{name} must be >= 0, got {value}; allowed [0, 1e+06]", key=key)
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
            object.__setattr__(self, name, check_k(name, getattr(self, name), name))

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


def check_ranges(ranges) -> dict:
    if not isinstance(ranges, dict):
        raise EventsError(f"ranges must be a dict k1..k6 -> [min, max], got {type(ranges).__name__}")
    unknown = set(ranges) - set(PARAM_NAMES)
    if unknown:
        raise EventsError(f"unknown parameter(s) in ranges: {sorted(unknown)}")
    out = {}
    for name in PARAM_NAMES:
        pair = ranges.get(name, TABLE3_RANGES[name])
        key = f"ranges.{name}"
        if isinstance(pair, (str, bytes)) or len(pair) != 2:
            raise EventsError(f"range of {name} must be [min, max], got {pair!r}", key=key)
        lo, hi = real_number(f"{name} min", pair[0], key), real_number(f"{name} max", pair[1], key)
        if lo > hi:
            raise EventsError(f"range of {name} has min {lo} > max {hi}", key=key)
        positive = name in POSITIVE
        if lo < 0.0 or (positive and lo == 0.0):
            bound = "(0" if positive else "[0"
            raise EventsError(f"range of {name} must lie in {bound}, inf), got [{lo}, {hi}]", key=key)
        out[name] = (lo, hi)
    return out


def sample_params(rng: np.random.Generator, ranges: dict | None = None) -> DVSParams:
    """Draw each k uniformly from its range (default: the paper's Table 3).

    Always six draws in the order k1..k6, so one range never shifts the others' values.
    Missing keys take the Table 3 range.
    """
    bounds = check_ranges({} if ranges is None else ranges)
    values = {name: rng.uniform(*bounds[name]) for name in PARAM_NAMES}
    return DVSParams(**values)


INTENSITY_MODES = ("srgb_luminance", "linear_luminance")
# [sensors.events.nonideal] (sensors/event_nonideal.py): key -> (upper bound, doc); each >= 0, 0 is off
NONIDEAL_LIMITS = {
    "refractory_us": (1e6, "refractory period after an event of a pixel, us"),
    "background_rate_hz": (1e4, "shot-noise events per pixel per second"),
    "hot_pixel_fraction": (1.0, "fraction of pixels that are hot"),
    "hot_pixel_rate_hz": (1e6, "ON events per second of a hot pixel"),
    "lowpass_cutoff_hz": (1e7, "photoreceptor cutoff at full white (255); proportional to intensity"),
    "jitter_us": (1e5, "standard deviation of the timestamp jitter, us"),
}
RECIPE_KEYS = frozenset(("enabled", "preset", *PARAM_NAMES, "ranges", "random_initial_residual",
                         "log_drift", "quantize_8bit", "intensity", "nonideal"))


def _flag(section, name):
    v = section[name]
    if not isinstance(v, (bool, np.bool_)):
        raise EventsError(f"[sensors.events] {name} must be true or false, got {v!r}", key=name)
    return bool(v)


def check_section(section: dict) -> tuple[dict, dict, dict]:
    """(ranges, explicit k overrides, boolean options) of a `[sensors.events]` table, or EventsError with
    `key` set to the key at fault: what the simulator and the recipe check both run."""
    if not isinstance(section, dict):
        raise EventsError("[sensors.events] must be a table")
    missing, unknown = RECIPE_KEYS - set(section), set(section) - RECIPE_KEYS
    if missing or unknown:
        raise EventsError(f"[sensors.events] missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    _flag(section, "enabled")
    if section["preset"] != "random":
        resolve_params(section["preset"])
    ranges = check_ranges(section["ranges"])
    overrides = {n: check_k(n, section[n], n) for n in PARAM_NAMES if section[n] is not None}
    if section["intensity"] not in INTENSITY_MODES:
        raise EventsError(f"[sensors.events] unknown intensity {section['intensity']!r}; known: "
                          f"{list(INTENSITY_MODES)}", key="intensity")
    options = {n: _flag(section, n) for n in ("random_initial_residual", "log_drift", "quantize_8bit")}
    return ranges, overrides, options
