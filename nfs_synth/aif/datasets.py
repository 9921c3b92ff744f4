"""torch Datasets over an nfs_synth corpus (the README, "Scene file format") for the two training stages.

- `RefocusDataset`: per sample, a scene, two distinct frames of its sweep (input, target), the stream
  between (events) or around the target (spikes) as the network's representation, one random crop.
- `MergeDataset`: per sample, an input frame, `stack_size` frames spread over the sweep (one per equal
  stratum), each refocused from the input by a trained NeuroRefocusNet (or, with no net, the rendered
  frames themselves: an oracle stack), their neuromorphic slices, and the all-in-focus crop as target.

Only the chunks a sample needs are read: one frame chunk per image, the event time range through the
millisecond index, the spike steps of one window. HDF5 files are opened lazily in each worker process.
A sample is a pure function of (seed, epoch, index), so a resumed run sees the same data it would
have seen without the interruption; call `set_epoch` before each epoch, or give indices that carry
their epoch (`train.EpochSampler`), as persistent loader workers need.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc filter the corpus is written with)
import numpy as np
import torch
from torch.utils.data import Dataset

from nfs_synth.aif.representations import (NFS_BINS, dense_nfs, event_count_slice, event_counts,
                                           event_leak_map, event_leak_scale, event_stack, spike_window_start,
                                           tfp_image)
from nfs_synth.aif.rig_view import check_view
from nfs_synth.aif.sample_sources import CacheSource, RigSource, SceneSource
from nfs_synth.aif.training_cache import cache_files
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


def _require(path: Path, h5: h5py.File, modality: str, view: str = "sensor") -> None:
    rig = ("rgb/captures", "rgb/all_in_focus", "rgb/to_sensor") if view == "rgb" else ()
    for name in ("frames", "timestamps_us", "all_in_focus", GROUPS[modality], *rig):
        if name not in h5:
            stage = f"the {modality} stage" + (" in view 'rgb'" if rig else "")
            raise SceneFileError(f"{path}: no '{name}' in the scene file; {stage} needs it")


def usable_scenes(paths, modality: str, on_error: str = "stop", log=print, view: str = "sensor") -> list[Path]:
    """The scene files that open and hold what the `modality` stage needs in `view`. One that does not
    is named and left out (on_error "skip") or raises SceneFileError ("stop")."""
    if on_error not in ON_ERROR:
        raise UsageError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    good = []
    for path in map(Path, paths):
        try:
            with h5py.File(path, "r") as h5:
                _require(path, h5, modality, check_view(view))
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
    """Shared bookkeeping: scene validation, per-process readers, seeded crops, image reads.

    cache: a training cache (`training_cache`, `nfs-synth prepare`) of these scenes; samples are then
    read from it, identical to those read from the scene files.
    view: "sensor" (the rendered frames, aligned with the neuromorphic sensor) or "rgb" (`rig_view`: a
    hybrid rig's RGB captures, the stream registered into their frame, the ground truth in it)."""

    def __init__(self, scenes, modality: str, crop: int, samples_per_scene: int, seed: int,
                 cache: str | os.PathLike | None = None, view: str = "sensor"):
        if modality not in GROUPS:
            raise UsageError(f"modality must be one of {tuple(GROUPS)}, got {modality!r}")
        if crop <= 0 or crop % 4:
            raise UsageError(f"crop must be a positive multiple of 4, got {crop}")
        if isinstance(scenes, (str, os.PathLike)):      # a corpus folder (its train split) or one scene file
            scenes = corpus_scenes(scenes) if Path(scenes).is_dir() else [scenes]
        self.paths = [Path(p) for p in scenes]
        if not self.paths:
            raise UsageError("no scene files given")
        if check_view(view) == "rgb" and cache is not None:
            raise UsageError("a training cache holds the sensor view; read view \"rgb\" from the scene files")
        self.modality, self.crop, self.samples_per_scene, self.seed = modality, crop, samples_per_scene, seed
        self.view = view
        self.reads = self.paths if cache is None else cache_files(cache, self.paths, modality)
        self._Source = CacheSource if cache is not None else RigSource if view == "rgb" else SceneSource
        self.epoch = 0
        self.timestamps, self.shapes = [], []
        for path, read in zip(self.paths, self.reads):
            with h5py.File(path, "r") as h5:
                _require(path, h5, self.modality, view)
            source = self._Source(read)
            self.timestamps.append(source.timestamps)
            self.shapes.append(source.shape)
            source.close()
            self._validate(path, len(source.timestamps), *source.shape[1:])
        self._sources: dict[int, SceneSource | CacheSource] = {}
        self._pid = os.getpid()

    def _validate(self, path: Path, t: int, h: int, w: int) -> None:
        if t < 2 or min(h, w) < self.crop:
            raise UsageError(f"{path}: {t} images of {h}x{w} in view {self.view!r}; need at least 2 of at "
                             f"least the {self.crop} px crop")

    def __len__(self) -> int:
        return len(self.paths) * self.samples_per_scene

    def __getstate__(self):  # h5py handles do not cross process boundaries
        state = dict(self.__dict__)
        state["_sources"] = {}
        return state

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _source(self, scene: int) -> SceneSource | CacheSource:
        if self._pid != os.getpid():  # forked into a worker: never share the parent's handles
            self._sources, self._pid = {}, os.getpid()
        if scene not in self._sources:
            self._sources[scene] = self._Source(self.reads[scene])
        return self._sources[scene]

    def _sample(self, index: int) -> tuple[int, SceneSource | CacheSource, np.random.Generator, tuple]:
        if index < 0:
            raise IndexError(index)
        # index (epoch + 1) * len + i: sample i of that epoch (`train.EpochSampler`); below len: of set_epoch's
        epoch = self.epoch
        if index >= len(self):
            epoch, index = divmod(index, len(self))
            epoch -= 1
        scene = index // self.samples_per_scene
        rng = np.random.default_rng([self.seed, epoch, index])
        _, h, w = self.shapes[scene]
        y0, x0 = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
        return scene, self._source(scene), rng, (slice(y0, y0 + self.crop), slice(x0, x0 + self.crop))

    def _leak(self, scene: int, src, i: int, image: np.ndarray) -> np.ndarray:
        """The crop's ON-leak rate (`event_leak`) for input frame i, from the sRGB crop (3, C, C)."""
        ts = self.timestamps[scene]
        return event_leak_map(src.leak_line(i), float(ts[-1] - ts[0]), image.transpose(1, 2, 0))

    def _spike_bits(self, src, t_center: int, window: tuple[slice, slice]) -> np.ndarray:
        """The 64 readout steps nearest t_center (`spike_window`) of the crop, uint8 0/1."""
        start = spike_window_start(src.spike_times(), t_center)
        return src.spike_steps(start, start + NFS_BINS, *window)

    def _spike_planes(self, src, t_center: int, window: tuple[slice, slice]) -> np.ndarray:
        return self._spike_bits(src, t_center, window).astype(np.float32)


class RefocusDataset(_SceneDataset):
    """Items: {"image", "nfs", "target"}: (3,C,C), (64,C,C), (3,C,C) float32, images sRGB in [0, 1].

    `compact_item` is the same sample with the 64 planes as int8 event counts plus the leak (or uint8
    spikes): what the loader moves, 4x fewer bytes; `representations.dense_nfs` expands it on the
    training device."""

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return dense_nfs(self.compact_item(index))

    def compact_item(self, index: int) -> dict[str, torch.Tensor]:
        scene, src, rng, window = self._sample(index)
        ts = self.timestamps[scene]
        i, j = (int(k) for k in rng.choice(len(ts), 2, replace=False))
        image = src.frame(i, *window)
        item = {"image": torch.from_numpy(image), "target": torch.from_numpy(src.frame(j, *window))}
        if self.modality == "events":
            events = src.events(min(ts[i], ts[j]), max(ts[i], ts[j]))
            counts = event_counts(events, int(ts[i]), int(ts[j]), self.crop, self.crop, x0=window[1].start,
                                  y0=window[0].start)
            item |= {"nfs": torch.from_numpy(counts),
                     "leak": torch.from_numpy(self._leak(scene, src, i, image)),
                     "leak_scale": torch.tensor(event_leak_scale(int(ts[i]), int(ts[j])))}
        else:
            item["nfs"] = torch.from_numpy(self._spike_bits(src, int(ts[j]), window))
        return item


class MergeDataset(_SceneDataset):
    """Items: {"stack" (N,3,C,C), "nfs" (N,1,C,C), "target" (3,C,C)} with N = stack_size.

    With `refocus_net` the stack is refocused from the input frame (the paper's training input); the
    net runs here, in eval mode on the CPU, once per sample for the whole stack. Without it the stack is
    made of the rendered frames (an oracle stack: faster, isolates the merge stage).
    """

    def __init__(self, scenes, modality: str, crop: int, samples_per_scene: int, seed: int,
                 stack_size: int = 8, refocus_net: torch.nn.Module | None = None,
                 cache: str | os.PathLike | None = None, view: str = "sensor"):
        super().__init__(scenes, modality, crop, samples_per_scene, seed, cache, view)
        if stack_size < 1:
            raise UsageError(f"stack_size must be at least 1, got {stack_size}")
        if refocus_net is not None and getattr(refocus_net, "modality", modality) != modality:
            raise UsageError(f"refocus net was trained on {refocus_net.modality}, the dataset is {modality}")
        self.stack_size = stack_size
        self.refocus_net = refocus_net.cpu().eval() if refocus_net is not None else None

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        scene, src, rng, window = self._sample(index)
        ys, xs = window
        ts = self.timestamps[scene]
        n = min(self.stack_size, len(ts))
        edges = np.linspace(0, len(ts), n + 1).astype(int)
        idx = [int(rng.integers(a, b)) for a, b in zip(edges[:-1], edges[1:])]
        j = int(rng.integers(0, len(ts)))  # the input frame
        half_window = max(1, int((ts[-1] - ts[0]) / (2 * n)))
        image = src.frame(j, *window)
        if self.modality == "events":
            lo, hi = min(ts[idx[0]], ts[j]) - half_window, max(ts[idx[-1]], ts[j]) + half_window
            events = src.events(lo, hi + 1)
            slices = [event_count_slice(events, int(ts[i]), half_window, self.crop, self.crop, xs.start, ys.start)
                      for i in idx]
            leak = self._leak(scene, src, j, image)
            empty = np.zeros((NFS_BINS, self.crop, self.crop), np.float32)
            refocus_nfs = [event_stack(events, int(ts[j]), int(ts[i]), self.crop, self.crop, x0=xs.start,
                                       y0=ys.start, leak=leak) if i != j else empty for i in idx]
        else:
            refocus_nfs = [self._spike_planes(src, int(ts[i]), window) for i in idx]
            slices = [tfp_image(planes) for planes in refocus_nfs]
        stack = self._refocus(src, image, idx, j, refocus_nfs, window)
        return {"stack": stack, "nfs": torch.from_numpy(np.stack(slices)),
                "target": torch.from_numpy(src.all_in_focus(*window))}

    def _refocus(self, src, image, idx, j, refocus_nfs, window) -> torch.Tensor:
        if self.refocus_net is None:
            return torch.from_numpy(np.stack([src.frame(i, *window) for i in idx]))
        with torch.no_grad():
            images = torch.from_numpy(image)[None].expand(len(idx), -1, -1, -1)
            stack = self.refocus_net(images, torch.from_numpy(np.stack(refocus_nfs)))
        if self.modality == "events":  # refocusing to the input's own time is the identity
            stack[[k for k, i in enumerate(idx) if i == j]] = torch.from_numpy(image)
        return stack
