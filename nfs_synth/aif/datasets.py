"""torch Datasets over an nfs_synth corpus (the README, "Scene file format") for the two training stages.

- `RefocusDataset`: per sample, a scene, two distinct frames of its sweep (input, target), the stream
  between (events) or around the target (spikes) as the network's representation, one random crop.
- `MergeDataset`: per sample, an input frame, `stack_size` frames spread over the sweep (one per equal
  stratum), each refocused from the input by a trained NeuroRefocusNet (or, with no net, the rendered
  frames themselves: an oracle stack), their neuromorphic slices, and the all-in-focus crop as target.

Only the chunks a sample needs are read: one frame chunk per image, the event time range through the
millisecond index, the spike steps of one window. HDF5 files are opened lazily in each worker process.
A sample is a pure function of (seed, epoch, index), so a resumed run sees the same data it would
have seen without the interruption; call `set_epoch` before each epoch.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc filter the corpus is written with)
import numpy as np
import torch
from torch.utils.data import Dataset

from nfs_synth.color import srgb_encode
from nfs_synth.aif.representations import (NFS_BINS, event_count_slice, event_leak, event_stack, net_polarity,
                                           spike_planes, tfp_image)
from nfs_synth.corpus.manifest import corpus_manifest, scenes_in_split
from nfs_synth.corpus.scene_file import scene_name
from nfs_synth.errors import ON_ERROR, SCENE_FILE_ERRORS, SceneFileError, UsageError

GROUPS = {"events": "events", "spikes": "spikes"}


def corpus_scenes(corpus: str | os.PathLike, split: str = "train") -> list[Path]:
    """Scene files of a split, from the corpus manifest and its shard fragments; without either, every
    scenes/*.h5."""
    corpus = Path(corpus)
    manifest = corpus_manifest(corpus)
    if manifest is not None:
        paths = [corpus / "scenes" / scene_name(s["index"]) for s in scenes_in_split(manifest, split)]
    else:
        paths = sorted((corpus / "scenes").glob("scene_*.h5"))
    if not paths:
        raise FileNotFoundError(f"no complete scene files for split {split!r} under {corpus}")
    return paths


def _require(path: Path, h5: h5py.File, modality: str) -> None:
    for name in ("frames", "timestamps_us", "all_in_focus", GROUPS[modality]):
        if name not in h5:
            raise SceneFileError(f"{path}: no '{name}' in the scene file; the {modality} stage needs it")


def usable_scenes(paths, modality: str, on_error: str = "stop", log=print) -> list[Path]:
    """The scene files that open and hold what the `modality` stage needs. One that does not is named
    and left out (on_error "skip") or raises SceneFileError ("stop")."""
    if on_error not in ON_ERROR:
        raise UsageError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    good = []
    for path in map(Path, paths):
        try:
            with h5py.File(path, "r") as h5:
                _require(path, h5, modality)
        except SCENE_FILE_ERRORS as err:
            message = str(err) if isinstance(err, SceneFileError) else f"{path}: {err}"
            if on_error == "stop":
                raise SceneFileError(message) from None
            log(f"{message}; skipped")
            continue
        good.append(path)
    if not good:
        raise SceneFileError(f"none of the {len(paths)} scene files can be used")
    return good


class _SceneDataset(Dataset):
    """Shared bookkeeping: scene validation, per-process file handles, seeded crops, image reads."""

    def __init__(self, scenes, modality: str, crop: int, samples_per_scene: int, seed: int):
        if modality not in GROUPS:
            raise UsageError(f"modality must be one of {tuple(GROUPS)}, got {modality!r}")
        if crop <= 0 or crop % 4:
            raise UsageError(f"crop must be a positive multiple of 4, got {crop}")
        if isinstance(scenes, (str, os.PathLike)):      # a corpus folder (its train split) or one scene file
            scenes = corpus_scenes(scenes) if Path(scenes).is_dir() else [scenes]
        self.paths = [Path(p) for p in scenes]
        if not self.paths:
            raise UsageError("no scene files given")
        self.modality, self.crop, self.samples_per_scene, self.seed = modality, crop, samples_per_scene, seed
        self.epoch = 0
        self.timestamps = []
        for path in self.paths:
            with h5py.File(path, "r") as h5:
                self._validate(path, h5)
                self.timestamps.append(h5["timestamps_us"][:].astype(np.int64))
        self._files: dict[int, h5py.File] = {}
        self._sweep_polarity: dict[int, np.ndarray] = {}
        self._pid = os.getpid()

    def _validate(self, path: Path, h5: h5py.File) -> None:
        _require(path, h5, self.modality)
        t, h, w, _ = h5["frames"].shape
        if t < 2 or min(h, w) < self.crop:
            raise UsageError(f"{path}: {t} frames of {h}x{w}; need at least 2 frames of at least the "
                             f"{self.crop} px crop")

    def __len__(self) -> int:
        return len(self.paths) * self.samples_per_scene

    def __getstate__(self):  # h5py handles do not cross process boundaries
        state = dict(self.__dict__)
        state["_files"] = {}
        return state

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _h5(self, scene: int) -> h5py.File:
        if self._pid != os.getpid():  # forked into a worker: never share the parent's handles
            self._files, self._pid = {}, os.getpid()
        if scene not in self._files:
            self._files[scene] = h5py.File(self.paths[scene], "r")
        return self._files[scene]

    def _sample(self, index: int) -> tuple[int, h5py.File, np.random.Generator, int, int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        scene = index // self.samples_per_scene
        rng = np.random.default_rng([self.seed, self.epoch, index])
        h5 = self._h5(scene)
        _, h, w, _ = h5["frames"].shape
        y0, x0 = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
        return scene, h5, rng, y0, x0

    def _window(self, y0: int, x0: int) -> tuple[slice, slice]:
        return slice(y0, y0 + self.crop), slice(x0, x0 + self.crop)

    def _frame(self, h5: h5py.File, i: int, y0: int, x0: int) -> np.ndarray:
        ys, xs = self._window(y0, x0)
        return srgb_encode(h5["frames"][i, ys, xs]).transpose(2, 0, 1)

    def _events(self, h5: h5py.File, t0: int, t1: int) -> np.ndarray:
        from nfs_synth.corpus.events_io import read_events
        return read_events(h5, t_start_us=int(t0), t_end_us=int(t1) + 1)

    def _leak(self, scene: int, h5: h5py.File, i: int, y0: int, x0: int) -> np.ndarray:
        """The crop's ON-leak rate (`event_leak`) for input frame i; the sweep's net polarity is read
        once per scene and process."""
        ts = self.timestamps[scene]
        _, h, w, _ = h5["frames"].shape
        if scene not in self._sweep_polarity:
            self._sweep_polarity[scene] = net_polarity(self._events(h5, ts[0], ts[-1]), h, w)
        leak = event_leak(self._sweep_polarity[scene], float(ts[-1] - ts[0]), srgb_encode(h5["frames"][i]))
        return leak[self._window(y0, x0)]

    def _spike_planes(self, h5: h5py.File, t_center: int, y0: int, x0: int) -> np.ndarray:
        from nfs_synth.corpus.spikes_io import read_spikes
        t_us = h5["spikes/t_us"]
        step = int(t_us[1] - t_us[0]) if len(t_us) > 1 else 1
        return spike_planes(lambda lo, hi: read_spikes(h5, lo, hi), t_center, step, self._window(y0, x0))


class RefocusDataset(_SceneDataset):
    """Items: {"image", "nfs", "target"}: (3,C,C), (64,C,C), (3,C,C) float32, images sRGB in [0, 1]."""

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        scene, h5, rng, y0, x0 = self._sample(index)
        ts = self.timestamps[scene]
        i, j = (int(k) for k in rng.choice(len(ts), 2, replace=False))
        if self.modality == "events":
            events = self._events(h5, min(ts[i], ts[j]), max(ts[i], ts[j]))
            nfs = event_stack(events, int(ts[i]), int(ts[j]), self.crop, self.crop, x0=x0, y0=y0,
                              leak=self._leak(scene, h5, i, y0, x0))
        else:
            nfs = self._spike_planes(h5, int(ts[j]), y0, x0)
        return {"image": torch.from_numpy(self._frame(h5, i, y0, x0)), "nfs": torch.from_numpy(nfs),
                "target": torch.from_numpy(self._frame(h5, j, y0, x0))}


class MergeDataset(_SceneDataset):
    """Items: {"stack" (N,3,C,C), "nfs" (N,1,C,C), "target" (3,C,C)} with N = stack_size.

    With `refocus_net` the stack is refocused from the input frame (the paper's training input); the
    net runs here, in eval mode on the CPU, once per sample for the whole stack. Without it the stack is
    made of the rendered frames (an oracle stack: faster, isolates the merge stage).
    """

    def __init__(self, scenes, modality: str, crop: int, samples_per_scene: int, seed: int,
                 stack_size: int = 8, refocus_net: torch.nn.Module | None = None):
        super().__init__(scenes, modality, crop, samples_per_scene, seed)
        if stack_size < 1:
            raise UsageError(f"stack_size must be at least 1, got {stack_size}")
        if refocus_net is not None and getattr(refocus_net, "modality", modality) != modality:
            raise UsageError(f"refocus net was trained on {refocus_net.modality}, the dataset is {modality}")
        self.stack_size = stack_size
        self.refocus_net = refocus_net.cpu().eval() if refocus_net is not None else None

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        scene, h5, rng, y0, x0 = self._sample(index)
        ts = self.timestamps[scene]
        n = min(self.stack_size, len(ts))
        edges = np.linspace(0, len(ts), n + 1).astype(int)
        idx = [int(rng.integers(a, b)) for a, b in zip(edges[:-1], edges[1:])]
        j = int(rng.integers(0, len(ts)))  # the input frame
        half_window = max(1, int((ts[-1] - ts[0]) / (2 * n)))
        image = self._frame(h5, j, y0, x0)
        if self.modality == "events":
            lo, hi = min(ts[idx[0]], ts[j]) - half_window, max(ts[idx[-1]], ts[j]) + half_window
            events = self._events(h5, lo, hi)
            slices = [event_count_slice(events, int(ts[i]), half_window, self.crop, self.crop, x0, y0)
                      for i in idx]
            leak = self._leak(scene, h5, j, y0, x0)
            empty = np.zeros((NFS_BINS, self.crop, self.crop), np.float32)
            refocus_nfs = [event_stack(events, int(ts[j]), int(ts[i]), self.crop, self.crop, x0=x0, y0=y0,
                                       leak=leak) if i != j else empty for i in idx]
        else:
            refocus_nfs = [self._spike_planes(h5, int(ts[i]), y0, x0) for i in idx]
            slices = [tfp_image(planes) for planes in refocus_nfs]
        stack = self._refocus(h5, image, idx, j, refocus_nfs, y0, x0)
        ys, xs = self._window(y0, x0)
        target = srgb_encode(h5["all_in_focus"][ys, xs]).transpose(2, 0, 1)
        return {"stack": stack, "nfs": torch.from_numpy(np.stack(slices)), "target": torch.from_numpy(target)}

    def _refocus(self, h5, image, idx, j, refocus_nfs, y0, x0) -> torch.Tensor:
        if self.refocus_net is None:
            return torch.from_numpy(np.stack([self._frame(h5, i, y0, x0) for i in idx]))
        with torch.no_grad():
            images = torch.from_numpy(image)[None].expand(len(idx), -1, -1, -1)
            stack = self.refocus_net(images, torch.from_numpy(np.stack(refocus_nfs)))
        if self.modality == "events":  # refocusing to the input's own time is the identity
            stack[[k for k, i in enumerate(idx) if i == j]] = torch.from_numpy(image)
        return stack
