"""Thin-lens facts shared by the planner, the renderers and the reconstruction code.

Cycles models depth of field with a focus *plane* and a pinhole projection: a point at planar depth z
seen with focus distance S spreads into a disk of diameter A * f * |1/z - 1/S| on the sensor
(A = f / N the aperture diameter). The textbook thin-lens circle of confusion is larger by S / (S - f);
we follow the renderer so that blur sizes predicted here are the ones in the frames.
"""
from __future__ import annotations

import math

import numpy as np

from nfs_synth.errors import LayeredSettingsError, UsageError


def blur_diameter_px(depth_m, focus_m, focal_length_mm: float, f_number: float,
                     sensor_width_mm: float, width_px: int):
    """Blur-disk diameter in pixels for planar depth(s) `depth_m` with the focus plane at `focus_m`."""
    f = focal_length_mm / 1000.0
    aperture = f / f_number
    on_sensor_m = aperture * f * np.abs(1.0 / np.asarray(depth_m, float) - 1.0 / np.asarray(focus_m, float))
    return on_sensor_m / (sensor_width_mm / 1000.0) * width_px


def check_layered_apertures(sweep_f_number: float, ground_truth_f_number: float | None) -> None:
    """The layered engine pads its slabs for the sweep's blur, so the all-in-focus render (None: pinhole)
    may not blur more than the sweep; the recipe check and the layered renderer both run this."""
    if ground_truth_f_number is not None and ground_truth_f_number < sweep_f_number:
        raise LayeredSettingsError(
            f"ground_truth.f_number = {ground_truth_f_number:g} is below camera.f_number = {sweep_f_number:g}: "
            f"the layered engine allows 0 (pinhole) or [{sweep_f_number:g}, 1024]; or use render.engine = "
            "'cycles'", key="ground_truth.f_number")


def focus_schedule(near_m: float, far_m: float, frames: int, schedule: str = "uniform_diopter",
                   rng: np.random.Generator | None = None, jitter: float = 0.5) -> np.ndarray:
    """Focus distances (m) of a near-to-far sweep with `frames` samples.

    uniform_diopter: equal steps in 1/S, hence equal blur steps (the default).
    uniform_distance: equal steps in metres (fast through the near field).
    focus_ring: a hand-turned ring, its speed in diopters varying smoothly by about +-jitter
    (a sum of a few random low-frequency sinusoids), still monotonic and spanning [near, far].
    """
    u = np.linspace(0.0, 1.0, frames)
    if schedule == "uniform_distance":
        return near_m + u * (far_m - near_m)
    if schedule == "focus_ring":
        if rng is None:
            raise UsageError("the focus_ring schedule needs a random generator")
        speed = np.ones_like(u)
        for harmonic in range(1, 4):
            amp = jitter * rng.uniform(0.2, 1.0) / harmonic
            speed += amp * np.sin(2 * np.pi * harmonic * u + rng.uniform(0, 2 * np.pi))
        speed = np.clip(speed, 0.05, None)          # the ring never stops or turns back
        u = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]))])
        u /= u[-1]
    elif schedule != "uniform_diopter":
        raise UsageError(f"unknown focus schedule {schedule!r}")
    diopters = 1.0 / near_m + u * (1.0 / far_m - 1.0 / near_m)
    return 1.0 / diopters


def frame_timestamps_us(frames: int, duration_s: float) -> np.ndarray:
    """Integer-microsecond times of the sweep frames, the first at 0 and the last at `duration_s`."""
    return np.rint(np.linspace(0.0, duration_s * 1e6, frames)).astype(np.int64)


def euler_matrix(euler_xyz) -> np.ndarray:
    """Blender's XYZ Euler rotation: x first, then y, then z (world = R @ local)."""
    x, y, z = euler_xyz
    rx = np.array([[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]])
    return rz @ ry @ rx


def intrinsics(width: int, height: int, focal_length_mm: float, sensor_width_mm: float) -> np.ndarray:
    """3x3 pinhole intrinsics in pixels (sensor width spans the image width, square pixels)."""
    fpx = focal_length_mm / sensor_width_mm * width
    return np.array([[fpx, 0.0, width / 2.0], [0.0, fpx, height / 2.0], [0.0, 0.0, 1.0]])


def view_size_m(depth_m: float, width: int, height: int, focal_length_mm: float,
                sensor_width_mm: float) -> tuple[float, float]:
    """Width and height (m) of the visible rectangle at planar depth `depth_m`."""
    w = depth_m * sensor_width_mm / focal_length_mm
    return w, w * height / width
