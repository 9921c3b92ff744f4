"""Statistical and exact checks of the DVS-Voltmeter event model (fixed seeds).

Tolerances are derived from the model and stated where used; "n sigma" means n standard
errors of the estimated quantity.
"""
import math
import warnings

import numba
import numpy as np
import pytest
from scipy import stats

from nfs_synth.sensors import event_simulator as ev_mod
from nfs_synth.sensors import events_kernel as K
from nfs_synth.sensors.counter_rng import mix
from nfs_synth.sensors.dvs import NONIDEAL_LIMITS
from nfs_synth.sensors.events import (DVS240, DVS346, EVENT_DTYPE, PRESETS, TABLE3_RANGES, DVSParams,
                                      EventSimulator, EventsError, from_recipe, rgb_to_gray,
                                      sample_params, simulate)
from nfs_synth.sensors.events_torch import TorchEventSimulator

NOISELESS = dict(k3=0.0, k6=0.0)
# The model tests run on the numba kernel and on the torch path (on the CPU here).
BACKENDS = pytest.mark.parametrize("device", [None, "cpu"], ids=["numba", "torch"])


def _const(value, n, h, w):
    return np.full((n, h, w), float(value))


def _simulator(device, *args, **options):
    if device is None:
        return EventSimulator(*args, **options)
    return TorchEventSimulator(*args, device=device, **options)


def _ramp(l0, l1, n, h, w):
    return np.broadcast_to(np.linspace(l0, l1, n)[:, None, None], (n, h, w)).copy()


# --- parameters ------------------------------------------------------------------------

def test_presets_match_the_reference_calibration():
    assert DVS346.as_array() == pytest.approx([5.265, 20, 1e-4, 1e-7, 5e-9, 1e-5], rel=1e-12)
    assert DVS240.k1 == pytest.approx(4.42411) and DVS240.k2 == 23 and DVS240.k5 == 5e-8
    assert set(PRESETS) == {"DVS346", "DVS240"}


@pytest.mark.parametrize("bad, word", [
    (dict(k1=0.0), "k1"), (dict(k2=-1.0), "k2"), (dict(k3=-1e-5), "k3"), (dict(k6=float("nan")), "k6"),
    (dict(k4=float("inf")), "k4"), (dict(k5="1e-9"), "k5"), (dict(k1=True), "k1"),
])
def test_out_of_range_parameters_are_rejected(bad, word):
    values = DVS346.as_dict() | bad
    with pytest.raises(EventsError, match=word):
        DVSParams(**values)


def test_sample_params_uses_table3_and_fixed_draw_order():
    p = sample_params(np.random.default_rng(1))
    for name, (lo, hi) in TABLE3_RANGES.items():
        assert lo <= getattr(p, name) <= hi
    assert p == sample_params(np.random.default_rng(1))
    # Narrowing one range leaves the other draws unchanged.
    q = sample_params(np.random.default_rng(1), {"k3": [1e-4, 1e-4]})
    assert q.k3 == 1e-4 and (q.k1, q.k6) == (p.k1, p.k6)
    for bad in ({"k1": [5, 4]}, {"k9": [0, 1]}, {"k2": [1]}, {"k1": [0, 1]}):
        with pytest.raises(EventsError):
            sample_params(np.random.default_rng(1), bad)


# --- kernel pieces ---------------------------------------------------------------------

def test_zero_drift_polarity_is_b_over_a_plus_b():
    # The reference uses 1/2 here; the exact two-barrier value is B/(A+B).
    for r in (-0.6, 0.0, 0.3, 0.9):
        assert K._p_on(0.0, 1e-8, 1 - r, 1 + r) == pytest.approx((1 + r) / 2, rel=1e-12)
    # Tiny drift tends continuously to that limit; large drift gives certainty, never NaN.
    assert K._p_on(1e-12, 1e-4, 0.5, 1.5) == pytest.approx(0.75, rel=1e-6)
    assert K._p_on(1e-3, 1e-10, 1.0, 1.0) == 1.0 and K._p_on(-1e-3, 1e-10, 1.0, 1.0) == 0.0
    assert K._p_on(1e-3, 0.0, 0.2, 1.8) == 1.0 and K._p_on(-1e-3, 0.0, 0.2, 1.8) == 0.0


def test_p_on_matches_gamblers_ruin_formula():
    for mu, s2, a in ((1e-5, 2e-5, 0.7), (-3e-6, 1e-5, 1.2), (2e-7, 1e-6, 1.0)):
        b = 2.0 - a
        g = 2 * mu / s2
        ref = (math.exp(g * b) - 1) / (math.exp(g * b) - math.exp(-g * a))
        assert K._p_on(mu, s2, a, b) == pytest.approx(ref, rel=1e-12)


def _passage_samples(e, c, s2, n, seed):
    rng = np.random.default_rng(seed)
    z2, u = rng.standard_normal(n) ** 2, rng.random(n)
    return np.array([K._passage(e, 1.0 / e, c, s2, z2[i], u[i])[1] for i in range(n)])


def test_first_passage_is_inverse_gaussian_and_levy_at_zero_drift():
    e, c, s2 = 0.8, 2e-5, 3e-5
    x = _passage_samples(e, c, s2, 4000, 2)
    lam, mean = e * e / s2, e / c
    assert stats.kstest(x, stats.invgauss(mean / lam, scale=lam).cdf).pvalue > 1e-3
    # c == 0: Levy with scale e^2/s2 exactly (the reference's sampler is 2x too slow).
    x0 = _passage_samples(e, 0.0, s2, 4000, 3)
    assert stats.kstest(x0, stats.levy(scale=lam).cdf).pvalue > 1e-3
    # Without noise the passage is deterministic.
    assert _passage_samples(e, c, 0.0, 5, 4) == pytest.approx(np.full(5, mean), rel=1e-12)


@numba.njit
def _abs_normals(n, seed):
    out, j = np.empty((2, n)), 0
    for i in range(n):
        out[0, i], out[1, i], j = K._abs_normal(np.uint64(seed), j)
    return out


def test_ziggurat_gives_half_normal_magnitudes_and_an_independent_uniform():
    z, u = _abs_normals(100_000, 7)
    assert stats.kstest(z, stats.halfnorm.cdf).pvalue > 1e-3
    # The spare bits of the normal's word: uniform, and uncorrelated with |Z| (|rho| within
    # 5 standard errors, 1/sqrt(n)).
    assert stats.kstest(u, stats.uniform.cdf).pvalue > 1e-3
    assert abs(np.corrcoef(z, u)[0, 1]) < 5 / math.sqrt(z.size)
    # Tail beyond R (its own sampler): within 5 binomial standard errors.
    p = 2 * stats.norm.sf(K._ZIG_R)
    assert np.mean(z > K._ZIG_R) == pytest.approx(p, abs=5 * math.sqrt(p * (1 - p) / z.size))


# --- simulator statistics --------------------------------------------------------------

@pytest.mark.parametrize("params, level, n_frames, dt", [
    (DVS346, 128.0, 101, 20_000), (DVS240, 128.0, 101, 20_000), (DVS346, 0.0, 201, 1_000_000)])
@BACKENDS
def test_static_leak_rate(params, level, n_frames, dt, device):
    h = w = 32
    t = np.arange(n_frames, dtype=np.int64) * dt
    ev = simulate(_const(level, n_frames, h, w), t, params, 11, random_initial_residual=True, device=device)
    expected = 1e6 * (params.k4 + params.k5 * level)  # Hz
    duration = (t[-1] - t[0]) / 1e6
    rate = np.count_nonzero(ev["p"] == 1) / (h * w * duration)
    # With the stationary initial residual each pixel fires floor(rate*T + U) times, so the
    # sampling error of the mean is < 0.5/sqrt(1024) events per pixel: far below 10 %.
    assert rate == pytest.approx(expected, rel=0.10)
    assert np.count_nonzero(ev["p"] == 0) < 0.01 * len(ev)


@BACKENDS
def test_reference_initial_residual_fires_leak_in_lock_step(device):
    h = w = 16
    t = np.arange(81, dtype=np.int64) * 25_000  # 2 s; first leak event near 1/0.74 Hz
    first = {}
    for opt in (False, True):
        ev = simulate(_const(128, 81, h, w), t, DVS346, 5, random_initial_residual=opt, device=device)
        _, idx = np.unique(ev["y"].astype(np.int64) * w + ev["x"], return_index=True)
        first[opt] = ev["t"][idx].astype(float)
    # Residual 0: IG first passage with CV sqrt(sigma^2/mu) ~ 2 %; random: uniform phase.
    assert first[False].std() / first[False].mean() < 0.05
    assert first[True].std() / first[True].mean() > 0.3


@BACKENDS
def test_brightness_ramp_counts_and_polarity(device):
    h, w, n = 32, 32, 101
    t = np.arange(n, dtype=np.int64) * 1000
    expected = DVS346.k1 * math.log((200 + 20) / (50 + 20))
    # Random stationary residual: E[ON count] = k1*|dln| + leak*T exactly (leak*T ~ 0.07).
    up = simulate(_ramp(50, 200, n, h, w), t, DVS346, 7, random_initial_residual=True, device=device)
    assert len(up) / (h * w) == pytest.approx(expected, rel=0.05)
    assert np.all(up["p"] == 1)
    # Fine thresholds (k1=60) make the floor of the count negligible, in both directions.
    fine = DVSParams(60.0, 20.0, 1e-4, 1e-7, 5e-9, 1e-5)
    for l0, l1, pol in ((50, 200, 1), (200, 50, 0)):
        ev = simulate(_ramp(l0, l1, n, h, w), t, fine, 8, device=device)
        assert len(ev) / (h * w) == pytest.approx(60 * abs(math.log((l1 + 20) / (l0 + 20))), rel=0.05)
        assert np.mean(ev["p"] == pol) > 0.99


@BACKENDS
def test_step_counts_need_log_drift(device):
    h = w = 32
    fine = DVSParams(60.0, 20.0, 1e-4, 1e-7, 5e-9, 1e-5)
    for l0, l1 in ((50, 200), (200, 50)):
        frames, t = np.stack([_const(l0, 1, h, w)[0], _const(l1, 1, h, w)[0]]), np.array([0, 2000])
        log_ev = simulate(frames, t, fine, 9, log_drift=True, device=device)
        assert len(log_ev) / (h * w) == pytest.approx(60 * abs(math.log((l1 + 20) / (l0 + 20))), rel=0.05)
        # The reference's midpoint drift gives k1*dL/(Lm+k2) for a single step instead.
        mid_ev = simulate(frames, t, fine, 9, device=device)
        assert len(mid_ev) / (h * w) == pytest.approx(60 * abs(l1 - l0) / ((l0 + l1) / 2 + 20), rel=0.05)


@BACKENDS
def test_zero_noise_events_are_the_analytic_crossings(device):
    rng = np.random.default_rng(4)
    h, w, n = 3, 5, 25
    params = DVSParams(5.0, 20.0, 0.0, 1e-7, 1e-9, 0.0)
    t = np.concatenate([[0], np.cumsum(rng.integers(500, 3000, n - 1))]).astype(np.int64)
    sign = rng.choice([-1.0, 1.0], size=(h, w))
    start = np.where(sign > 0, 10.0, 245.0)
    frames = start + sign * np.cumsum(rng.uniform(1.0, 9.0, (n, h, w)), axis=0)
    ev = simulate(frames, t, params, 0, device=device)
    expected = []
    for y in range(h):
        for x in range(w):
            lv = frames[:, y, x]
            lm = (lv[1:] + lv[:-1]) / 2
            mu = params.k1 * np.diff(lv) / np.diff(t) / (lm + params.k2) + params.k4 + params.k5 * lm
            v = np.concatenate([[0.0], np.cumsum(mu * np.diff(t))])  # voltage at frame times
            for level in range(1, int(abs(v[-1])) + 1):
                j = np.searchsorted(np.abs(v), level) - 1  # interval in which |V| reaches level
                expected.append((t[j] + (level - abs(v[j])) / abs(mu[j]), x, y, int(sign[y, x] > 0)))
    expected = np.array(expected)
    got = np.stack([ev["t"], ev["x"], ev["y"], ev["p"]], axis=1).astype(float)
    order_e = np.lexsort((expected[:, 0], expected[:, 1], expected[:, 2]))
    order_g = np.lexsort((got[:, 0], got[:, 1], got[:, 2]))
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got[order_g, 1:], expected[order_e, 1:])
    assert np.max(np.abs(got[order_g, 0] - expected[order_e, 0])) <= 0.5 + 1e-6


@BACKENDS
def test_log_drift_is_split_invariant_without_noise(device):
    h = w = 4
    params = DVSParams(5.0, 20.0, 0.0, 0.0, 0.0, 0.0)
    coarse = simulate(np.stack([_const(30, 1, h, w)[0], _const(230, 1, h, w)[0]]), [0, 9000], params, 1,
                      log_drift=True, device=device)
    levels = np.array([30, 31, 60, 200, 230.0])
    fine = simulate(np.broadcast_to(levels[:, None, None], (5, h, w)), [0, 100, 2000, 8000, 9000], params, 1,
                    log_drift=True, device=device)
    assert len(coarse) == len(fine) == h * w * math.floor(5 * math.log(250 / 50))


@BACKENDS
def test_zero_drift_first_passage_through_the_simulator(device):
    # k4=k5=0 and a static frame: mu == 0, sigma = k6.  With sigma*sqrt(dt) = 1 the chance
    # of a first event within dt is P(Levy(1) <= 1) = 2*(1 - Phi(1)) = 0.3173 (the
    # reference's factor-2 sampler would give 0.157).  Binomial SE over 4096 px: 0.0073.
    h = w = 64
    params = DVSParams(5.0, 20.0, 0.0, 0.0, 0.0, 1e-2)
    ev = simulate(_const(100, 2, h, w), [0, 10_000], params, 3, device=device)
    fired = len(np.unique(ev["y"].astype(np.int64) * w + ev["x"])) / (h * w)
    assert fired == pytest.approx(2 * stats.norm.sf(1.0), abs=5 * 0.0073)
    assert np.mean(ev["p"]) == pytest.approx(0.5, abs=0.05)


@BACKENDS
def test_passage_against_the_drift_uses_the_conditional_law(device):
    # 2*mu/sigma^2 = 1: P(first event OFF) = 1 - (1-e^-1)/(1-e^-2) = 0.269.  Conditioned on
    # reaching its barrier first, the OFF passage time is IG(1/mu, 1/sigma^2) like ON.
    h = w = 48
    mu, s2 = 1e-5, 2e-5
    params = DVSParams(5.0, 20.0, 0.0, mu, 0.0, math.sqrt(s2))
    ev = simulate(_const(100, 2, h, w), [0, 5_000_000], params, 6, device=device)  # long interval: argsort path
    _, idx = np.unique(ev["y"].astype(np.int64) * w + ev["x"], return_index=True)
    first = ev[idx]
    p_off = 1 - (1 - math.exp(-1)) / (1 - math.exp(-2))
    se = math.sqrt(p_off * (1 - p_off) / len(first))
    assert np.mean(first["p"] == 0) == pytest.approx(p_off, abs=5 * se)
    law = stats.invgauss(mu=(1 / mu) * s2, scale=1 / s2).cdf
    for pol in (0, 1):
        assert stats.kstest(first["t"][first["p"] == pol], law).pvalue > 1e-3


# --- determinism and streaming ---------------------------------------------------------

def _texture(n=12, h=20, w=30):
    x = np.linspace(0, 1, w)
    return np.stack([np.broadcast_to(120 + 100 * np.sin(2 * np.pi * (3 * x + 0.07 * i)), (h, w))
                     for i in range(n)]), np.arange(n, dtype=np.int64) * 1000


@numba.njit
def _scalar_interval(l0, l1, res, dt, k, key, interval):
    """The model one pixel at a time, every step by the exact scalar `_attempt` (the
    kernel's definition), drift and noise as documented: (t, x, y, p) rows and residuals."""
    k1, k2, k3, k4, k5, k6 = k
    h, w = l0.shape
    out = []
    res_out = np.empty((h, w))
    for y in range(h):
        row_seed = mix(key ^ mix((np.uint64(interval) << np.uint64(32)) | np.uint64(y)))
        for x in range(w):
            lm = 0.5 * (l0[y, x] + l1[y, x])
            inv = 1.0 / (lm + k2)
            mu = k1 * (l1[y, x] - l0[y, x]) * (1.0 / dt) * inv + k4 + k5 * lm
            s2 = (k3 * math.sqrt(lm) * inv + k6) ** 2
            j, t, r = (x << 32) + 1, 0.0, res[y, x]
            while True:
                on, e, rate, tau, j = K._attempt(row_seed, j, mu, s2, r)
                r_next, t_next, fire = K._outcome(r, on, e, rate, tau, t, dt)
                if not fire:
                    res_out[y, x] = r_next
                    break
                out.append((np.int64(np.rint(t_next)), x, y, int(on)))
                t, r = t_next, 0.0
    return out, res_out


@pytest.mark.parametrize("k", [DVS346.as_array(), np.array([5.0, 20.0, 1e-4, 0.0, 0.0, 1e-5])])
def test_vectorised_steps_equal_the_scalar_definition(k):
    # Strong edges (certain polarity, the vectorised fast path), flat regions with a random
    # residual (polarity a coin flip, the slow path) and, with k4 = k5 = 0, zero drift.
    rng = np.random.default_rng(8)
    h, w = 12, 70
    l0 = np.repeat(rng.choice([5.0, 120.0, 250.0], size=(h, w // 5)), 5, axis=1)
    l1 = np.where(rng.random((h, w)) < 0.5, l0, l0[:, ::-1])
    res = rng.uniform(-0.99, 0.99, (h, w))
    key, interval, dt = np.uint64(77), 5, 1000.0
    expected, res_expected = _scalar_interval(l0, l1, res, dt, k, key, interval)
    cap = 4096
    buf = np.empty((h, cap), np.int64)
    counts = np.zeros(h, np.int64)
    res_out = np.empty((h, w))
    K.simulate_interval(l0, l1, res, res_out, dt, k, False, key, interval, np.arange(h), cap, buf,
                        counts, np.zeros(0, np.int64))
    got = np.empty(counts.sum(), EVENT_DTYPE)
    K.gather_rows(buf, counts, 0, got["t"], got["x"], got["y"], got["p"])
    want = np.array(expected, dtype=[("t", "<i8"), ("x", "<i8"), ("y", "<i8"), ("p", "<i8")])
    assert len(want) > 1000
    key_of = lambda e: np.lexsort((e["p"], e["x"], e["y"], e["t"]))
    for f in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(got[f][key_of(got)], want[f][key_of(want)])
    np.testing.assert_array_equal(res_out, res_expected)


def test_same_seed_same_events_and_streaming_equals_whole():
    frames, t = _texture()
    whole = simulate(frames, t, "DVS240", 42, random_initial_residual=True)
    assert whole.dtype == EVENT_DTYPE and len(whole) > 1000
    assert np.all(np.diff(whole["t"]) >= 0)
    np.testing.assert_array_equal(whole, simulate(frames, t, "DVS240", 42, random_initial_residual=True))
    assert not np.array_equal(whole, simulate(frames, t, "DVS240", 43, random_initial_residual=True))
    sim = EventSimulator(20, 30, DVS240, np.random.default_rng(42), random_initial_residual=True)
    first = sim.feed(frames[0], int(t[0]))
    assert first.dtype == EVENT_DTYPE and len(first) == 0
    streamed = np.concatenate([first] + [sim.feed(f, int(ti)) for f, ti in zip(frames[1:], t[1:])])
    np.testing.assert_array_equal(streamed, whole)


def test_events_do_not_depend_on_thread_count():
    frames, t = _texture()
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = simulate(frames, t, DVS346, 1)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, simulate(frames, t, DVS346, 1))


def test_buffer_overflow_rerun_gives_the_same_events():
    # A dense step overflows the initial per-row buffer (64 events); the rows re-run with a
    # larger buffer must give exactly what a large enough buffer gives at once.
    frames = np.stack([np.full((8, 40), 10.0), np.full((8, 40), 250.0)])
    fine = DVSParams(60.0, 20.0, 1e-4, 1e-7, 5e-9, 1e-5)
    grown = EventSimulator(8, 40, fine, np.random.default_rng(5))
    at_once = EventSimulator(8, 40, fine, np.random.default_rng(5))
    at_once._alloc(10_000)
    a = [grown.feed(f, t) for f, t in zip(frames, (0, 1000))]
    b = [at_once.feed(f, t) for f, t in zip(frames, (0, 1000))]
    assert grown._cap > 64 and len(a[1]) > 8 * 64
    np.testing.assert_array_equal(a[1], b[1])


def test_dense_interval_sorted_in_bands_matches_every_sort_path(monkeypatch):
    # Over 65k events on 64 rows: the kernel's per-band histograms, the buffers overflowing and
    # re-run, the banded scatter in threads; it must match one thread (one band) and the serial
    # counting sort and the argsort used for longer intervals, event for event.
    frames = np.stack([np.full((64, 64), 10.0), np.full((64, 64), 250.0)])
    fine = DVSParams(60.0, 20.0, 1e-4, 1e-7, 5e-9, 1e-5)
    banded = simulate(frames, [0, 1000], fine, 3)
    assert len(banded) > ev_mod._EVENTS_PER_GATHER_TASK
    assert np.all(np.diff(banded["t"]) >= 0)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        np.testing.assert_array_equal(simulate(frames, [0, 1000], fine, 3), banded)
    finally:
        numba.set_num_threads(before)
    monkeypatch.setattr(ev_mod, "_FUSED_SORT_MAX_DT", 100)
    np.testing.assert_array_equal(simulate(frames, [0, 1000], fine, 3), banded)
    monkeypatch.setattr(ev_mod, "_COUNTING_SORT_MAX_DT", 100)
    np.testing.assert_array_equal(simulate(frames, [0, 1000], fine, 3), banded)


def test_quantize_8bit_rounds_input():
    frames, t = _texture()
    a = simulate(np.rint(frames), t, DVS346, 2)
    b = simulate(frames + 0.3 * (np.rint(frames) - frames), t, DVS346, 2, quantize_8bit=True)
    np.testing.assert_array_equal(a, b)


def test_torch_path_has_the_numba_statistics():
    # The same frames through both: per pixel, the counts of all and of ON events are
    # independent draws of the same law, so their paired differences average to 0 within 5
    # standard errors; the times within the interval follow one law (two-sample KS).
    frames, t = _texture(40, 40, 60)
    frames = frames + np.random.default_rng(1).uniform(0, 30, frames.shape)  # flicker: noisy pixels
    a = simulate(frames, t, DVS240, 5, random_initial_residual=True)
    b = simulate(frames, t, DVS240, 6, random_initial_residual=True, device="cpu")
    assert len(a) > 20_000
    for ev_a, ev_b in ((a, b), (a[a["p"] == 1], b[b["p"] == 1])):
        counts = [np.bincount(e["y"].astype(np.int64) * 60 + e["x"], minlength=40 * 60) for e in (ev_a, ev_b)]
        d = counts[0] - counts[1]
        assert abs(d.mean()) < 5 * d.std() / math.sqrt(d.size)
    assert stats.ks_2samp(a["t"] % 1000, b["t"] % 1000).pvalue > 1e-3


def test_torch_path_is_reproducible_and_streams():
    frames, t = _texture()
    whole = simulate(frames, t, DVS240, 42, random_initial_residual=True, device="cpu")
    assert whole.dtype == EVENT_DTYPE and len(whole) > 1000 and np.all(np.diff(whole["t"]) >= 0)
    np.testing.assert_array_equal(whole, simulate(frames, t, DVS240, 42, random_initial_residual=True,
                                                  device="cpu"))
    assert not np.array_equal(whole, simulate(frames, t, DVS240, 43, random_initial_residual=True, device="cpu"))
    sim = TorchEventSimulator(20, 30, DVS240, np.random.default_rng(42), device="cpu", random_initial_residual=True)
    streamed = np.concatenate([sim.feed(f, int(ti)) for f, ti in zip(frames, t)])
    np.testing.assert_array_equal(streamed, whole)


@pytest.mark.parametrize("device", ["no-such-device", "cuda:99"])
def test_torch_device_must_exist(device):
    with pytest.raises(EventsError, match="not available"):
        TorchEventSimulator(4, 4, DVS346, np.random.default_rng(0), device=device)


# --- bad input -------------------------------------------------------------------------

@BACKENDS
def test_feed_rejects_bad_input_without_changing_state(device):
    frames, t = _texture(4)
    sim = _simulator(device, 20, 30, DVS346, np.random.default_rng(0))
    sim.feed(frames[0], 0)
    bad = [(frames[1], 0, "not after"), (frames[1], -5, "not after"), (frames[1][:, :-1], 1000, "shape"),
           (np.full((20, 30), np.nan), 1000, "NaN"), (np.full((20, 30), np.inf), 1000, "NaN"),
           (frames[1] - 200, 1000, "negative"), (frames[1], 1000.0, "integer"),
           (frames[1].astype(str), 1000, "numeric")]
    for frame, ti, word in bad:
        with pytest.raises(EventsError, match=word):
            sim.feed(frame, ti)
    got = [sim.feed(f, int(ti)) for f, ti in zip(frames[1:], t[1:])]
    np.testing.assert_array_equal(np.concatenate(got), simulate(frames, t, DVS346, 0, device=device))


def test_simulate_and_constructor_reject_bad_input():
    frames, t = _texture(4)
    with pytest.raises(EventsError, match="strictly increasing"):
        simulate(frames, np.array([0, 1000, 1000, 3000]), DVS346, 0)
    with pytest.raises(EventsError, match="shape"):
        simulate(frames, t[:3], DVS346, 0)
    with pytest.raises(EventsError, match="integer"):
        simulate(frames, t.astype(float), DVS346, 0)
    with pytest.raises(EventsError, match="unknown event-sensor preset"):
        simulate(frames, t, "DVS999", 0)
    with pytest.raises(EventsError, match="rng"):
        EventSimulator(20, 30, DVS346, 0)
    with pytest.raises(EventsError, match="width"):
        EventSimulator(20, 0, DVS346, np.random.default_rng(0))


# --- intensity conversion and recipe ---------------------------------------------------

def test_rgb_to_gray_modes():
    rgb = np.zeros((2, 2, 3), np.float16)
    rgb[0, 0] = 1.0
    rgb[0, 1] = 0.18
    rgb[1, 0] = (0.0, 1.0, 0.0)
    rgb[1, 1] = -0.01  # denoiser undershoot clamps to black
    g = rgb_to_gray(rgb)
    assert g.dtype == np.float32 and g.shape == (2, 2)
    assert g[0, 0] == pytest.approx(255.0, rel=1e-5) and g[1, 1] == 0.0
    assert g[0, 1] == pytest.approx(255 * (1.055 * 0.18 ** (1 / 2.4) - 0.055), rel=1e-3)
    assert g[1, 0] == pytest.approx(255 * (1.055 * 0.7152 ** (1 / 2.4) - 0.055), rel=1e-3)
    lin = rgb_to_gray(rgb, "linear_luminance")
    assert lin[0, 1] == pytest.approx(0.18 * 255, rel=1e-3)
    with pytest.raises(EventsError, match="intensity mode"):
        rgb_to_gray(rgb, "luma")
    with pytest.raises(EventsError, match="NaN"):
        rgb_to_gray(np.full((2, 2, 3), np.nan))
    with pytest.raises(EventsError, match="shape"):
        rgb_to_gray(np.zeros((2, 2)))


def _section(**kw):
    base = dict(enabled=True, preset="random", k1=None, k2=None, k3=None, k4=None, k5=None, k6=None,
                ranges={k: list(v) for k, v in TABLE3_RANGES.items()}, random_initial_residual=True,
                log_drift=False, quantize_8bit=False, intensity="srgb_luminance",
                nonideal=dict.fromkeys(NONIDEAL_LIMITS, 0.0))
    return base | kw


def test_from_recipe_records_what_it_used():
    seq = np.random.SeedSequence(1234, spawn_key=(3,))
    sim, attrs = from_recipe(_section(k3=2e-4), seq, 20, 30)
    assert sim.params.k3 == 2e-4 and attrs["k3"] == 2e-4
    assert TABLE3_RANGES["k1"][0] <= attrs["k1"] <= TABLE3_RANGES["k1"][1]
    assert attrs["preset"] == "random" and attrs["random_initial_residual"] is True
    assert attrs["intensity"] == "srgb_luminance" and attrs["seed_entropy"] == "1234"
    assert attrs["overridden"] == '["k3"]' and attrs["model_version"]
    assert seq.n_children_spawned == 0  # the caller's sequence is not consumed
    # Preset switches and overrides leave the noise stream (key, initial residual) unchanged.
    sim2, attrs2 = from_recipe(_section(preset="DVS240", k1=5.0), seq, 20, 30)
    assert sim2.params == DVSParams(5.0, DVS240.k2, DVS240.k3, DVS240.k4, DVS240.k5, DVS240.k6)
    assert attrs2["k1"] == 5.0 and attrs2["preset"] == "DVS240"
    assert sim2._key == sim._key and np.array_equal(sim2._res, sim._res)
    sim3, _ = from_recipe(_section(), np.random.SeedSequence(1234, spawn_key=(4,)), 20, 30)
    assert sim3._key != sim._key


@pytest.mark.parametrize("change, word", [
    (dict(preset="DVS999"), "preset"), (dict(intensity="luma"), "intensity"), (dict(k1=-1.0), "k1"),
    (dict(log_drift="yes"), "log_drift"), (dict(ranges={"k1": [6, 5]}), "k1"), (dict(extra=1), "unknown"),
])
def test_from_recipe_rejects_bad_sections(change, word):
    with pytest.raises(EventsError, match=word):
        from_recipe(_section(**change), np.random.SeedSequence(0), 20, 30)
    section = _section()
    del section["quantize_8bit"]
    with pytest.raises(EventsError, match="missing"):
        from_recipe(section, np.random.SeedSequence(0), 20, 30)


def test_unit_range_frames_warn_and_scale_says_what_they_are():
    from nfs_synth.sensors.events import DVS346, EventSimulator

    img = np.random.default_rng(3).random((6, 8))               # [0, 1] data, e.g. a float image
    with pytest.warns(UserWarning, match="the model expects gray 0..255"):
        EventSimulator(6, 8, DVS346, np.random.default_rng(1)).feed(img, 0)
    scaled = EventSimulator(6, 8, DVS346, np.random.default_rng(1), scale=255)
    plain = EventSimulator(6, 8, DVS346, np.random.default_rng(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                          # no warning with scale= or 0..255 frames
        got = [scaled.feed(img * f, t) for f, t in ((1.0, 0), (0.5, 10_000))]
        want = [plain.feed(img * f * 255, t) for f, t in ((1.0, 0), (0.5, 10_000))]
    assert len(got[1]) > 0 and np.array_equal(got[1], want[1])
    with pytest.raises(EventsError, match="scale must be a positive number"):
        EventSimulator(6, 8, DVS346, np.random.default_rng(1), scale=0)


def test_an_interval_too_long_for_memory_is_refused_with_its_size():
    from nfs_synth.sensors.events import DVS346, EventSimulator

    sim = EventSimulator(64, 64, DVS346, np.random.default_rng(1))
    frame = np.full((64, 64), 100.0)
    sim.feed(frame, 0)
    with pytest.raises(EventsError, match=r"the interval of 1000000000000000 us .* about 2.\d+e\+1\d events, "
                                          r"needing .* GiB, more than the .* GiB available: are the timestamps"):
        sim.feed(frame, 10**15)                                 # nanoseconds of a long recording, say
    assert len(sim.feed(frame, 20_000)) >= 0                   # the simulator is still usable
