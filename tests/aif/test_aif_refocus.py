"""Refocusing with noise-free streams (paper Eqs. 8 and 9) against frames of a synthetic sweep."""

import math

import numpy as np
import pytest

from nfs_synth.aif import synthetic
from nfs_synth.color import compose_lab, lab_from_linear, luminance, srgb_encode
from nfs_synth.aif.refocus import estimate_event_threshold, leak_rate, refocus_events, spike_gain
from nfs_synth.aif.streams import EventStack, SpikeStack

C, OFFSET = 0.01, 0.0


@pytest.fixture(scope="module")
def sweep():
    return synthetic.layered_sweep(size=40, n_frames=16, layers=2, colour=False, seed=1)


def test_event_refocus_reproduces_target_within_threshold_bound(sweep):
    """An ideal pixel's reference level stays within one threshold c of its log intensity, and starts
    equal to it at the first frame.  Refocusing the first frame with the signed event count S gives
    log(Y_hat) = log(Y_0) + c*S = ref(t), so |log Y_hat - log Y_t| < c and |Y_hat - Y_t| < Y_t (e^c - 1)
    <= e^c - 1 (Y <= 1).  Hence PSNR on luminance >= -20 log10(e^c - 1) = 39.96 dB for c = 0.01.
    On the sRGB output of a gray scene the error is at most the sRGB curve's slope at the darkest
    level (Y >= 0.05**2.2 here) times that bound."""
    y = luminance(sweep.frames)
    events = synthetic.ideal_events(y, sweep.t_us, C, OFFSET)
    stack = EventStack.from_events(events, y.shape[1:], sweep.t_us)
    lab = lab_from_linear(sweep.frames[0])
    bound_y = math.exp(C) - 1.0
    y_min = float(y.min())
    slope = 1.055 / 2.4 * y_min ** (1 / 2.4 - 1)  # d sRGB / dY at the darkest pixel
    for k in (5, 10, 15):
        y_hat = refocus_events(y[0], stack.polarity_sum(0, k), C, OFFSET, "linear_luminance")
        err = np.abs(y_hat - y[k])
        assert np.all(err <= y[k] * bound_y + 1e-5)
        assert 10 * np.log10(1 / np.mean(err**2)) >= -20 * np.log10(bound_y)
        out = compose_lab(y_hat, lab)
        target = srgb_encode(sweep.frames[k])
        assert np.max(np.abs(out - target)) <= slope * bound_y + 2e-3  # + Lab round trip in float32
        assert 10 * np.log10(1 / np.mean((out - target) ** 2)) > 40.0


def test_event_refocus_backwards_in_time(sweep):
    """From a later frame the two reference errors add: |log error| < 2c."""
    y = luminance(sweep.frames)
    stack = EventStack.from_events(synthetic.ideal_events(y, sweep.t_us, C, OFFSET), y.shape[1:], sweep.t_us)
    y_hat = refocus_events(y[12], stack.polarity_sum(12, 3), C, OFFSET, "linear_luminance")
    assert np.all(np.abs(np.log(y_hat) - np.log(y[3])) < 2 * C + 1e-5)


def test_spike_refocus_within_quantisation(sweep):
    """An ideal integrate-and-fire pixel (subtract reset, charge in [0, 1)) fires n spikes in M steps with
    |n - sum of intensities| < 1, so TFP = n / M is within 1/M of the window's mean intensity.  The
    gain fitted against the input frame is close to 1; the refocus g * TFP is then within g/M + |g - 1|."""
    y = luminance(sweep.frames)
    spf, half = 8, 3  # 8 steps per frame, window of 2 * 3 cells of 1 step
    bits, t = synthetic.ideal_spikes(y, sweep.t_us, spf, seed=2)
    stack = SpikeStack.from_bits(bits, t, stride=1)
    m = 2 * half
    for j in (20, 64, 100):
        rate = stack.tfp(j, half)
        steps = np.arange(j - half, j + half)  # grid boundary j closes step j - 1
        truth = y[steps // spf].mean(axis=0)
        assert np.max(np.abs(rate - truth)) < 1.0 / m + 1e-6
    g = spike_gain(stack.tfp(half, half), y[0])
    assert abs(g - 1.0) < 0.05
    j = 64
    truth = y[np.arange(j - half, j + half) // spf].mean(axis=0)
    assert np.max(np.abs(g * stack.tfp(j, half) - truth)) <= g / m + abs(g - 1.0) + 1e-6


def test_spike_stack_stride_and_chunks_agree():
    rng = np.random.default_rng(0)
    bits = (rng.random((40, 5, 7)) < 0.3).astype(np.uint8)
    t = np.arange(40, dtype=np.int64) * 50 + 50
    whole = SpikeStack.from_bits(bits, t, stride=4)
    chunked = SpikeStack.from_chunks([bits[:13], bits[13:29], bits[29:]], t, stride=4)
    np.testing.assert_array_equal(whole.cum, chunked.cum)
    np.testing.assert_array_equal(whole.cum[-1], bits.sum(axis=0))
    assert whole.t_us[1] == t[3] and whole.n_steps == 11


def test_event_stack_counts_match_events():
    ev = np.zeros(4, synthetic.EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = [5, 10, 11, 30], [0, 1, 1, 1], [0, 0, 0, 0], [1, 1, 0, 1]
    st = EventStack.from_events(ev, (1, 2), np.array([0, 10, 20, 30]))
    assert st.polarity_sum(0, 1).tolist() == [[1, 1]]  # t <= 10
    assert st.polarity_sum(1, 2).tolist() == [[0, -1]]
    assert st.polarity_sum(3, 0).tolist() == [[-1, -1]]
    with pytest.raises(ValueError, match="outside"):
        EventStack.from_events(ev, (1, 1), np.array([0, 10]))


def test_leak_rate_recovers_brightness_proportional_leak():
    """Net polarity = sweep change (zero-median, either sign) + leak (a + b * gray) * duration."""
    rng = np.random.default_rng(3)
    gray = rng.uniform(0.1, 0.9, (40, 40))
    sweep_change = rng.choice([-3, 0, 0, 0, 3], size=gray.shape)
    duration = 5e5
    a, b = 1e-7, 8e-6  # events per us
    total = np.rint(sweep_change + (a + b * gray) * duration)
    rate = leak_rate(total, duration, gray)
    np.testing.assert_allclose(rate * duration, (a + b * gray) * duration, atol=0.6)


def test_eq11_threshold_is_a_candidate():
    y = np.random.default_rng(0).uniform(0.1, 0.9, (20, 20)).astype(np.float32)
    s = np.random.default_rng(1).integers(-2, 3, (20, 20))
    cands = np.array([0.15, 0.2, 0.25])
    assert estimate_event_threshold(y, s, cands, 1.0, 5.0, 0.08) in cands
    assert estimate_event_threshold(y, np.zeros_like(s), cands, 1.0, 5.0, 0.08) == 0.2
