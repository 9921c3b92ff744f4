"""Refocus-time selection: golden-section search (paper Algorithm 1) and the patch grid."""

import numpy as np
import pytest

from nfs_synth.aif import synthetic
from nfs_synth.color import luminance
from nfs_synth.aif.search import golden_section_max, patch_grid, select_refocus_indices, uniform_indices
from nfs_synth.aif.streams import SpikeStack


@pytest.mark.parametrize("peak", [0.0, 3.3, 17.25, 40.0])
def test_golden_section_finds_known_peak(peak):
    calls = []

    def f(t):
        calls.append(t)
        return -abs(t - peak) ** 1.5

    t = golden_section_max(f, 0.0, 40.0, tol=0.01)
    assert abs(t - peak) <= 0.01
    assert len(calls) <= 2 + int(np.ceil(np.log(40 / 0.01) / np.log(1.618)))  # one evaluation per step


def test_golden_section_rejects_bad_interval():
    with pytest.raises(ValueError):
        golden_section_max(lambda t: t, 1.0, 1.0, 0.1)
    with pytest.raises(ValueError):
        golden_section_max(lambda t: t, 0.0, 1.0, 0.0)


def test_patch_grid_tiles_image():
    cover = np.zeros((37, 50), int)
    for ys, xs in patch_grid((37, 50), 4):
        cover[ys, xs] += 1
    assert np.all(cover == 1)
    with pytest.raises(ValueError):
        patch_grid((3, 3), 4)


def test_search_finds_in_focus_time_of_each_band():
    """Three bands at three depths, each in focus at a known frame; the variance of the spike-rate
    refocus of a patch inside a band peaks at that band's in-focus frame."""
    sweep = synthetic.layered_sweep(size=48, n_frames=24, layers=3, blur_per_frame=1.0, seed=3)
    y = luminance(sweep.frames)
    spf = 20
    bits, t = synthetic.ideal_spikes(y, sweep.t_us, spf, seed=0)
    stack = SpikeStack.from_bits(bits, t, stride=1)

    def sharpness(k, patch):
        return float(np.var(stack.tfp(k, 10, patch)))  # TFP over one frame interval

    found = select_refocus_indices(sharpness, (48, 48), 3, stack.n_steps, mu=1.0)
    expected = sorted({int(f) for f in np.unique(sweep.focus_frame)})
    frames_found = np.array(sorted({k / spf for k in found}))
    # every band's focus is found, and nothing else, to within one frame (3.45 -> 3, 11.5 -> 12, ...)
    assert all(np.min(np.abs(frames_found - e)) <= 1.0 for e in expected)
    assert all(np.min(np.abs(np.array(expected) - f)) <= 1.0 for f in frames_found)


def test_uniform_indices():
    assert uniform_indices(11, 3) == [0, 5, 10]
    assert uniform_indices(3, 10) == [0, 1, 2]
