"""Merging weights (paper Eqs. 12, 13), log-domain normalisation, Eq. 5 and the classical baselines."""

import numpy as np
import pytest

from nfs_synth.aif import synthetic
from nfs_synth.color import luminance, srgb_encode
from nfs_synth.aif.merge import (event_symmetry_scores, laplacian_energy_fusion, laplacian_pyramid_fusion,
                                 merge_stack, normalise_weights, spike_rate_variance_scores)
from nfs_synth.aif.streams import EventStack, SpikeStack


def _psnr(a, b):
    return 10 * np.log10(1 / np.mean((a - b) ** 2))


@pytest.fixture(scope="module")
def sweep():
    return synthetic.layered_sweep(size=48, n_frames=25, layers=3, blur_per_frame=0.7, seed=5)


def test_eq12_peaks_at_in_focus_time_of_symmetric_blur():
    """A bright dot on a dark ground blurred by a disk that shrinks to nothing at frame 20 and grows again
    symmetrically: its centre brightens (ON events) then darkens (OFF events), and Eq. 12 is largest at
    the in-focus frame."""
    n, focus = 41, 20
    img = np.full((21, 21), 0.05, np.float32)
    img[10, 10] = 0.9
    frames = np.stack([synthetic.disk_blur(img, 1.0 * abs(i - focus)) for i in range(n)])
    t = np.arange(n, dtype=np.int64) * 100
    events = synthetic.ideal_events(frames, t, 0.05, 0.0)
    stack = EventStack.from_events(events, img.shape, t)
    scores = event_symmetry_scores(stack, list(range(n)), sigma=0.0)[:, 10, 10]
    assert int(np.argmax(scores)) == focus
    assert scores[focus] > 0
    smoothed = event_symmetry_scores(stack, list(range(n)), sigma=1.5)
    assert int(np.argmax(smoothed[:, 10, 10])) == focus


def test_weights_non_negative_sum_to_one_and_survive_large_exponents():
    rng = np.random.default_rng(0)
    scores = rng.random((5, 8, 9)) * 1e-3
    scores[:, 0, 0] = 0.0  # a pixel without any signal
    for sharpness in (1.0, 50.0, 400.0):
        w = normalise_weights(scores, sharpness)
        assert np.all(w >= 0) and np.all(np.isfinite(w))
        np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-5)
        np.testing.assert_allclose(w[:, 0, 0], 0.2, atol=1e-6)
    # proportional at sharpness 1
    np.testing.assert_allclose(normalise_weights(scores)[:, 3, 3], scores[:, 3, 3] / scores[:, 3, 3].sum(), rtol=1e-4)
    with pytest.raises(ValueError):
        normalise_weights(-scores)


def test_eq13_weights_select_in_focus_frames(sweep):
    """With ideal spikes, Eq. 13 weights merged over the frames of the sweep give a sharper image than
    any single frame."""
    y = luminance(sweep.frames)
    bits, t = synthetic.ideal_spikes(y, sweep.t_us, 20, seed=1)
    stack = SpikeStack.from_bits(bits, t, stride=5)  # 4 cells per frame, TFP over one frame interval
    cells = [4 * i for i in range(len(sweep.frames))]
    w = normalise_weights(spike_rate_variance_scores(stack, cells, 2, sigma=3.0), 4.0)
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-5)
    srgb = srgb_encode(sweep.frames)
    gt = srgb_encode(sweep.all_in_focus)
    merged = merge_stack(srgb, w)
    best_single = max(_psnr(f, gt) for f in srgb)
    assert _psnr(merged, gt) > best_single + 2.0


def test_classical_baselines_beat_every_single_frame(sweep):
    srgb = srgb_encode(sweep.frames)
    gt = srgb_encode(sweep.all_in_focus)
    best_single = max(_psnr(f, gt) for f in srgb)
    image, index = laplacian_energy_fusion(srgb)
    assert _psnr(image, gt) > best_single + 3.0
    # the index map is the depth order: bands left to right are in focus at increasing frames
    cols = [index[:, c].mean() for c in (8, 24, 40)]
    assert cols[0] < cols[1] < cols[2]
    assert _psnr(laplacian_pyramid_fusion(srgb), gt) > best_single + 3.0


def test_merge_of_identical_stack_is_identity():
    img = np.random.default_rng(1).random((6, 7, 3)).astype(np.float32)
    w = normalise_weights(np.random.default_rng(2).random((3, 6, 7)))
    np.testing.assert_allclose(merge_stack(np.stack([img] * 3), w), img, atol=1e-6)
