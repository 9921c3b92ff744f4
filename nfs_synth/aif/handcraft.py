"""The non-learned all-in-focus pipeline of the paper's Section 3.3, for events and for spikes.

1. refocus-time selection: golden-section search per patch (Algorithm 1) or uniform (ablation);
2. refocusing the input to each selected time (Eq. 8 with Eq. 11's threshold, or Eq. 9 with TFP);
3. merging with hand-crafted weights (Eq. 12 or Eq. 13) by Eq. 5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from nfs_synth.color import compose_lab, lab_from_linear, luminance
from nfs_synth.aif.merge import event_symmetry_scores, merge_stack, normalise_weights, spike_rate_variance_scores
from nfs_synth.aif.refocus import estimate_event_threshold, event_gray, leak_rate, refocus_events, spike_gain
from nfs_synth.aif.search import select_refocus_indices, uniform_indices
from nfs_synth.aif.streams import EventStack, SpikeStack
from nfs_synth.errors import UsageError


@dataclass(frozen=True)
class HandcraftOptions:
    grid: int = 4  # N: the image is split into N x N patches, one refocus search each
    mu: float = 1.0  # golden-section tolerance, in steps of the event time grid or spike grid cells
    uniform: int = 0  # > 0: the ablation, this many evenly spaced refocus times instead of the search
    weight_sigma: float = 2.0  # Gaussian smoothing of Eq. 12 / local-variance window of Eq. 13 (pixels)
    weight_sharpness: float = 1.0  # weights proportional to score**sharpness
    # events
    event_intensity: str = "srgb_luminance"  # the gray level the event sensor saw (see refocus.py)
    log_offset: float = 20.0 / 255.0  # events see ln(g + offset); DVS-Voltmeter's k2 = 20 on a 0..255 scale
    leak_correction: bool = True  # subtract the brightness-dependent ON leak rate (not in the paper)
    threshold_guess: float = 0.2  # c used while searching times (about 1/k1 of the DVS346/DVS240 presets)
    # Eq. 11 is searched over 1/k1 for k1 in the paper's Table 3 range [4.0, 5.5]: both of its terms
    # grow linearly with contrast, so on a wide bracket it runs to an end (see docs/aif.md).
    threshold_candidates: tuple = tuple(np.geomspace(1 / 5.5, 1 / 4.0, 8).round(4))
    sobel_weight: float = 1.0  # alpha of Eq. 11
    tv_weight: float = 5.0  # beta of Eq. 11: about the Sobel/TV ratio of a clean natural image
    # spikes
    tfp_half_window: int = 2  # TFP window: 2 * half spike-grid cells (see SpikeStack.stride)

    def __post_init__(self):
        for name, ok in (("grid", self.grid >= 1), ("mu", self.mu > 0), ("uniform", self.uniform >= 0),
                         ("tfp_half_window", self.tfp_half_window >= 1), ("weight_sigma", self.weight_sigma >= 0),
                         ("threshold_candidates", len(self.threshold_candidates) > 0)):
            if not ok:
                raise UsageError(f"invalid option {name}={getattr(self, name)!r}")


@dataclass
class Reconstruction:
    image: np.ndarray  # (H, W, 3) sRGB in [0, 1]
    times_us: list  # the refocus times used
    stack: np.ndarray  # (K, H, W, 3) refocused sRGB images
    weights: np.ndarray  # (K, H, W)
    extra: dict = field(default_factory=dict)


def _select(shape, n_steps: int, probe: Callable, opts: HandcraftOptions) -> list[int]:
    if opts.uniform > 0:
        return uniform_indices(n_steps, opts.uniform)
    return select_refocus_indices(lambda k, patch: float(np.var(probe(k, patch))), shape, opts.grid, n_steps, opts.mu)


def handcraft_events(rgb_input: np.ndarray, t_input_us: int, events: EventStack, opts: HandcraftOptions) -> Reconstruction:
    """All-in-focus image from a linear RGB frame taken at ``t_input_us`` and the sweep's events."""
    y_in, lab = luminance(rgb_input), lab_from_linear(rgb_input)
    k_in = events.index_of(t_input_us)
    t = events.edges_us
    rate = np.zeros(y_in.shape, np.float32)
    if opts.leak_correction:
        rate = leak_rate(events.polarity_sum(0, t.size - 1), float(t[-1] - t[0]), event_gray(y_in, opts.event_intensity))

    def polarity_sum(k, patch=np.s_[:, :]):
        return events.polarity_sum(k_in, k, patch) - rate[patch] * float(t[k] - t[k_in])

    def probe(k, patch):
        return refocus_events(y_in[patch], polarity_sum(k, patch), opts.threshold_guess, opts.log_offset,
                              opts.event_intensity)

    indices = _select(y_in.shape, events.edges_us.size, probe, opts)
    candidates = np.asarray(opts.threshold_candidates, dtype=np.float64)
    stack, thresholds = [], []
    for k in indices:
        s = polarity_sum(k)
        c = estimate_event_threshold(y_in, s, candidates, opts.sobel_weight, opts.tv_weight, opts.log_offset,
                                     opts.event_intensity)
        thresholds.append(c)
        stack.append(compose_lab(refocus_events(y_in, s, c, opts.log_offset, opts.event_intensity), lab))
    weights = normalise_weights(event_symmetry_scores(events, indices, opts.weight_sigma), opts.weight_sharpness)
    stack = np.stack(stack)
    return Reconstruction(merge_stack(stack, weights), events.edges_us[indices].tolist(), stack, weights,
                          {"thresholds": thresholds, "leak_events_per_s": float(np.mean(rate)) * 1e6})


def handcraft_spikes(rgb_input: np.ndarray, t_input_us: int, spikes: SpikeStack, opts: HandcraftOptions) -> Reconstruction:
    """All-in-focus image from a linear RGB frame taken at ``t_input_us`` and the sweep's spikes."""
    y_in, lab = luminance(rgb_input), lab_from_linear(rgb_input)
    hw = opts.tfp_half_window
    gain = spike_gain(spikes.tfp(spikes.index_of(t_input_us), hw), y_in)

    def probe(k, patch):
        return spikes.tfp(k, hw, patch)

    indices = _select(y_in.shape, spikes.n_steps, probe, opts)
    stack = np.stack([compose_lab(gain * spikes.tfp(k, hw), lab) for k in indices])
    weights = normalise_weights(spike_rate_variance_scores(spikes, indices, hw, opts.weight_sigma), opts.weight_sharpness)
    return Reconstruction(merge_stack(stack, weights), spikes.t_us[indices].tolist(), stack, weights, {"gain": gain})
