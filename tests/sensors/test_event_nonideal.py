"""Event-camera non-idealities (sensors/event_nonideal.py): rates within Poisson error, the refractory
period and low-pass time constant as documented, jitter of the set spread, and off means untouched."""
import numpy as np
import pytest

from nfs_synth.cli import generate_main
from nfs_synth.errors import RecipeError
from nfs_synth.scene.recipe import load_recipe
from nfs_synth.sensors import events
from nfs_synth.sensors.dvs import EVENT_DTYPE
from nfs_synth.sensors.event_nonideal import NonIdeal, NonIdealEvents
from nfs_synth.sensors.event_simulator import EventSimulator

H = W = 64


class Recorder:
    """A model that emits nothing, or one event per pixel of `marks` at each interval's middle, and
    keeps the frames it was fed."""

    def __init__(self, marks=()):
        self.frames, self.marks, self.t = [], list(marks), None

    def feed(self, gray, t_us):
        self.frames.append(np.array(gray))
        out = np.zeros(0 if self.t is None else len(self.marks), EVENT_DTYPE)
        if len(out):
            out["t"] = (self.t + t_us) // 2
            out["y"], out["x"] = zip(*self.marks)
        self.t = t_us
        return out


def run(settings, *, marks=(), frames=None, seconds=1.0, dt_us=10_000, seed=0):
    sim = NonIdealEvents(Recorder(marks), settings, np.random.default_rng(seed), H, W)
    stamps = np.arange(0, int(seconds * 1e6) + 1, dt_us)
    frames = frames if frames is not None else [np.full((H, W), 100.0, np.float32)] * len(stamps)
    out = np.concatenate([sim.feed(f, int(t)) for f, t in zip(frames, stamps)])
    return out, sim


def within_poisson(count, mean, sigmas=4.0):
    return abs(count - mean) < sigmas * np.sqrt(mean)


def test_background_activity_is_poisson_at_the_set_rate_half_on():
    out, _ = run(NonIdeal(background_rate_hz=5.0))
    assert within_poisson(len(out), 5.0 * H * W * 1.0)
    on = int(out["p"].sum())
    assert abs(on - len(out) / 2) < 4 * np.sqrt(len(out) / 4)            # binomial(n, 1/2)
    assert np.all(np.diff(out["t"]) >= 0) and out["t"].min() > 0 and out["t"].max() <= 1_000_000
    per_pixel = np.bincount(out["y"].astype(int) * W + out["x"], minlength=H * W)
    assert abs(per_pixel.var() / per_pixel.mean() - 1) < 4 * np.sqrt(2 / (H * W))   # Poisson: var = mean


def test_hot_pixels_are_the_set_fraction_and_fire_on_at_the_set_rate():
    out, sim = run(NonIdeal(hot_pixel_fraction=0.02, hot_pixel_rate_hz=200.0))
    n_hot = len(sim.hot_x)
    assert abs(n_hot - 0.02 * H * W) < 4 * np.sqrt(H * W * 0.02 * 0.98)
    assert np.all(out["p"] == 1)
    hot = set(zip(sim.hot_y.tolist(), sim.hot_x.tolist()))
    assert set(zip(out["y"].tolist(), out["x"].tolist())) <= hot
    assert within_poisson(len(out), 200.0 * n_hot)


def test_refractory_period_holds_on_the_model_s_own_events():
    rng = np.random.default_rng(1)
    stamps = np.arange(0, 200_001, 1_000)
    frames = [(128 + 100 * np.sin(2 * np.pi * t / 4_000) * rng.random((H, W))).astype(np.float32) for t in stamps]

    def min_gap(refractory_us):
        sim = EventSimulator(H, W, events.DVS346, np.random.default_rng(2), scale=1.0)
        wrapped = NonIdealEvents(sim, NonIdeal(refractory_us=refractory_us, background_rate_hz=50.0),
                                 np.random.default_rng(3), H, W)
        out = np.concatenate([wrapped.feed(f, int(t)) for f, t in zip(frames, stamps)])
        order = np.lexsort((out["t"], out["y"].astype(int) * W + out["x"]))
        pixel, t = (out["y"].astype(int) * W + out["x"])[order], out["t"][order]
        same = pixel[1:] == pixel[:-1]
        return int(np.diff(t)[same].min()), len(out)

    free_gap, free_n = min_gap(0.0)
    gap, n = min_gap(500.0)
    assert free_gap < 500 and free_n > 10_000          # without it, pixels fire closer than the period
    assert gap >= 500 and 0 < n < free_n


@pytest.mark.parametrize("level", [200.0, 100.0])
def test_lowpass_delays_a_step_by_its_intensity_dependent_time_constant(level):
    cutoff_at_white = 255.0 / 200.0 / (2 * np.pi * 1e-3)     # tau = 1 ms at gray 200, 2 ms at 100
    stamps = np.arange(0, 10_001, 10)
    frames = [np.full((4, 4), 50.0 if t == 0 else level, np.float32) for t in stamps]
    sim = NonIdealEvents(Recorder(), NonIdeal(lowpass_cutoff_hz=cutoff_at_white), np.random.default_rng(0), 4, 4)
    for f, t in zip(frames, stamps):
        sim.feed(f, int(t))
    response = (np.array([f[0, 0] for f in sim.sim.frames]) - 50.0) / (level - 50.0)
    delay_us = stamps[np.argmax(response >= 1 - 1 / np.e)]
    tau_us = 1e6 / (2 * np.pi * cutoff_at_white * level / 255.0)
    assert abs(delay_us - tau_us) < 0.1 * tau_us


def test_jitter_spreads_timestamps_by_the_set_deviation():
    marks = [(y, x) for y in range(H) for x in range(W)]
    out, _ = run(NonIdeal(jitter_us=20.0), marks=marks, seconds=0.05, dt_us=1_000)
    mids = (out["t"] // 1_000) * 1_000 + 500               # each mark sits mid-interval (+-20 us << 500)
    offsets = (out["t"] - mids).astype(float)
    n = len(offsets)
    assert abs(offsets.std() - 20.0) < 4 * 20.0 / np.sqrt(2 * n) + 0.3    # + rounding to whole us
    assert abs(offsets.mean()) < 4 * 20.0 / np.sqrt(n)


def test_all_off_leaves_the_model_alone_and_records_nothing():
    section = load_recipe(None, [])["sensors"]["events"]
    sim, attrs = events.from_recipe(section, np.random.SeedSequence(5), H, W)
    assert type(sim) is EventSimulator and not any(k.startswith("nonideal_") for k in attrs)
    on = load_recipe(None, ["sensors.events.nonideal.refractory_us=100"])["sensors"]["events"]
    sim, attrs = events.from_recipe(on, np.random.SeedSequence(5), H, W)
    assert isinstance(sim, NonIdealEvents) and attrs["nonideal_refractory_us"] == 100.0


@pytest.mark.parametrize("item", ["sensors.events.nonideal.hot_pixel_fraction=1.5",
                                  "sensors.events.nonideal.refractory_us=-1",
                                  "sensors.events.nonideal.background_rate_hz=1e9"])
def test_out_of_range_options_are_refused_naming_the_key(item, tmp_path, capsys):
    with pytest.raises(RecipeError, match=item.split("=")[0].replace(".", r"\.")):
        load_recipe(None, [item])
    assert generate_main(["--set", item, "--out", str(tmp_path / "out")]) == 2
    assert item.split("=")[0] in capsys.readouterr().err and not (tmp_path / "out").exists()
