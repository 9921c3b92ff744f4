"""A scene as a hybrid rig gives it to a net (issue 16, item 5): view "rgb".

A real rig hands over an 8-bit RGB capture, an event or spike stream from the other camera behind the
beam splitter, and a calibration between the two. The nets and methods then work in the RGB camera's
frame, where the ground truth (`rgb/all_in_focus`) is: each RGB pixel reads the neuromorphic pixel
nearest to where `rgb/to_sensor` maps its centre (at scale 2 with no misalignment, each sensor pixel
feeds its 2 x 2 block); an RGB pixel that maps past the sensor's edge reads the edge pixel.

Events are registered by copying each one to every RGB pixel that reads its pixel, in time order, so
whatever consumes an event list (counts, stacks, the leak estimate) works unchanged at the RGB camera's
resolution; spike bits are gathered. The calibration used is the stored homography, exact: a real
rig's calibration error is not modelled.

View "sensor" (the default everywhere) is the idealised pair: `frames` and `all_in_focus`, rendered at
the neuromorphic sensor's pixels and aligned with them.
"""
from __future__ import annotations

import h5py
import numpy as np

from nfs_synth.errors import SceneFileError, UsageError
from nfs_synth.sensors.spikes import SpikeStream

VIEWS = ("sensor", "rgb")


def check_view(view: str) -> str:
    if view not in VIEWS:
        raise UsageError(f"view must be one of {VIEWS}, got {view!r}")
    return view


def capture_times(timestamps_us: np.ndarray, exposure_frames: int) -> np.ndarray:
    """Time of each capture: the mean time of the `exposure_frames` sweep frames it integrates."""
    ts = np.asarray(timestamps_us, np.int64)
    cumulative = np.concatenate([[0], np.cumsum(ts)])
    n = int(exposure_frames)
    return np.rint((cumulative[n:] - cumulative[:-n]) / n).astype(np.int64)


class Registration:
    """Which neuromorphic pixel each RGB pixel reads, and the inverse (the RGB pixels of each sensor pixel)."""

    def __init__(self, to_sensor: np.ndarray, rgb_shape: tuple[int, int], sensor_shape: tuple[int, int]):
        (rh, rw), (sh, sw) = rgb_shape, sensor_shape
        gy, gx = np.mgrid[0:rh, 0:rw]
        p = np.asarray(to_sensor, np.float64) @ np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)])
        self.sx = np.clip(np.rint(p[0] / p[2]), 0, sw - 1).astype(np.intp).reshape(rh, rw)
        self.sy = np.clip(np.rint(p[1] / p[2]), 0, sh - 1).astype(np.intp).reshape(rh, rw)
        self.rgb_shape, self.sensor_shape = (rh, rw), (sh, sw)
        sensor_of = (self.sy * sw + self.sx).ravel()
        self._readers = np.argsort(sensor_of, kind="stable")             # RGB pixels grouped by sensor pixel
        self._count = np.bincount(sensor_of, minlength=sh * sw)
        self._first = np.concatenate([[0], np.cumsum(self._count)[:-1]])

    def image(self, array: np.ndarray) -> np.ndarray:
        """(..., H, W) on the sensor's pixels -> (..., sH, sW) on the RGB camera's."""
        return array[..., self.sy, self.sx]

    def events(self, events: np.ndarray) -> np.ndarray:
        """Each event copied to every RGB pixel that reads its pixel; still sorted by time."""
        pixel = events["y"].astype(np.intp) * self.sensor_shape[1] + events["x"]
        copies = self._count[pixel]
        source = np.repeat(np.arange(events.size), copies)
        rank = np.arange(source.size) - np.repeat(np.cumsum(copies) - copies, copies)
        rgb_pixel = self._readers[self._first[pixel][source] + rank]
        out = events[source]
        out["y"], out["x"] = np.divmod(rgb_pixel, self.rgb_shape[1])
        return out

    def spikes(self, stream: SpikeStream) -> SpikeStream:
        bits = self.image(stream.unpack())
        return SpikeStream(np.packbits(bits, axis=2, bitorder="little"), stream.t_us, *self.rgb_shape)

    def crop(self, ys: slice, xs: slice) -> tuple[slice, slice, np.ndarray, np.ndarray]:
        """For an RGB-frame crop: the sensor window it reads (rows, columns) and, per crop pixel, the
        row and column in that window."""
        sy, sx = self.sy[ys, xs], self.sx[ys, xs]
        y0, x0 = int(sy.min()), int(sx.min())
        return slice(y0, int(sy.max()) + 1), slice(x0, int(sx.max()) + 1), sy - y0, sx - x0


class RigFile:
    """The rgb group of an open scene file: captures, their times and the registration."""

    def __init__(self, h5: h5py.File, path):
        if "rgb/captures" not in h5:
            raise SceneFileError(f"{path}: no rgb/captures: the scene was made without `rgb_camera.enabled`, "
                                 "so it has no view \"rgb\"; use view \"sensor\"")
        self.captures = h5["rgb/captures"]
        n = int(h5["rgb"].attrs["exposure_frames"])
        self.times = capture_times(h5["timestamps_us"][:], n)
        if len(self.times) != self.captures.shape[0]:
            raise SceneFileError(f"{path}: {self.captures.shape[0]} RGB captures for {len(self.times)} exposures "
                                 f"of {n} frames")
        self.registration = Registration(h5["rgb/to_sensor"][:], self.captures.shape[1:3], h5["frames"].shape[1:3])
