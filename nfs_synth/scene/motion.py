"""Motion during the sweep (recipe `[motion]`): hand-held camera shake and slow object motion.

A plan with motion carries, per frame, the camera's Blender rotation (XYZ Euler, rad) and location (m)
and, per moving object, a velocity (m/s). Both renderers read these plain numbers: Cycles keys them
(blender_scenes/build.py), the layered engine warps its overscanned composite by the rotation's
homography (`rest_to_frame`), which is exact for a camera turning about its centre of projection. A
translating camera or a moving object shows parallax, which depth slabs cannot: such plans render with
Cycles (`engine_for`).

The rest pose, at which the all-in-focus image and depth are rendered, is the path's mean: the shake
path has zero mean over the frames and objects pass their planned location at mid-sweep.
"""
from __future__ import annotations

import math

import numpy as np

from nfs_synth.scene import optics, seeds

# Random Fourier features per component of the shake path: a stationary Gaussian process whose
# spectrum is a Gaussian of standard deviation `shake_hz` (smooth, the slow wander of a hand).
FEATURES = 64
# Camera coordinates of computer vision (x right, y down, z forward) from Blender's (x right, y up,
# looking down -z).
_CV_FROM_BLENDER = np.diag([1.0, -1.0, -1.0])


def enabled(cfg: dict) -> bool:
    return any(cfg[k] > 0 for k in ("shake_px", "shake_roll_deg", "shake_translation_mm", "object_motion_px"))


def needs_parallax(cfg: dict) -> bool:
    """Whether the motion moves the centre of projection or an object: per-frame path tracing only."""
    return cfg["shake_translation_mm"] > 0 or cfg["object_motion_px"] > 0


def engine_for(recipe: dict) -> tuple[str, str | None]:
    """The engine a scene renders with, and why it is not the recipe's (None when it is)."""
    engine = recipe["render"]["engine"]
    if engine == "layered" and needs_parallax(recipe["motion"]):
        return "cycles", ("motion.shake_translation_mm and motion.object_motion_px move the centre of "
                          "projection or an object (parallax), which depth slabs cannot render")
    return engine, None


def _smooth_paths(rng: np.random.Generator, times_s: np.ndarray, hz: float, components: int) -> np.ndarray:
    """(T, components) zero-mean unit-variance draws of the Gaussian process, each from its own features."""
    freq = np.abs(rng.normal(0.0, hz, (components, FEATURES)))
    phase = rng.uniform(0.0, 2.0 * np.pi, (components, FEATURES))
    paths = np.cos(2.0 * np.pi * freq[:, None, :] * times_s[None, :, None] + phase[:, None, :]).sum(-1).T
    return paths - paths.mean(axis=0)


def _scaled(paths: np.ndarray, rms: float) -> np.ndarray:
    """The paths scaled so that the root mean square of their vector length is `rms` (0: none)."""
    norm = math.sqrt(float(np.mean(np.sum(paths ** 2, axis=1))))
    return paths * (rms / norm) if rms > 0 and norm > 0 else np.zeros_like(paths)


def sample_motion(cfg: dict, corpus_seed: int, index: int, camera: dict, timestamps_us, objects: list[dict]) -> dict:
    """The plan's `motion` table for scene `index`, from its own stream (the plan stream is untouched)."""
    shake_seq, objects_seq = seeds.scene_seed(corpus_seed, index, seeds.MOTION).spawn(2)
    shake_rng, objects_rng = np.random.default_rng(shake_seq), np.random.default_rng(objects_seq)
    t = np.asarray(timestamps_us, np.float64) * 1e-6
    fpx = camera["focal_length_mm"] / camera["sensor_width_mm"] * camera["width"]
    shift = _scaled(_smooth_paths(shake_rng, t, cfg["shake_hz"], 2), cfg["shake_px"])     # image (x, y) px
    roll = _scaled(_smooth_paths(shake_rng, t, cfg["shake_hz"], 1), math.radians(cfg["shake_roll_deg"]))
    location = _scaled(_smooth_paths(shake_rng, t, cfg["shake_hz"], 3), cfg["shake_translation_mm"] * 1e-3)
    # Turning the camera up (about +x) moves the image down, turning it left (about +y) moves it right.
    rotation = np.stack([np.arctan(shift[:, 1] / fpx), np.arctan(shift[:, 0] / fpx), roll[:, 0]], axis=1)
    velocity = {}
    duration = max(float(t[-1] - t[0]), 1e-9)
    for obj in objects if cfg["object_motion_px"] > 0 else ():
        if obj["name"] == "background":
            continue
        # lateral, uniform in [0, object_motion_px] image pixels over the sweep at the object's depth
        length_px, angle = objects_rng.uniform(0.0, cfg["object_motion_px"]), objects_rng.uniform(0.0, 2 * np.pi)
        speed = length_px * -obj["location_m"][2] / fpx / duration
        velocity[obj["name"]] = [speed * math.cos(angle), speed * math.sin(angle), 0.0]
    return {"camera_rotation_euler_rad": rotation.tolist(), "camera_location_m": location.tolist(),
            "object_velocity_m_s": velocity, "rest_time_us": float(0.5 * (t[0] + t[-1]) * 1e6)}


def rest_to_frame(camera: dict, euler_xyz) -> np.ndarray:
    """3x3 homography from pixel coordinates of the rest pose to those of a camera turned by `euler_xyz`
    about its centre of projection (pixel centres at integers, rows down)."""
    k = optics.intrinsics(camera["width"], camera["height"], camera["focal_length_mm"], camera["sensor_width_mm"])
    k[:2, 2] -= 0.5                      # pixel centres at integers
    turn = _CV_FROM_BLENDER @ optics.euler_matrix(euler_xyz).T @ _CV_FROM_BLENDER
    return k @ turn @ np.linalg.inv(k)


def homographies(plan: dict) -> np.ndarray:
    """(T, 3, 3) `rest_to_frame` of every frame of a plan with motion."""
    return np.stack([rest_to_frame(plan["camera"], e) for e in plan["motion"]["camera_rotation_euler_rad"]])


def image_shift_px(plan: dict) -> np.ndarray:
    """(T, 2) where the rest pose's image centre lands in each frame, relative to where it was."""
    cam = plan["camera"]
    centre = np.array([cam["width"] / 2 - 0.5, cam["height"] / 2 - 0.5, 1.0])
    mapped = homographies(plan) @ centre
    return mapped[:, :2] / mapped[:, 2:] - centre[:2]
