"""Check a scene plan and its texture pixels before Blender sees them, with messages naming the key."""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .plan_format import LIGHT_TYPES, PLAN_VERSION, PRIMITIVES

MAX_SIDE = 16384


class PlanError(ValueError):
    """A scene plan (or its textures) that the renderer cannot build; the message names the key."""


def _number(value, path: str, *, positive: bool = False, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise PlanError(f"{path}: expected a finite number, got {value!r}")
    if positive and value <= 0:
        raise PlanError(f"{path}: must be > 0, got {value!r}")
    if minimum is not None and value < minimum:
        raise PlanError(f"{path}: must be >= {minimum}, got {value!r}")
    return float(value)


def _integer(value, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise PlanError(f"{path}: expected an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def _vector(value, path: str, n: int = 3) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise PlanError(f"{path}: expected a list of {n} numbers, got {value!r}")
    return [_number(v, f"{path}[{i}]") for i, v in enumerate(value)]


def _section(plan: Mapping, key: str) -> Mapping:
    value = plan.get(key)
    if not isinstance(value, Mapping):
        raise PlanError(f"{key}: missing or not a mapping")
    return value


def _get(section: Mapping, key: str, path: str):
    if key not in section:
        raise PlanError(f"{path}: missing")
    return section[key]


def validate_plan(plan: Mapping, textures: Mapping[str, np.ndarray]) -> None:
    """Raise PlanError for the first problem found; return None for a plan the renderer can build."""
    if not isinstance(plan, Mapping):
        raise PlanError(f"plan: expected a dict, got {type(plan).__name__}")
    if plan.get("version") != PLAN_VERSION:
        raise PlanError(f"version: expected {PLAN_VERSION}, got {plan.get('version')!r}")

    cam = _section(plan, "camera")
    for key in ("width", "height"):
        _integer(_get(cam, key, f"camera.{key}"), f"camera.{key}", 1, MAX_SIDE)
    for key in ("focal_length_mm", "f_number", "sensor_width_mm"):
        _number(_get(cam, key, f"camera.{key}"), f"camera.{key}", positive=True)
    blades = _integer(cam.get("aperture_blades", 0), "camera.aperture_blades", 0, 100)
    if blades in (1, 2):
        raise PlanError(f"camera.aperture_blades: 0 (round aperture) or at least 3, got {blades}")
    _number(cam.get("aperture_rotation_deg", 0.0), "camera.aperture_rotation_deg")

    sweep = _section(plan, "sweep")
    focus = _get(sweep, "focus_distance_m", "sweep.focus_distance_m")
    stamps = _get(sweep, "timestamps_us", "sweep.timestamps_us")
    if not isinstance(focus, (list, tuple)) or not focus:
        raise PlanError("sweep.focus_distance_m: expected a non-empty list of distances in metres")
    for i, s in enumerate(focus):
        _number(s, f"sweep.focus_distance_m[{i}]", positive=True)
    if not isinstance(stamps, (list, tuple)) or len(stamps) != len(focus):
        raise PlanError(f"sweep.timestamps_us: expected {len(focus)} entries, one per focus distance")

    gt = _section(plan, "ground_truth")
    if gt.get("f_number") is not None:
        _number(gt["f_number"], "ground_truth.f_number", positive=True)

    render = _section(plan, "render")
    _integer(_get(render, "samples", "render.samples"), "render.samples", 1, 1 << 24)
    _integer(_get(render, "max_bounces", "render.max_bounces"), "render.max_bounces", 0, 1024)
    _integer(_get(render, "seed", "render.seed"), "render.seed", 0, 2**31 - 1)
    filt = _number(_get(render, "pixel_filter_px", "render.pixel_filter_px"), "render.pixel_filter_px")
    if not 0.01 <= filt <= 10.0:
        raise PlanError(f"render.pixel_filter_px: must be in [0.01, 10] (Cycles' range), got {filt}")
    _number(render.get("exposure", 0.0), "render.exposure")

    world = _section(plan, "world")
    _vector(_get(world, "color", "world.color"), "world.color")
    _number(_get(world, "strength", "world.strength"), "world.strength", minimum=0.0)

    for i, light in enumerate(plan.get("lights", [])):
        path = f"lights[{i}]"
        if not isinstance(light, Mapping):
            raise PlanError(f"{path}: expected a mapping, got {light!r}")
        if light.get("type") not in LIGHT_TYPES:
            raise PlanError(f"{path}.type: expected one of {LIGHT_TYPES}, got {light.get('type')!r}")
        _vector(_get(light, "location_m", f"{path}.location_m"), f"{path}.location_m")
        _vector(light.get("rotation_euler_rad", [0, 0, 0]), f"{path}.rotation_euler_rad")
        _number(_get(light, "energy", f"{path}.energy"), f"{path}.energy", minimum=0.0)
        _vector(light.get("color", [1, 1, 1]), f"{path}.color")
        _number(light.get("size_m", 0.0), f"{path}.size_m", minimum=0.0)

    objects = plan.get("objects")
    if not isinstance(objects, (list, tuple)) or not objects:
        raise PlanError("objects: expected a non-empty list")
    for i, obj in enumerate(objects):
        path = f"objects[{i}]"
        if not isinstance(obj, Mapping):
            raise PlanError(f"{path}: expected a mapping, got {obj!r}")
        if obj.get("primitive") not in PRIMITIVES:
            raise PlanError(f"{path}.primitive: unknown {obj.get('primitive')!r}; expected one of {PRIMITIVES}")
        for key in ("location_m", "rotation_euler_rad", "scale"):
            _vector(_get(obj, key, f"{path}.{key}"), f"{path}.{key}")
        _number(obj.get("roughness", 0.5), f"{path}.roughness", minimum=0.0)
        tex = obj.get("texture")
        if not isinstance(textures, Mapping) or tex not in textures:
            raise PlanError(f"{path}.texture: no pixels given for texture id {tex!r}")

    if "motion" in plan:
        _validate_motion(plan["motion"], len(focus), {o.get("name") for o in objects})

    for tex_id, pixels in textures.items():
        arr = np.asarray(pixels)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise PlanError(f"textures[{tex_id!r}]: expected an (h, w, 3) array, got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise PlanError(f"textures[{tex_id!r}]: expected floats in [0, 1], got {arr.dtype} "
                            "(divide 8-bit pixels by 255)")
        if not np.all(np.isfinite(arr)):
            raise PlanError(f"textures[{tex_id!r}]: contains NaN or infinite values")


def _validate_motion(motion, frames: int, names: set) -> None:
    """Per frame a camera rotation and location, per moving object a velocity (plan.py's `motion`)."""
    if not isinstance(motion, Mapping):
        raise PlanError(f"motion: expected a mapping, got {motion!r}")
    for key in ("camera_rotation_euler_rad", "camera_location_m"):
        path = _get(motion, key, f"motion.{key}")
        if not isinstance(path, (list, tuple)) or len(path) != frames:
            raise PlanError(f"motion.{key}: expected {frames} entries, one per frame")
        for i, value in enumerate(path):
            _vector(value, f"motion.{key}[{i}]")
    velocity = _get(motion, "object_velocity_m_s", "motion.object_velocity_m_s")
    if not isinstance(velocity, Mapping):
        raise PlanError("motion.object_velocity_m_s: expected a mapping from object name to velocity")
    for name, value in velocity.items():
        if name not in names:
            raise PlanError(f"motion.object_velocity_m_s: no object named {name!r}")
        _vector(value, f"motion.object_velocity_m_s[{name!r}]")
    _number(_get(motion, "rest_time_us", "motion.rest_time_us"), "motion.rest_time_us")
