"""The spike camera's parameters, presets and the check of a `[sensors.spikes]` recipe table. numpy-free,
so the recipe check runs the simulator's own checks without loading its kernels (`spikes.py`)."""
from __future__ import annotations

import dataclasses
import math

from nfs_synth.errors import SpikeError

_MAX_SPREAD = 0.2  # relative spreads above this would put pixels at non-positive gain/threshold
RECIPE_KEYS = ("enabled", "preset", "readout_hz", "threshold", "reset", "initial_charge",
               "interpolation", "intensity_scale")


@dataclasses.dataclass(frozen=True)
class SpikeParams:
    """Integrate-and-fire model and noise. Relative spreads are standard deviations over the mean.

    readout_hz: readout steps per second. threshold: nominal phi (charge units, see module doc).
    reset: "subtract" (keep the charge above phi) or "zero". initial_charge: "random" (uniform in
    [0, phi_pixel), avoids lock-step firing) or "zero". interpolation: "linear" or "hold" between frames.
    dark_rate_hz, dark_rate_spread: mean dark spike rate at the nominal threshold and its pixel-to-pixel
    relative spread (gamma distributed, so never negative).
    threshold_spread, gain_spread: fixed-pattern relative spreads of phi and photo-response gain (normal).
    threshold_jitter: relative std of phi per comparison (temporal noise of the comparator).
    photons_full_white: photo-electrons per step at intensity 1 for shot noise (Gaussian approximation of
    Poisson, variance = charge / photons_full_white, dark charge included); 0 disables shot noise.
    post_reset_gain: factor on the charge integrated in the step right after a spike.
    """

    readout_hz: float = 20000.0
    threshold: float = 1.0
    reset: str = "subtract"
    initial_charge: str = "random"
    interpolation: str = "linear"
    dark_rate_hz: float = 0.0
    dark_rate_spread: float = 0.0
    threshold_spread: float = 0.0
    gain_spread: float = 0.0
    threshold_jitter: float = 0.0
    photons_full_white: float = 0.0
    post_reset_gain: float = 1.0

    def __post_init__(self):
        choices = {"reset": ("subtract", "zero"), "initial_charge": ("random", "zero"),
                   "interpolation": ("linear", "hold")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise SpikeError(f"SpikeParams.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in choices:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SpikeError(f"SpikeParams.{f.name} must be a finite number, got {value!r}")
            object.__setattr__(self, f.name, float(value))  # TOML integers become floats in the attributes
        _check_range("readout_hz", self.readout_hz, 0.0, 1e7, low_open=True)
        _check_range("threshold", self.threshold, 0.0, 1e6, low_open=True)
        _check_range("dark_rate_hz", self.dark_rate_hz, 0.0, math.inf)
        if self.dark_rate_hz > self.readout_hz:      # a pixel fires at most once per readout step
            raise SpikeError(f"readout_hz = {self.readout_hz:g} is below the dark spike rate dark_rate_hz = "
                             f"{self.dark_rate_hz:g} Hz; allowed [{self.dark_rate_hz:g}, 1e+07]", key="readout_hz")
        _check_range("dark_rate_spread", self.dark_rate_spread, 0.0, 2.0)
        for name in ("threshold_spread", "gain_spread", "threshold_jitter"):
            _check_range(name, getattr(self, name), 0.0, _MAX_SPREAD)
        _check_range("photons_full_white", self.photons_full_white, 0.0, 1e12)
        _check_range("post_reset_gain", self.post_reset_gain, 0.0, 1.0, low_open=True)

    def as_attrs(self) -> dict:
        return dataclasses.asdict(self)


def _check_range(name, value, low, high, low_open=False):
    if value < low or value > high or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise SpikeError(f"SpikeParams.{name} must be in {bracket}{low}, {high}], got {value!r}", key=name)


# SCSim (Acnext/SCSim, ICME 2024) magnitudes for the 250x400 Vidar sensor. Its dark current
# (mean 0.444, std 0.173 in its own units) gives about 93 Hz of dark spikes at 20 kHz; we keep that
# rate and the relative spread 0.173 / 0.444. "Photon scale 5e4 at full white" -> photons_full_white.
PRESETS: dict[str, SpikeParams] = {
    "ideal": SpikeParams(),
    "vidar_250x400": SpikeParams(
        dark_rate_hz=93.0, dark_rate_spread=0.173 / 0.444, threshold_spread=0.046, gain_spread=0.058,
        threshold_jitter=0.006, photons_full_white=5e4, post_reset_gain=0.998),
}


def check_section(section: dict) -> tuple[SpikeParams, float]:
    """(parameters, intensity scale) of a `[sensors.spikes]` table, or SpikeError with `key` set to the
    key at fault: what the simulator and the recipe check both run."""
    keys = set(section)
    if keys != set(RECIPE_KEYS):
        raise SpikeError(f"[sensors.spikes] needs exactly the keys {sorted(RECIPE_KEYS)}; missing "
                         f"{sorted(set(RECIPE_KEYS) - keys)}, unknown {sorted(keys - set(RECIPE_KEYS))}")
    if section["preset"] not in PRESETS:
        raise SpikeError(f"unknown spike preset {section['preset']!r}; choose from {sorted(PRESETS)}",
                         key="preset")
    scale = section["intensity_scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) \
            or scale <= 0:
        raise SpikeError(f"intensity_scale must be a positive finite number, got {scale!r}",
                         key="intensity_scale")
    overrides = {k: section[k] for k in ("readout_hz", "threshold", "reset", "initial_charge",
                                         "interpolation")}
    return dataclasses.replace(PRESETS[section["preset"]], **overrides), float(scale)
