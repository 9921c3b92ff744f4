"""Where a training sample's pixels come from: a corpus scene file, or its training-cache file.

Both readers answer the same questions (a frame crop, the all-in-focus crop, the events of a time
range, the leak line of an input frame, a crop of spike steps) with bit-identical arrays, so the
datasets build identical samples from either. The scene file is compressed and holds only what the
simulators wrote, so its reader decodes whole chunks and fits each input frame's leak line on the
whole frame; the cache (`training_cache`) stores the same arrays uncompressed with a checksum per
chunk, and the leak lines precomputed. `RigSource` reads a scene file in view "rgb" (`rig_view`):
what a hybrid rig gives a net.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc filter the corpus is written with)
import numpy as np

from nfs_synth.aif.representations import event_leak_line, net_polarity
from nfs_synth.aif.rig_view import RigFile
from nfs_synth.color import srgb_encode, srgb_encode_half
from nfs_synth.corpus.events_io import EventWindows
from nfs_synth.errors import CacheError, SceneFileError


def _encode(linear: np.ndarray) -> np.ndarray:
    """sRGB-encoded float32: through the float16 table for the corpus' float16 frames."""
    return srgb_encode_half(linear) if linear.dtype == np.float16 else srgb_encode(linear)


class _Reader:
    """Reads of one HDF5 file; an unreadable chunk (truncated file, failed checksum) is an error
    naming the file and the dataset."""

    error = SceneFileError

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.h5 = h5py.File(self.path, "r")
        except OSError as err:
            raise self.error(f"{self.path}: cannot open: {err}") from None
        self._datasets: dict[str, h5py.Dataset] = {}
        self._windows: EventWindows | None = None
        self.timestamps = self.h5["timestamps_us"][:].astype(np.int64)
        self.shape = self.h5["frames"].shape[:3]

    def _read(self, name: str, key):
        try:
            if name not in self._datasets:
                self._datasets[name] = self.h5[name]
            return self._datasets[name][key]
        except (OSError, KeyError, ValueError) as err:
            raise self.error(f"{self.path}: cannot read {name}: {err}") from None

    def frame(self, i: int, ys: slice, xs: slice) -> np.ndarray:
        """Frame i's crop, sRGB-encoded, (3, C, C) float32."""
        return _encode(self._read("frames", (i, ys, xs))).transpose(2, 0, 1)

    def all_in_focus(self, ys: slice, xs: slice) -> np.ndarray:
        return _encode(self._read("all_in_focus", (ys, xs))).transpose(2, 0, 1)

    def events(self, t_start_us: int, t_end_us: int) -> np.ndarray:
        """Events with t_start_us <= t < t_end_us."""
        try:
            if self._windows is None:
                self._windows = EventWindows(self.h5)
            return self._windows.read(int(t_start_us), int(t_end_us))
        except (OSError, KeyError) as err:
            raise self.error(f"{self.path}: cannot read events: {err}") from None

    def spike_times(self) -> np.ndarray:
        if not hasattr(self, "_spike_t"):
            self._spike_t = self._read("spikes/t_us", slice(None)).astype(np.int64)
        return self._spike_t

    def spike_steps(self, start: int, stop: int, ys: slice, xs: slice) -> np.ndarray:
        """Readout steps [start, stop) of the crop as uint8 0/1, (n, C, C); unpacks only the bytes
        that hold the crop's columns."""
        b0, b1 = xs.start // 8, -(-xs.stop // 8)
        packed = self._read("spikes/packed", (slice(start, stop), ys, slice(b0, b1)))
        bits = np.unpackbits(packed, axis=2, bitorder="little")
        return np.ascontiguousarray(bits[:, :, xs.start - 8 * b0:xs.stop - 8 * b0])

    def close(self) -> None:
        self.h5.close()


class SceneSource(_Reader):
    """A corpus scene file. The sweep's net polarity, which every leak line needs, is read once."""

    def leak_line(self, i: int) -> np.ndarray:
        if not hasattr(self, "_sweep_polarity"):
            _, h, w = self.shape
            self._sweep_polarity = net_polarity(self.events(self.timestamps[0], self.timestamps[-1] + 1), h, w)
        return event_leak_line(self._sweep_polarity, self._whole_image(i))

    def _whole_image(self, i: int) -> np.ndarray:
        return _encode(self._read("frames", i))


class RigSource(SceneSource):
    """A scene file as a hybrid rig gives it (`rig_view`, view "rgb"): the RGB captures as input and
    target images, the ground truth in the RGB camera's frame, the stream registered into that frame;
    its times are the captures' (`rig_view.capture_times`)."""

    def __init__(self, path: Path):
        super().__init__(path)
        try:
            self.rig = RigFile(self.h5, self.path)
        except SceneFileError:
            self.close()
            raise
        self.timestamps, self.shape = self.rig.times, self.rig.captures.shape[:3]

    def frame(self, i: int, ys: slice, xs: slice) -> np.ndarray:
        return self._whole_image(i, ys, xs).transpose(2, 0, 1)

    def _whole_image(self, i: int, ys: slice = slice(None), xs: slice = slice(None)) -> np.ndarray:
        return self._read("rgb/captures", (i, ys, xs)).astype(np.float32) / np.float32(255)

    def all_in_focus(self, ys: slice, xs: slice) -> np.ndarray:
        return _encode(self._read("rgb/all_in_focus", (ys, xs))).transpose(2, 0, 1)

    def events(self, t_start_us: int, t_end_us: int) -> np.ndarray:
        return self.rig.registration.events(super().events(t_start_us, t_end_us))

    def spike_steps(self, start: int, stop: int, ys: slice, xs: slice) -> np.ndarray:
        rows, columns, y, x = self.rig.registration.crop(ys, xs)
        return np.ascontiguousarray(super().spike_steps(start, stop, rows, columns)[:, y, x])


class CacheSource(_Reader):
    """A training-cache file (`training_cache.prepare_scene`): the leak lines are stored."""

    error = CacheError

    def leak_line(self, i: int) -> np.ndarray:
        return self._read("leak_line", i)
