"""The RGB camera of a hybrid rig (issue 16): its own resolution, exposure, Poisson-Gaussian noise and
8-bit sRGB output, beside the neuromorphic sensor behind the same beam splitter.

The scene is rendered at the RGB camera's resolution, `scale` times the neuromorphic sensor's along each
axis and with the same field of view; the neuromorphic sensor's frames are the mean of each scale x scale
block (a pixel integrates the light over its area, so this is the render the sensor would get, not a
resampling). `to_sensor` maps RGB pixel centres to sensor pixel coordinates (x_s = (x_r + 0.5)/s - 0.5).

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


def to_sensor_matrix(scale: int) -> np.ndarray:
    """3x3 homography from RGB pixel coordinates to sensor pixel coordinates (pixel centres at integers)."""
    s = 1.0 / scale
    offset = 0.5 * s - 0.5
    return np.array([[s, 0.0, offset], [0.0, s, offset], [0.0, 0.0, 1.0]])


def capture_count(frames: int, exposure_frames: int) -> int:
    return frames - exposure_frames + 1


class RgbCamera:
    """Fed the sweep's frames at the RGB resolution in order; `feed` returns the captures completed."""

    def __init__(self, cfg: dict, seed: np.random.SeedSequence):
        self.n = int(cfg["exposure_frames"])
        self.full_well = float(cfg["full_well_e"])
        self.read_noise = float(cfg["read_noise_e"])
        self.rng = np.random.Generator(np.random.PCG64(seed))
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


def attrs(cfg: dict, seed: np.random.SeedSequence) -> dict:
    """Every value used, for the scene file's rgb group."""
    return {"scale": int(cfg["scale"]), "exposure_frames": int(cfg["exposure_frames"]),
            "full_well_e": float(cfg["full_well_e"]), "read_noise_e": float(cfg["read_noise_e"]),
            "encoding": "sRGB (IEC 61966-2-1), 8 bits",
            "noise_seed": json.dumps({"entropy": seed.entropy, "spawn_key": list(seed.spawn_key)})}
