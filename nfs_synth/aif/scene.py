"""``EvalScene``: lazy read access to one scene file for the all-in-focus methods and the evaluation.

Every reader is opened on first use and cached, so a method that needs only the input frame never
reads the event or spike streams.  Images come out linear (as stored) or sRGB-encoded (``*_srgb``).
``RigEvalScene`` is the same scene as a hybrid rig gives it (view "rgb", `rig_view`).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from nfs_synth.aif.rig_view import RigFile, check_view
from nfs_synth.corpus.scene_file import SceneReader
from nfs_synth.errors import SceneFileError
from nfs_synth.color import srgb_decode, srgb_encode
from nfs_synth.aif.streams import EventStack, SpikeStack


class EvalScene:
    def __init__(self, path: str | Path, index: int | None = None, split: str | None = None):
        self.path = Path(path)
        self.index, self.split = index, split
        self._reader = SceneReader(self.path)  # raises SceneFileError for a missing / corrupt file
        self._stacks: dict = {}  # (kind, resolution) -> EventStack / SpikeStack

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> "EvalScene":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def h5(self):
        """The open h5py.File, for methods that need a dataset this class does not wrap."""
        return self._reader.h5

    @property
    def size(self) -> tuple[int, int]:
        return self._reader.size

    @property
    def n_frames(self) -> int:
        return self._reader.num_frames

    @cached_property
    def timestamps_us(self) -> np.ndarray:
        return self._reader.timestamps_us

    @cached_property
    def focus_distance_m(self) -> np.ndarray:
        return self._reader.focus_distance_m

    @cached_property
    def depth_m(self) -> np.ndarray:
        """Planar depth (H, W) of the all-in-focus render; 1e10 where no surface."""
        return self._reader.depth_m

    @cached_property
    def plan(self) -> dict:
        """The scene plan (objects, camera, focus schedule) the scene was rendered from."""
        return self._reader.plan

    def frame(self, i: int) -> np.ndarray:
        """Linear RGB (H, W, 3) float32 of frame ``i``."""
        if not -self.n_frames <= i < self.n_frames:
            raise IndexError(f"{self.path.name}: frame {i} of {self.n_frames}")
        return self._reader.frame(i)

    def frame_srgb(self, i: int) -> np.ndarray:
        return srgb_encode(self.frame(i))

    @cached_property
    def frames_srgb(self) -> np.ndarray:
        """All frames, sRGB (T, H, W, 3) float32 (the rendered image focal stack)."""
        return np.stack([srgb_encode(f) for f in self._reader.iter_frames()])

    @cached_property
    def all_in_focus(self) -> np.ndarray:
        return self._reader.all_in_focus.astype(np.float32)

    @cached_property
    def ground_truth_srgb(self) -> np.ndarray:
        return srgb_encode(self.all_in_focus)

    def _require(self, group: str) -> None:
        if group not in self.h5:
            raise SceneFileError(f"{self.path}: no {group} stored (was the sensor disabled in the recipe?)")

    @cached_property
    def events(self) -> np.ndarray:
        """Structured array t (us), x, y, p (1 = ON) of the whole sweep."""
        from nfs_synth.corpus.events_io import read_events

        self._require("events")
        return read_events(self.h5)

    @cached_property
    def event_attrs(self) -> dict:
        self._require("events")
        return dict(self.h5["events"].attrs)

    def event_stack(self, subdivisions: int = 2) -> EventStack:
        """Events counted on the frame times, each frame interval split into ``subdivisions``."""
        key = ("events", subdivisions)
        if key not in self._stacks:
            t = self.timestamps_us.astype(np.float64)
            fine = np.interp(np.arange((len(t) - 1) * subdivisions + 1) / subdivisions, np.arange(len(t)), t)
            self._stacks[key] = EventStack.from_events(self.events, self.size, np.rint(fine).astype(np.int64))
        return self._stacks[key]

    @cached_property
    def spikes(self):
        """The whole ``SpikeStream`` (packed bits) of the neuromorphic sensor."""
        return self.spike_window()

    def spike_window(self, t_start_us: int | None = None, t_end_us: int | None = None):
        """The ``SpikeStream`` of the steps with t_start_us <= t < t_end_us, in this view's pixels."""
        from nfs_synth.corpus.spikes_io import read_spikes

        self._require("spikes")
        return read_spikes(self.h5, t_start_us, t_end_us)

    def _spike_bits(self, stream, start: int, stop: int) -> np.ndarray:
        return stream.unpack(start, stop)

    def spike_stack(self, cells_per_frame: int = 4) -> SpikeStack:
        """Spike counts on a grid of about ``cells_per_frame`` cells per frame interval."""
        key = ("spikes", cells_per_frame)
        if key not in self._stacks:
            stream = self.spikes
            steps_per_frame = len(stream) / max(self.n_frames - 1, 1)
            stride = max(1, int(steps_per_frame // cells_per_frame))
            chunk = max(stride, (1 << 22) // max(stream.packed[0].size * 8, 1) // stride * stride)
            chunks = (self._spike_bits(stream, i, i + chunk) for i in range(0, len(stream), chunk))
            self._stacks[key] = SpikeStack.from_chunks(chunks, stream.t_us, stride)
        return self._stacks[key]


class RigEvalScene(EvalScene):
    """A scene as a hybrid rig gives it (`rig_view`, view "rgb"): its images are the 8-bit RGB captures
    (at their capture times), the ground truth is `rgb/all_in_focus`, and the streams are registered
    into the RGB camera's frame. ``depth_m`` and ``focus_distance_m`` stay the sensor's."""

    def __init__(self, path: str | Path, index: int | None = None, split: str | None = None):
        super().__init__(path, index, split)
        try:
            self.rig = RigFile(self.h5, self.path)
        except SceneFileError:
            self.close()
            raise

    @property
    def size(self) -> tuple[int, int]:
        return self.rig.registration.rgb_shape

    @property
    def n_frames(self) -> int:
        return len(self.rig.times)

    @cached_property
    def timestamps_us(self) -> np.ndarray:
        return self.rig.times

    def frame_srgb(self, i: int) -> np.ndarray:
        if not -self.n_frames <= i < self.n_frames:
            raise IndexError(f"{self.path.name}: capture {i} of {self.n_frames}")
        return self.rig.captures[i].astype(np.float32) / np.float32(255)

    def frame(self, i: int) -> np.ndarray:
        return srgb_decode(self.frame_srgb(i))

    @cached_property
    def frames_srgb(self) -> np.ndarray:
        return self.rig.captures[:].astype(np.float32) / np.float32(255)

    @cached_property
    def all_in_focus(self) -> np.ndarray:
        return self.h5["rgb/all_in_focus"][:].astype(np.float32)

    @cached_property
    def events(self) -> np.ndarray:
        return self.rig.registration.events(super().events)

    def spike_window(self, t_start_us: int | None = None, t_end_us: int | None = None):
        return self.rig.registration.spikes(super().spike_window(t_start_us, t_end_us))

    @cached_property
    def spikes(self):
        return super().spike_window()   # registered chunk by chunk in spike_stack

    def _spike_bits(self, stream, start: int, stop: int) -> np.ndarray:
        return self.rig.registration.image(stream.unpack(start, stop))


def open_eval_scene(path: str | Path, index: int | None = None, split: str | None = None,
                    view: str = "sensor") -> EvalScene:
    """The scene in `view` ("sensor" or "rgb", `rig_view`)."""
    return RigEvalScene(path, index, split) if check_view(view) == "rgb" else EvalScene(path, index, split)
