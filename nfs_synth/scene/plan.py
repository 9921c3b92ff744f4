"""Scene plans: everything a renderer needs to build one scene, as plain JSON-compatible data.

Sampling a plan needs no Blender. Scene i of a corpus draws from its plan stream (`seeds.PLAN`), so a
plan depends only on (recipe, seed, i): never on worker count or generation order.

Conventions: the camera sits at the origin looking down -Z with +Y up; the planar depth of a point is
-z. Primitive sizes are Blender's defaults before `scale` (cube/plane -1..1, spheres radius 1, cylinder
and cone radius 1 and depth 2, torus major radius 1, minor 0.25).
"""
from __future__ import annotations

import json

import numpy as np

from blender_scenes.plan_format import PLAN_VERSION
from nfs_synth.scene import motion, optics, seeds, textures
from nfs_synth.errors import UsageError

# Objects stay this far (in diopters, as a share of the sweep) in front of the background.
BACKGROUND_MARGIN = 0.06


def sample_plan(recipe: dict, index: int, texture_refs: list[dict] | None = None) -> dict:
    """The plan of scene `index`: camera, focus sweep, lights, textured objects and background."""
    rng = np.random.default_rng(seeds.scene_seed(recipe["corpus"]["seed"], index, seeds.PLAN))
    cam, sweep, scene, tex_cfg = recipe["camera"], recipe["sweep"], recipe["scene"], recipe["textures"]
    refs = texture_refs if texture_refs is not None else textures.catalog(tex_cfg)

    focus = optics.focus_schedule(sweep["near_m"], sweep["far_m"], sweep["frames"], sweep["schedule"],
                                  rng=rng, jitter=sweep["focus_ring_jitter"])
    stamps = optics.frame_timestamps_us(sweep["frames"], sweep["duration_s"])
    tex_table: dict[str, dict] = {}

    def texture_id(ref: dict) -> str:
        tex_id = f"tex_{len(tex_table):03d}"
        tex_table[tex_id] = ref
        return tex_id

    objects = _sample_objects(rng, recipe, refs, texture_id)
    objects.append(_background(recipe, textures.pick(tex_cfg, refs, rng), texture_id))
    gt_n = recipe["ground_truth"]["f_number"]
    engine, fallback = motion.engine_for(recipe)
    plan = {
        "version": PLAN_VERSION,
        "scene_index": int(index),
        "seed": int(recipe["corpus"]["seed"]),
        "camera": {k: cam[k] for k in ("width", "height", "focal_length_mm", "f_number",
                                       "sensor_width_mm", "aperture_blades")}
        | {"aperture_rotation_deg": float(rng.uniform(0, 360))},
        "sweep": {"focus_distance_m": focus.tolist(), "timestamps_us": stamps.tolist(),
                  "schedule": sweep["schedule"]},
        "ground_truth": {"f_number": gt_n if gt_n > 0 else None},
        "render": {k: recipe["render"][k] for k in ("samples", "denoise", "max_bounces",
                                                    "pixel_filter_px", "seed", "layered_slabs",
                                                    "layered_tolerance_px", "layered_samples",
                                                    "layered_visibility_samples")}
        | {"engine": engine, "exposure": 0.0}
        | ({"engine_fallback": fallback} if fallback else {})
        # only when set, so that plans (and content hashes) made without it are unchanged
        | ({"layered_noise_threshold": t} if (t := recipe["render"]["layered_noise_threshold"]) > 0 else {}),
        "world": {"color": [1.0, 1.0, 1.0], "strength": float(rng.uniform(*scene["ambient"]))},
        "lights": [_sun(rng, scene)],
        "objects": objects,
        "textures": tex_table,
    }
    if motion.enabled(recipe["motion"]):   # only when on, so that plans without it are unchanged
        plan["motion"] = motion.sample_motion(recipe["motion"], recipe["corpus"]["seed"], index, plan["camera"],
                                              stamps, objects)
    return plan


def _sample_objects(rng, recipe, refs, texture_id) -> list[dict]:
    cam, sweep, scene = recipe["camera"], recipe["sweep"], recipe["scene"]
    count = int(rng.integers(scene["objects_min"], scene["objects_max"] + 1))
    d_near, d_far = 1.0 / sweep["near_m"], 1.0 / sweep["far_m"]
    d_far_obj = d_far + BACKGROUND_MARGIN * (d_near - d_far)
    # Stratified in diopters: each object owns one slice of the sweep, so depths span it and every
    # object comes into focus at some moment.
    strata = (np.arange(count) + rng.random(count)) / count
    depths = 1.0 / (d_near + strata * (d_far_obj - d_near))
    objects = []
    for i, depth in enumerate(rng.permutation(depths)):
        kind = scene["primitives"][rng.integers(len(scene["primitives"]))]
        view_w, view_h = optics.view_size_m(depth, cam["width"], cam["height"],
                                            cam["focal_length_mm"], cam["sensor_width_mm"])
        size = rng.uniform(scene["size_min"], scene["size_max"]) * view_w
        half = size / 2.0
        aspect = rng.uniform(0.7, 1.3, size=3)
        if kind == "plane":   # face the camera within 60 degrees so the texture stays visible
            rot = [rng.uniform(-1.05, 1.05), rng.uniform(-1.05, 1.05), rng.uniform(0, 2 * np.pi)]
            aspect[2] = 1.0
        else:
            rot = rng.uniform(0, 2 * np.pi, size=3).tolist()
        x = rng.uniform(-0.45, 0.45) * view_w
        y = rng.uniform(-0.45, 0.45) * view_h
        objects.append({
            "name": f"obj_{i:03d}", "primitive": kind,
            "location_m": [float(x), float(y), float(-depth)],
            "rotation_euler_rad": [float(a) for a in rot],
            "scale": [float(half * a) for a in aspect],
            "texture": texture_id(textures.pick(recipe["textures"], refs, rng)),
            "roughness": float(rng.uniform(0.3, 0.9)),
        })
    return objects


def _background(recipe, ref, texture_id) -> dict:
    cam, far = recipe["camera"], recipe["sweep"]["far_m"]
    view_w, view_h = optics.view_size_m(far, cam["width"], cam["height"], cam["focal_length_mm"],
                                        cam["sensor_width_mm"])
    # Wider than the view so defocus never reveals the edge; at the far end of the sweep so that it
    # too comes into focus.
    side = 0.5 * 1.5 * max(view_w, view_h)
    return {"name": "background", "primitive": "plane", "location_m": [0.0, 0.0, -far],
            "rotation_euler_rad": [0.0, 0.0, 0.0], "scale": [side, side, 1.0],
            "texture": texture_id(ref), "roughness": 1.0}


def _sun(rng, scene) -> dict:
    # From behind the camera, tilted up to ~40 degrees, so surfaces facing the camera are lit.
    return {"type": "SUN", "location_m": [0.0, 0.0, 1.0],
            "rotation_euler_rad": [float(rng.uniform(-0.7, 0.7)), float(rng.uniform(-0.7, 0.7)), 0.0],
            "energy": float(rng.uniform(*scene["sun_strength"])), "color": [1.0, 1.0, 1.0],
            "size_m": 0.05}


def object_depths_m(plan: dict) -> list[float]:
    """Planar depth of every object centre (background last)."""
    return [-o["location_m"][2] for o in plan["objects"]]


def to_json(plan: dict) -> str:
    return json.dumps(plan, sort_keys=True)


def from_json(text: str) -> dict:
    plan = json.loads(text)
    if plan.get("version") != PLAN_VERSION:
        raise UsageError(f"scene plan version {plan.get('version')!r} is not supported "
                         f"(this nfs_synth reads version {PLAN_VERSION})")
    return plan
