"""The RGB camera of a hybrid rig (issue 16): its own resolution, exposure, Poisson-Gaussian noise and
8-bit sRGB output, beside the neuromorphic sensor behind the same beam splitter.

The scene is rendered at the RGB camera's resolution, `scale` times the neuromorphic sensor's along each
axis and with the same field of view; the neuromorphic sensor's frames are the mean of each scale x scale
block (a pixel integrates the light over its area, so this is the render the sensor would get, not a
resampling). `to_sensor` maps RGB pixel centres to sensor pixel coordinates (x_s = (x_r + 0.5)/s - 0.5).

A beam splitter's misalignment (shift, rotation, scale, drawn per scene) is a homography for every depth,
as it moves no centre of projection: the sensor's pixels then integrate scale x scale points of the RGB
render, each mapped through it and read bilinearly (the render is `scale` times finer than the sensor,
so the read adds a blur of at most half an RGB pixel, against a sensor pixel of `scale` of them).

Capture i integrates sweep frames i .. i+n-1 (n = `exposure_frames`, an exposure of n frame intervals, so
it carries the focus change of that interval). The signal is scaled so that full white (linear 1.0) gives
`full_well_e` electrons whatever the exposure (auto-exposure); electrons are Poisson, read noise is
Gaussian with `read_noise_e` electrons std, the pixel clips at the full well and at 0, and the result is
sRGB-encoded to 8 bits. `full_well_e = 0` switches the noise off (the mean signal, quantised).
"""
from __future__ import annotations

import json

import numpy as np

from nfs_synth.color import srgb_encode


def bin_to_sensor(image: np.ndarray, scale: int, reduce=np.mean) -> np.ndarray:
    """(s*H, s*W, ...) -> (H, W, ...): each sensor pixel from its s x s block of RGB pixels."""
    if scale == 1:
        return image
    h, w = image.shape[0] // scale, image.shape[1] // scale
    blocks = image.reshape(h, scale, w, scale, *image.shape[2:])
    return reduce(blocks, axis=(1, 3)).astype(image.dtype, copy=False)


def to_sensor_matrix(scale: int, misalignment: np.ndarray | None = None) -> np.ndarray:
    """3x3 homography from RGB pixel coordinates to sensor pixel coordinates (pixel centres at integers):
    the pitch change, then the beam splitter's `misalignment` in sensor pixels (identity when None)."""
    s = 1.0 / scale
    offset = 0.5 * s - 0.5
    pitch = np.array([[s, 0.0, offset], [0.0, s, offset], [0.0, 0.0, 1.0]])
    return pitch if misalignment is None else misalignment @ pitch


def draw_misalignment(cfg: dict, rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, dict]:
    """A beam splitter's misalignment as a similarity about the sensor's centre: shift, rotation and
    scale drawn uniformly within +-the recipe's ranges. Returns the 3x3 matrix (sensor pixels, RGB-aligned
    -> sensor) and the values drawn."""
    shift = rng.uniform(-1.0, 1.0, 2) * cfg["misalign_shift_px"]
    angle = np.deg2rad(rng.uniform(-1.0, 1.0) * cfg["misalign_rotation_deg"])
    zoom = 1.0 + rng.uniform(-1.0, 1.0) * cfg["misalign_scale"]
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    c, s = zoom * np.cos(angle), zoom * np.sin(angle)
    linear = np.array([[c, -s], [s, c]])
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = np.array([cx, cy]) - linear @ np.array([cx, cy]) + shift
    drawn = {"misalign_shift_x_px": float(shift[0]), "misalign_shift_y_px": float(shift[1]),
             "misalign_rotation_deg": float(np.rad2deg(angle)), "misalign_scale": float(zoom)}
    return matrix, drawn


class SensorView:
    """The neuromorphic sensor's (height, width) view of an RGB-camera render: each sensor pixel the mean
    of scale x scale points over its area, mapped into the render by `to_sensor`'s inverse and read
    bilinearly (edge pixels repeat where the sensor sees past the render). The points are mapped once,
    here, and read for every frame. Without misalignment they are the render's pixel centres: the block
    mean exactly."""

    def __init__(self, to_sensor: np.ndarray, height: int, width: int, scale: int):
        sub = (np.arange(scale) + 0.5) / scale - 0.5
        ys = (np.arange(height)[:, None] + sub[None, :]).reshape(-1)       # (height * scale,)
        xs = (np.arange(width)[:, None] + sub[None, :]).reshape(-1)
        gx, gy = np.meshgrid(xs, ys)
        pts = np.linalg.inv(to_sensor) @ np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)])
        coords = np.stack([pts[1] / pts[2], pts[0] / pts[2]])
        self.coords = np.where(np.abs(coords - np.rint(coords)) < 1e-9, np.rint(coords), coords)  # exact on centres
        self.shape = (height, scale, width, scale)

    def __call__(self, image: np.ndarray, nearest_min: bool = False) -> np.ndarray:
        """With `nearest_min` (depth) the points are read nearest and the smallest kept."""
        from scipy.ndimage import map_coordinates

        channels = image[..., None] if image.ndim == 2 else image
        order = 0 if nearest_min else 1
        samples = np.stack([map_coordinates(channels[..., c], self.coords, order=order, mode="nearest")
                            for c in range(channels.shape[-1])], axis=-1)
        samples = samples.reshape(*self.shape, -1)
        out = samples.min(axis=(1, 3)) if nearest_min else samples.mean(axis=(1, 3))
        return (out[..., 0] if image.ndim == 2 else out).astype(image.dtype, copy=False)


def capture_count(frames: int, exposure_frames: int) -> int:
    return frames - exposure_frames + 1


class RgbCamera:
    """Fed the sweep's frames at the RGB resolution in order; `feed` returns the captures completed."""

    def __init__(self, cfg: dict, rng: np.random.Generator):
        self.n = int(cfg["exposure_frames"])
        self.full_well = float(cfg["full_well_e"])
        self.read_noise = float(cfg["read_noise_e"])
        self.rng = rng
        self._window: list[np.ndarray] = []

    def feed(self, frame: np.ndarray) -> list[np.ndarray]:
        self._window.append(np.asarray(frame, np.float32))
        if len(self._window) < self.n:
            return []
        signal = np.mean(self._window, axis=0) if self.n > 1 else self._window[0]
        self._window.pop(0)
        return [self.capture(signal)]

    def capture(self, signal: np.ndarray) -> np.ndarray:
        """One uint8 sRGB capture of mean linear radiance `signal`."""
        linear = np.clip(signal, 0.0, 1.0)
        if self.full_well > 0:
            electrons = self.rng.poisson(linear * self.full_well).astype(np.float32)
            if self.read_noise > 0:
                electrons += self.rng.normal(0.0, self.read_noise, electrons.shape).astype(np.float32)
            linear = np.clip(electrons / self.full_well, 0.0, 1.0)
        return np.rint(srgb_encode(linear) * 255.0).astype(np.uint8)


def streams(seed: np.random.SeedSequence) -> tuple[np.random.Generator, np.random.Generator]:
    """(noise, misalignment) generators: two children of the scene's RGB stream, so that changing the
    misalignment ranges leaves the noise as it was."""
    noise, misalignment = seed.spawn(2)
    return np.random.Generator(np.random.PCG64(noise)), np.random.Generator(np.random.PCG64(misalignment))


def attrs(cfg: dict, seed: np.random.SeedSequence, drawn: dict) -> dict:
    """Every value used, for the scene file's rgb group."""
    return {"scale": int(cfg["scale"]), "exposure_frames": int(cfg["exposure_frames"]),
            "full_well_e": float(cfg["full_well_e"]), "read_noise_e": float(cfg["read_noise_e"]),
            "encoding": "sRGB (IEC 61966-2-1), 8 bits",
            "seed": json.dumps({"entropy": seed.entropy, "spawn_key": list(seed.spawn_key),
                                "children": "0 noise, 1 misalignment"}),
            **{f"{k}_range": float(cfg[k]) for k in MISALIGNMENT_KEYS}, **drawn}


MISALIGNMENT_KEYS = ("misalign_shift_px", "misalign_rotation_deg", "misalign_scale")
