"""The learned all-in-focus pipeline (paper Fig. 5) with trained NeuroRefocusNet and NeuroMergeNet.

1. Refocus-time selection: the input is refocused by NeuroRefocusNet to `candidates` evenly spaced
   times of the sweep; each of the N x N patches keeps the time whose refocused luma has the largest
   variance (the sharpness of Algorithm 1, searched on a fixed grid instead of by golden section, so
   every probe is one batched network call on the whole image).
2. The distinct selected times form the refocused stack.
3. NeuroMergeNet predicts the weights from each stack image and its neuromorphic slice (Eqs. 15-16).

Streams are given as callables so that scene files are read window by window:
- events: `read_events(t_start_us, t_end_us) -> structured array`;
- spikes: `read_spikes(t_start_us, t_end_us) -> SpikeStream` plus the readout period.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from nfs_synth.aif.handcraft import Reconstruction
from nfs_synth.aif.nets import pad_to_multiple
from nfs_synth.aif.representations import (NFS_BINS, event_count_slice, event_leak, event_stack, net_polarity,
                                           spike_planes, tfp_image)
from nfs_synth.aif.search import patch_grid
from nfs_synth.color import REC709_WEIGHTS
from nfs_synth.errors import UsageError

_LUMA = torch.tensor(REC709_WEIGHTS).view(1, 3, 1, 1)


@dataclass(frozen=True)
class LearnedOptions:
    candidates: int = 16   # refocus times probed over the sweep
    grid: int = 4          # N: N x N patches, each keeps its sharpest candidate
    batch: int = 4         # candidates refocused per network call (memory vs speed)

    def __post_init__(self):
        for name in ("candidates", "grid", "batch"):
            if getattr(self, name) < 1:
                raise UsageError(f"learned-method option {name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class RefocusedStack:
    images: np.ndarray         # (K, H, W, 3) sRGB, the input refocused to each kept time
    times_us: list[int]        # the kept refocus times, ascending
    candidates_us: list[int]   # every time probed


def _sweep(sweep_us: tuple[int, int]) -> tuple[int, int]:
    t0, t1 = int(sweep_us[0]), int(sweep_us[1])
    if t1 <= t0:
        raise UsageError(f"empty sweep interval {sweep_us}")
    return t0, t1


class LearnedAIF:
    """A refocus + merge checkpoint pair, ready for inference on one device."""

    def __init__(self, checkpoints: list[str | Path], device: str = "auto", options: LearnedOptions = LearnedOptions()):
        from nfs_synth.aif.train import load_model, resolve_device

        self.device = resolve_device(device)
        nets = {}
        for path in checkpoints:
            model, cfg = load_model(path, self.device)
            if cfg["stage"] in nets:
                raise UsageError(f"two {cfg['stage']} checkpoints given; need one refocus and one merge")
            nets[cfg["stage"]] = (model, cfg)
        if set(nets) != {"refocus", "merge"}:
            raise UsageError(f"need one refocus and one merge checkpoint, got stages {sorted(nets)}")
        (self.refocus, rcfg), (self.merge, mcfg) = nets["refocus"], nets["merge"]
        if rcfg["modality"] != mcfg["modality"]:
            raise UsageError(f"refocus net is for {rcfg['modality']}, merge net for {mcfg['modality']}")
        self.modality, self.options = rcfg["modality"], options

    @torch.no_grad()
    def run(self, image: np.ndarray, t_input_us: int, sweep_us: tuple[int, int], read_stream,
            spike_step_us: int = 50) -> Reconstruction:
        """All-in-focus image from an sRGB (H, W, 3) image taken at t_input_us during the sweep
        [sweep_us[0], sweep_us[1]] and a stream reader (see the module docstring)."""
        if self.modality == "events":  # read the sweep's events once for both stages
            t0, t1 = _sweep(sweep_us)
            read_stream = window_reader(read_stream(t0, t1 + 1))
        stack = self.refocused_stack(image, t_input_us, sweep_us, read_stream, spike_step_us)
        merged, weights = self.merge_stack(stack.images, stack.times_us, sweep_us, read_stream, spike_step_us)
        return Reconstruction(merged, stack.times_us, stack.images, weights, {"candidates_us": stack.candidates_us})

    @torch.no_grad()
    def refocused_stack(self, image: np.ndarray, t_input_us: int, sweep_us: tuple[int, int], read_stream,
                        spike_step_us: int = 50) -> RefocusedStack:
        """Steps 1-2: the input refocused to every candidate time, the sharpest per patch kept."""
        image = np.asarray(image, np.float32)
        if image.ndim != 3 or image.shape[2] != 3:
            raise UsageError(f"expected an (H, W, 3) image, got {image.shape}")
        t0, t1 = _sweep(sweep_us)
        h, w = image.shape[:2]
        times = np.unique(np.linspace(t0, t1, self.options.candidates).round().astype(np.int64))
        events = read_stream(t0, t1 + 1) if self.modality == "events" else None
        leak = event_leak(net_polarity(events, h, w), t1 - t0, image) if events is not None else None

        def nfs_for(t):  # the refocus net's input for refocusing to time t
            if self.modality == "events":
                if t == t_input_us:  # no events between: an empty stack
                    return np.zeros((NFS_BINS, h, w), np.float32)
                return event_stack(events, t_input_us, int(t), h, w, leak=leak)
            return spike_planes(read_stream, int(t), spike_step_us)

        img_t = torch.from_numpy(image.transpose(2, 0, 1))[None].to(self.device)
        refocused = torch.cat([self._refocus(img_t, [nfs_for(t) for t in times[i:i + self.options.batch]])
                               for i in range(0, len(times), self.options.batch)])
        luma = (refocused * _LUMA.to(refocused.device)).sum(1)
        chosen = sorted({int(torch.argmax(torch.stack([luma[k][patch].var() for k in range(len(times))])))
                         for patch in patch_grid((h, w), self.options.grid)})
        return RefocusedStack(refocused[chosen].permute(0, 2, 3, 1).cpu().numpy(), [int(times[k]) for k in chosen],
                              times.tolist())

    @torch.no_grad()
    def merge_stack(self, stack: np.ndarray, times_us: list[int], sweep_us: tuple[int, int], read_stream,
                    spike_step_us: int = 50) -> tuple[np.ndarray, np.ndarray]:
        """Step 3: NeuroMergeNet on a (K, H, W, 3) sRGB stack whose images show the scene at `times_us`
        (the refocused stack, or any other, e.g. rendered frames for an ablation). Returns (image, weights)."""
        t0, t1 = _sweep(sweep_us)
        k, h, w = stack.shape[:3]
        events = read_stream(t0, t1 + 1) if self.modality == "events" else None
        half_window = max(1, (t1 - t0) // (2 * k))

        def slice_for(t):  # the merge net's input for the stack image at time t
            if self.modality == "events":
                return event_count_slice(events, t, half_window, h, w)
            return tfp_image(spike_planes(read_stream, t, spike_step_us))

        stack_t = torch.from_numpy(np.ascontiguousarray(stack.transpose(0, 3, 1, 2), np.float32))[None].to(self.device)
        nfs = torch.from_numpy(np.stack([slice_for(int(t)) for t in times_us]))[None].to(self.device)
        stack_p, _ = pad_to_multiple(stack_t)
        nfs_p, _ = pad_to_multiple(nfs)
        merged, weights = self.merge(stack_p, nfs_p)
        merged, weights = merged[..., :h, :w].clamp(0, 1), weights[..., :h, :w]  # (rounding of the weighted sum)
        return merged[0].permute(1, 2, 0).cpu().numpy(), weights[0].cpu().numpy()

    def _refocus(self, image: torch.Tensor, nfs: list[np.ndarray]) -> torch.Tensor:
        h, w = image.shape[-2:]
        nfs_t, _ = pad_to_multiple(torch.from_numpy(np.stack(nfs)).to(self.device))
        img_p, _ = pad_to_multiple(image)
        return self.refocus(img_p.expand(len(nfs), -1, -1, -1), nfs_t)[..., :h, :w]


# ---------------------------------------------------------------- scene files and the evaluation registry

# evaluation options (--option KEY=VALUE): the checkpoint pair "REFOCUS.pt;MERGE.pt" per modality, and
# learned_candidates, learned_grid, learned_batch, learned_device (see LearnedOptions)
CHECKPOINT_OPTION = {"events": "checkpoints_ev", "spikes": "checkpoints_sp"}


def window_reader(events: np.ndarray):
    """`read_events(t_start_us, t_end_us)` over an in-memory, time-sorted event array (views, no copies)."""
    t = events["t"]
    return lambda lo, hi: events[np.searchsorted(t, lo):np.searchsorted(t, hi)]


def scene_stream(scene, modality: str):
    """(reader, spike step in us) over an EvalScene's stream, for `LearnedAIF.run`."""
    if modality == "events":
        return window_reader(scene.events), 0
    t_us = scene.h5["spikes/t_us"]
    step = int(t_us[1] - t_us[0]) if len(t_us) > 1 else 1
    return scene.spike_window, step


def run_on_scene(pipeline: LearnedAIF, scene, input_index: int) -> Reconstruction:
    ts = scene.timestamps_us
    reader, step = scene_stream(scene, pipeline.modality)
    return pipeline.run(scene.frame_srgb(input_index), int(ts[input_index]), (int(ts[0]), int(ts[-1])), reader, step)


_LOADED: dict[tuple, LearnedAIF] = {}


def _pipeline(paths: tuple[str, ...], device: str, options: LearnedOptions) -> LearnedAIF:
    key = (paths, device, options)
    if key not in _LOADED:  # one load per evaluation run, not per scene
        _LOADED[key] = LearnedAIF(list(paths), device, options)
    return _LOADED[key]


def _method(modality: str):
    def method(scene, input_index: int, options: dict) -> np.ndarray:
        name = CHECKPOINT_OPTION[modality]
        if not options.get(name):
            raise UsageError(f"learned method needs its two checkpoints: --options "
                             f"{name}=REFOCUS.pt;MERGE.pt (trained with `nfs-synth train`)")
        opts = LearnedOptions(**{k: int(options[f"learned_{k}"]) for k in ("candidates", "grid", "batch")
                                 if f"learned_{k}" in options})
        pipeline = _pipeline(tuple(str(options[name]).split(";")), str(options.get("learned_device", "auto")), opts)
        if pipeline.modality != modality:
            raise UsageError(f"{name} checkpoints are for {pipeline.modality}, not {modality}")
        return run_on_scene(pipeline, scene, input_index).image.astype(np.float32)
    return method


def _register() -> None:
    from nfs_synth.aif.methods import register_method

    for modality, name in (("events", "learned-ev"), ("spikes", "learned-sp")):
        register_method(name, _method(modality), replace=True,
                        options={CHECKPOINT_OPTION[modality], "learned_device",
                                 *(f"learned_{f.name}" for f in fields(LearnedOptions))})


_register()
