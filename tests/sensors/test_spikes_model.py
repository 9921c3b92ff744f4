"""Integrate-and-fire model: rates, noise statistics, determinism, streaming, reconstruction, bad input.

Tolerances come from the model: the noise-free subtract model's spike count over N steps is within one
spike of N * I / phi (the initial charge is below phi), so the relative error is below phi / (N * I).
Sampling errors of standard deviations over n pixels: std / sqrt(2 n) for normal draws,
std * sqrt((kurtosis - 1) / (4 n)) in general; tests allow 4 sigma.
"""

import dataclasses

import numpy as np
import pytest

from nfs_synth.sensors.spikes import (
    PRESETS, SpikeError, SpikeParams, SpikeSimulator, fit_full_white_rate, from_recipe, rgb_to_intensity,
    simulate, tfi, tfp)

STEP_US = 50  # 20 kHz


def static(img, steps):
    """Two identical frames spanning `steps` readout steps."""
    return np.stack([img, img]), np.array([0, steps * STEP_US])


def rates(stream):
    return stream.unpack().mean(axis=0)


@pytest.mark.parametrize("phi", [1.0, 0.5])
def test_subtract_tfp_is_intensity_over_phi(phi):
    rng = np.random.default_rng(0)
    img = rng.uniform(0.1 * phi, phi, (24, 32)).astype(np.float32)
    img[0, :4] = phi  # saturation edge: one spike per step
    hw = 2000  # count error < 1 spike -> relative error < 1 / (4001 * 0.1) = 0.25 %
    stream = simulate(*static(img, 2 * hw + 1), SpikeParams(threshold=phi), seed=1)
    est = tfp(stream, hw, hw)
    assert np.max(np.abs(est / (img / phi) - 1)) < 0.01


def test_reset_to_zero_fires_once_per_ceil_phi_over_intensity():
    rng = np.random.default_rng(2)
    phi = 1.0
    img = rng.uniform(0.1, 1.0, (24, 32)).astype(np.float32)
    ratio = phi / img.astype(np.float64)
    # Where phi / I is within float32 rounding of an integer the period is ambiguous; skip those pixels.
    ok = np.abs(ratio - np.round(ratio)) > 1e-3
    hw = 2000
    stream = simulate(*static(img, 2 * hw + 1), SpikeParams(threshold=phi, reset="zero"), seed=3)
    expected = 1.0 / np.ceil(ratio)
    est = tfp(stream, hw, hw)
    assert ok.mean() > 0.95
    assert np.max(np.abs(est / expected - 1)[ok]) < 0.01


def test_dark_pixels_fire_at_configured_dark_rate():
    params = PRESETS["vidar_250x400"]
    sim = SpikeSimulator(48, 48, params, np.random.default_rng(4))
    dark = np.zeros((48, 48), np.float32)
    sim.feed(dark, 0)
    stream = sim.feed(dark, 1_000_000)  # one second
    counts = stream.unpack().sum(axis=0)
    # Whole-sensor mean: sampling error of the gamma spread 0.39 / 48 = 0.8 %, counts ~2e5 -> 0.2 %.
    assert abs(counts.mean() / params.dark_rate_hz - 1) < 0.10
    # Per pixel: the rate its own dark charge and threshold predict; count quantisation is +-1 spike.
    expected = sim.dark_map / sim.threshold_map * params.readout_hz
    big = expected > 20
    assert np.max(np.abs(counts[big] / expected[big] - 1)) < 0.10


def test_fixed_pattern_maps_have_configured_spreads():
    params = PRESETS["vidar_250x400"]
    n_side = 64
    sim = SpikeSimulator(n_side, n_side, params, np.random.default_rng(5))
    n = n_side * n_side
    for values, mean, spread, kurtosis in [
        (sim.threshold_map, params.threshold, params.threshold_spread, 3.0),
        (sim.gain_map, 1.0, params.gain_spread, 3.0),
        # Gamma with shape k = spread**-2 has kurtosis 3 + 6 / k.
        (sim.dark_map, params.dark_rate_hz / params.readout_hz, params.dark_rate_spread,
         3.0 + 6.0 * params.dark_rate_spread ** 2),
    ]:
        rel_std = values.std() / mean
        sigma = spread * np.sqrt((kurtosis - 1) / (4 * n))
        assert abs(rel_std - spread) < 4 * sigma, (rel_std, spread)
        assert abs(values.mean() / mean - 1) < 4 * spread / np.sqrt(n)


def test_fixed_pattern_is_what_the_pixels_integrate():
    params = SpikeParams(threshold_spread=0.046, gain_spread=0.058)
    img = np.full((32, 32), 0.5, np.float32)
    hw = 2000
    sim = SpikeSimulator(32, 32, params, np.random.default_rng(6))
    frames, t = static(img, 2 * hw + 1)
    stream = sim.run_sequence(frames, t)
    expected = np.minimum(sim.gain_map * img / sim.threshold_map, 1.0)
    est = tfp(stream, hw, hw)
    assert np.max(np.abs(est / expected - 1)) < 0.01  # count error < 1 / (4001 * 0.4)
    # The spike-rate spread is the combined gain / threshold spread: sqrt(0.046^2 + 0.058^2) ~ 7.4 %.
    combined = np.hypot(params.threshold_spread, params.gain_spread)
    assert abs(est.std() / est.mean() - combined) < 4 * combined / np.sqrt(2 * img.size) + 0.003


def test_linear_ramp_and_hold_integrate_the_interpolated_intensity():
    ramp = np.stack([np.zeros((4, 8), np.float32), np.ones((4, 8), np.float32)])
    t = np.array([0, 2000 * STEP_US])
    # Step n sees n / 2000, total 1000.5 of charge plus an initial charge in [0, 1).
    linear = simulate(ramp, t, SpikeParams(), seed=7).unpack().sum(axis=0)
    assert set(np.unique(linear)) <= {1000, 1001}
    # Hold: black until the step that ends on the second frame.
    hold = simulate(ramp, t, SpikeParams(interpolation="hold"), seed=7).unpack()
    assert hold[:-1].sum() == 0 and hold[-1].all()


def test_same_seed_same_spikes_and_different_seed_differs():
    rng = np.random.default_rng(8)
    frames = rng.uniform(0, 1, (3, 20, 30)).astype(np.float32)
    t = np.array([0, 5000, 12000])
    a = simulate(frames, t, PRESETS["vidar_250x400"], seed=9)
    b = simulate(frames, t, PRESETS["vidar_250x400"], seed=9)
    c = simulate(frames, t, PRESETS["vidar_250x400"], seed=10)
    assert np.array_equal(a.packed, b.packed) and np.array_equal(a.t_us, b.t_us)
    assert not np.array_equal(a.packed, c.packed)


@pytest.mark.parametrize("overrides", [
    {}, {"reset": "zero"}, {"interpolation": "hold"}, {"initial_charge": "zero", "readout_hz": 30000.0}])
def test_streaming_equals_whole_sequence(overrides):
    params = dataclasses.replace(PRESETS["vidar_250x400"], **overrides)
    rng = np.random.default_rng(11)
    frames = rng.uniform(0, 1, (6, 13, 21)).astype(np.float32)  # width not a multiple of 8
    t = np.array([100, 1337, 2000, 4999, 5000, 9123])  # not on the step grid
    whole = simulate(frames, t, params, seed=12)
    sim = SpikeSimulator(13, 21, params, np.random.default_rng(12))
    chunks = [sim.feed(f, ti) for f, ti in zip(frames, t)]
    assert len(chunks[0]) == 0
    assert np.array_equal(np.concatenate([c.packed for c in chunks]), whole.packed)
    assert np.array_equal(np.concatenate([c.t_us for c in chunks]), whole.t_us)
    step = 1e6 / params.readout_hz
    assert np.array_equal(whole.t_us, 100 + np.round(np.arange(1, len(whole) + 1) * step).astype(np.int64))


def test_extra_frames_do_not_change_noise():
    """The per-step noise depends on (seed, step, pixel) only: cutting an interval with a duplicate
    frame (hold) changes the chunking, not the spikes."""
    params = dataclasses.replace(PRESETS["vidar_250x400"], interpolation="hold")
    rng = np.random.default_rng(13)
    frames = rng.uniform(0, 1, (3, 10, 16)).astype(np.float32)
    t = np.array([0, 4000, 9000])
    base = simulate(frames, t, params, seed=14)
    split = simulate(np.stack([frames[0], frames[0], frames[1], frames[2]]), np.array([0, 1730, 4000, 9000]),
                     params, seed=14)
    assert np.array_equal(base.packed, split.packed)


def test_tfi_exact_for_periodic_pixels_and_missing_neighbours():
    img = np.array([[0.5, 0.25, 0.125, 0.0]], np.float32)
    stream = simulate(*static(img, 200), SpikeParams(), seed=15)
    est = tfi(stream, 100, 20)
    np.testing.assert_allclose(est[0], [0.5, 0.25, 0.125, 1 / 40])
    bits = stream.unpack()
    np.testing.assert_allclose(tfi(bits, 100, 20), est)  # plain arrays work too
    count = float(tfp(stream, 100)[0, 0]) * 41  # default window: 41 steps, so a whole spike count
    assert abs(count - round(count)) < 1e-4 and round(count) in (20, 21)
    with pytest.raises(ValueError, match="does not fit"):
        tfp(stream, 10, 20)
    with pytest.raises(ValueError, match="non-constant"):
        fit_full_white_rate(np.ones(5), np.full(5, 0.5), fit_offset=True)


def test_fit_full_white_rate_recovers_threshold():
    rng = np.random.default_rng(16)
    img = rng.uniform(0.05, 0.9, (40, 40)).astype(np.float32)
    hw = 1000
    ideal = simulate(*static(img, 2 * hw + 1), SpikeParams(threshold=1.25), seed=17)
    rate, offset = fit_full_white_rate(tfp(ideal, hw, hw), img)
    assert abs(rate - 0.8) < 0.004 and offset == 0.0
    noisy = simulate(*static(img, 2 * hw + 1), PRESETS["vidar_250x400"], seed=18)
    rate, offset = fit_full_white_rate(tfp(noisy, hw, hw), img, fit_offset=True)
    # Gain / threshold fixed pattern averages out over 1600 pixels (7.4 % / 40 ~ 0.2 %); post-reset
    # gain 0.998 lowers the rate by < 0.2 %.
    assert abs(rate - 1.0) < 0.02 and abs(offset) < 0.01


def test_rgb_to_intensity_is_scaled_rec709_luminance():
    rgb = np.array([[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [2.0, 2.0, 2.0]]], np.float32)
    out = rgb_to_intensity(rgb, 0.5)
    np.testing.assert_allclose(out[0], [0.1063, 0.3576, 0.0361, 1.0], atol=1e-6)
    assert out.dtype == np.float32
    with pytest.raises(SpikeError, match="shape"):
        rgb_to_intensity(rgb[..., :2], 1.0)
    with pytest.raises(SpikeError, match="scale"):
        rgb_to_intensity(rgb, 0.0)


RECIPE = {"enabled": True, "preset": "vidar_250x400", "readout_hz": 40000.0, "threshold": 2.0,
          "reset": "zero", "initial_charge": "zero", "interpolation": "hold", "intensity_scale": 0.8}


def test_from_recipe_overrides_preset_and_records_everything():
    seed_seq = np.random.SeedSequence(123, spawn_key=(4,))
    sim, attrs = from_recipe(dict(RECIPE), seed_seq, 6, 9)
    assert (sim.height, sim.width) == (6, 9)
    assert sim.params.readout_hz == 40000.0 and sim.params.reset == "zero"
    assert sim.params.gain_spread == PRESETS["vidar_250x400"].gain_spread
    for key in ("readout_hz", "threshold", "reset", "initial_charge", "interpolation", "dark_rate_hz",
                "threshold_spread", "gain_spread", "threshold_jitter", "photons_full_white",
                "post_reset_gain", "intensity_scale", "model_version", "seed_entropy", "preset"):
        assert key in attrs
    assert attrs["seed_entropy"] == "123" and attrs["seed_spawn_key"].tolist() == [4]
    sim2, _ = from_recipe(dict(RECIPE), np.random.SeedSequence(123, spawn_key=(4,)), 6, 9)
    assert np.array_equal(sim.gain_map, sim2.gain_map) and sim.noise_key == sim2.noise_key


@pytest.mark.parametrize("change, match", [
    ({"preset": "nope"}, "preset"), ({"reset": "half"}, "reset"), ({"threshold": 0.0}, "threshold"),
    ({"readout_hz": float("nan")}, "readout_hz"), ({"intensity_scale": -1.0}, "intensity_scale"),
    ({"extra": 1}, "unknown"),
])
def test_from_recipe_rejects_bad_sections(change, match):
    with pytest.raises(SpikeError, match=match):
        from_recipe({**RECIPE, **change}, np.random.SeedSequence(1), 4, 4)
    section = dict(RECIPE)
    del section["reset"]
    with pytest.raises(SpikeError, match="missing"):
        from_recipe(section, np.random.SeedSequence(1), 4, 4)


@pytest.mark.parametrize("kwargs, match", [
    ({"reset": "half"}, "reset"), ({"threshold": -1.0}, "threshold"), ({"gain_spread": 0.5}, "gain_spread"),
    ({"dark_rate_hz": float("inf")}, "dark_rate_hz"), ({"post_reset_gain": 1.5}, "post_reset_gain"),
    ({"interpolation": "cubic"}, "interpolation"),
])
def test_bad_params_are_rejected(kwargs, match):
    with pytest.raises(SpikeError, match=match):
        SpikeParams(**kwargs)


@pytest.mark.parametrize("bad, match", [(np.nan, "NaN"), (1.5, r"\[0, 1\]"), (-0.1, r"\[0, 1\]")])
def test_bad_frames_raise_and_leave_state_unchanged(bad, match):
    sim = SpikeSimulator(4, 5, PRESETS["vidar_250x400"], np.random.default_rng(19))
    ref = SpikeSimulator(4, 5, PRESETS["vidar_250x400"], np.random.default_rng(19))
    good = np.full((4, 5), 0.3, np.float32)
    frame = good.copy()
    frame[1, 2] = bad
    for s in (sim, ref):
        s.feed(good, 0)
    with pytest.raises(SpikeError, match=match):
        sim.feed(frame, 500)
    assert np.array_equal(sim.feed(good, 1000).packed, ref.feed(good, 1000).packed)
    with pytest.raises(SpikeError, match=match):
        simulate(np.stack([good, frame]), [0, 100])


def test_bad_timestamps_and_shapes_raise():
    sim = SpikeSimulator(4, 5, SpikeParams(), np.random.default_rng(20))
    img = np.zeros((4, 5), np.float32)
    sim.feed(img, 100)
    with pytest.raises(SpikeError, match="increase"):
        sim.feed(img, 100)
    with pytest.raises(SpikeError, match="integer microseconds"):
        sim.feed(img, 150.5)
    with pytest.raises(SpikeError, match="shape"):
        sim.feed(np.zeros((5, 4), np.float32), 200)
    with pytest.raises(SpikeError, match="increasing"):
        simulate(np.stack([img, img, img]), [0, 100, 50])
    with pytest.raises(SpikeError, match="one timestamp per frame"):
        simulate(np.stack([img, img]), [0, 100, 200])
