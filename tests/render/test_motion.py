"""Motion during the sweep (`[motion]`): the shake path, its homographies against Blender's camera, the
image motion both engines render, object motion, and the engine fallback for parallax."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from nfs_synth.errors import LayeredSettingsError, RecipeError
from nfs_synth.scene import motion
from nfs_synth.scene import plan as plans
from nfs_synth.scene.recipe import load_recipe

QUICK_SHAKE = ["motion.shake_px=3", "motion.shake_roll_deg=0.5", "motion.shake_hz=3"]


def _rms(shift: np.ndarray) -> float:
    return math.sqrt(float(np.mean(np.sum((shift - shift.mean(axis=0)) ** 2, axis=1))))


def test_shake_path_has_the_set_amplitude_a_smooth_spectrum_and_its_own_stream():
    recipe = load_recipe("quick", QUICK_SHAKE + ["sweep.frames=400", "sweep.duration_s=4"])
    plan = plans.sample_plan(recipe, 0)
    shift = motion.image_shift_px(plan)
    assert shift.shape == (400, 2)
    # scaled in angle (arctan), so the image-centre motion is the setting up to the Euler angles' coupling
    assert _rms(shift) == pytest.approx(3.0, rel=1e-3)
    roll = np.degrees(np.asarray(plan["motion"]["camera_rotation_euler_rad"])[:, 2])
    assert math.sqrt(np.mean(roll ** 2)) == pytest.approx(0.5, rel=1e-9)
    # smooth: a Gaussian spectrum of std 3 Hz holds < 1e-4 of its power beyond 4 std (12 Hz), far from the
    # 50 Hz Nyquist limit of 100 frames/s; white noise would put 76 % there
    power = np.abs(np.fft.rfft(shift - shift.mean(axis=0), axis=0)) ** 2
    hz = np.fft.rfftfreq(400, d=0.01)
    assert power[hz > 12].sum() / power.sum() < 0.01
    # the plan stream is untouched: everything but the motion table is the still scene's
    still = plans.sample_plan(load_recipe("quick", ["sweep.frames=400", "sweep.duration_s=4"]), 0)
    assert {k: v for k, v in plan.items() if k != "motion"} == still
    assert "motion" not in still
    # another scene draws another path; the same scene the same one
    assert not np.allclose(motion.image_shift_px(plans.sample_plan(recipe, 1)), shift)
    assert np.array_equal(motion.image_shift_px(plans.sample_plan(recipe, 0)), shift)


def test_parallax_falls_back_to_cycles_and_the_layered_engine_refuses_it():
    for extra in ("motion.shake_translation_mm=2", "motion.object_motion_px=5"):
        recipe = load_recipe("quick", [extra])
        plan = plans.sample_plan(recipe, 0)
        assert recipe["render"]["engine"] == "layered" and plan["render"]["engine"] == "cycles"
        assert "parallax" in plan["render"]["engine_fallback"]
        pytest.importorskip("blender_scenes")
        from nfs_synth.render.layered.renderer import LayeredRenderer
        with pytest.raises(LayeredSettingsError, match="rotation only"):
            LayeredRenderer(plan, {})
    rotation_only = plans.sample_plan(load_recipe("quick", QUICK_SHAKE), 0)
    assert rotation_only["render"]["engine"] == "layered" and "engine_fallback" not in rotation_only["render"]


@pytest.mark.parametrize("key, value", [("shake_px", -1.0), ("shake_px", 51.0), ("shake_hz", 0.0),
                                        ("shake_roll_deg", 11.0), ("shake_translation_mm", -0.1),
                                        ("object_motion_px", 1001.0), ("shake_px", "big")])
def test_out_of_range_motion_keys_are_refused_naming_the_key(key, value):
    with pytest.raises(RecipeError, match=f"motion.{key}"):
        load_recipe("quick", [f"motion.{key}={value!r}" if isinstance(value, str) else f"motion.{key}={value}"])


def test_homographies_follow_blenders_keyed_camera():
    """A point's pixel in each keyed frame (Blender's own projection) is the homography of its pixel at
    the rest pose, and keyed objects sit at their planned place plus velocity x time."""
    pytest.importorskip("blender_scenes")
    import bpy
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    from blender_scenes.build import build_scene
    from blender_scenes.renderer import reset_blender
    from nfs_synth.scene import textures

    recipe = load_recipe("quick", QUICK_SHAKE + ["motion.object_motion_px=8"])
    plan = plans.sample_plan(recipe, 0)
    pixels = {tid: textures.load_texture(ref, recipe["textures"]) for tid, ref in plan["textures"].items()}
    reset_blender()
    try:
        cam = build_scene(plan, pixels)
        scene = bpy.context.scene
        w, h = plan["camera"]["width"], plan["camera"]["height"]
        points = [Vector(p) for p in ((0.05, -0.03, -1.0), (-0.1, 0.08, -2.0), (0.0, 0.0, -1.5))]

        def project():
            uv = [world_to_camera_view(scene, cam, p) for p in points]
            return np.array([[v.x * w - 0.5, (1.0 - v.y) * h - 0.5] for v in uv])

        scene.frame_set(0)
        rest = project()
        warps = motion.homographies(plan)
        stamps = plan["sweep"]["timestamps_us"]
        name, velocity = next(iter(plan["motion"]["object_velocity_m_s"].items()))
        planned = np.array(next(o for o in plan["objects"] if o["name"] == name)["location_m"])
        for i in (0, 17, len(stamps) - 1):
            scene.frame_set(i + 1)
            mapped = warps[i] @ np.c_[rest, np.ones(len(points))].T
            np.testing.assert_allclose(project(), (mapped[:2] / mapped[2]).T, atol=1e-4)
            expected = planned + np.array(velocity) * (stamps[i] - plan["motion"]["rest_time_us"]) * 1e-6
            np.testing.assert_allclose(bpy.data.objects[name].location, expected, atol=1e-6)
        # lateral, at most object_motion_px over the sweep at the object's depth
        fpx = plan["camera"]["focal_length_mm"] / plan["camera"]["sensor_width_mm"] * w
        sweep_px = np.hypot(*velocity[:2]) * (stamps[-1] - stamps[0]) * 1e-6 * fpx / -planned[2]
        assert velocity[2] == 0.0 and 0.0 <= sweep_px <= 8.0
    finally:
        reset_blender()


def _shake_plan(shake_px: float, frames: int = 12):
    from test_render import checker, make_plan, plane

    focus = list(np.linspace(0.8, 1.6, frames))
    plan = make_plan([plane("card", "card", 1.0, 0.12, x=0.01), plane("back", "back", 2.0, 1.0)], focus,
                     width=64, height=64, samples=16)
    plan["render"].update(layered_slabs=0, layered_tolerance_px=0.5, layered_samples=16)
    cfg = {"shake_px": shake_px, "shake_hz": 20.0, "shake_roll_deg": 0.0, "shake_translation_mm": 0.0,
           "object_motion_px": 0.0}
    if shake_px:
        plan["motion"] = motion.sample_motion(cfg, 7, 0, plan["camera"], plan["sweep"]["timestamps_us"],
                                              plan["objects"])
    rng = np.random.default_rng(3)
    card = np.clip(checker(128, 8) * 0.6 + rng.random((128, 128, 1)) * 0.4, 0, 1).astype(np.float32)
    return plan, {"card": card, "back": checker(256, 24)}


def _measured_shifts(shaken, still, search: int = 8) -> np.ndarray:
    """Per frame the translation of the still frame that best matches the shaken one inside a border of
    `search` + 2 px: least squares, first over whole pixels within +- `search`, then refined."""
    from scipy.optimize import minimize

    shifts = []
    for a, b in zip(shaken, still):
        a, b = a.mean(-1), b.mean(-1)
        h, w = a.shape
        inner = np.s_[search + 2:h - search - 2, search + 2:w - search - 2]

        def error(d):
            moved = cv2.warpAffine(b, np.float32([[1, 0, d[0]], [0, 1, d[1]]]), (w, h), flags=cv2.INTER_LANCZOS4)
            return float(np.mean((moved[inner] - a[inner]) ** 2))

        start = min(((dx, dy) for dx in range(-search, search + 1) for dy in range(-search, search + 1)), key=error)
        simplex = np.array(start, float) + [[0.0, 0.0], [0.5, 0.0], [0.0, 0.5]]
        shifts.append(minimize(error, start, method="Nelder-Mead",
                               options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-12}).x)
    return np.array(shifts)


@pytest.mark.parametrize("engine", ["layered", "cycles"])
def test_rendered_image_motion_matches_the_shake_setting(engine):
    """Both engines' frames move against the still camera's by the stored homographies: the measured
    (phase-correlation) amplitude is the setting within 15 %, and the all-in-focus image is the rest pose's."""
    bpy_scenes = pytest.importorskip("blender_scenes")
    from nfs_synth.render.layered.renderer import LayeredRenderer

    renderer = LayeredRenderer if engine == "layered" else bpy_scenes.SceneRenderer
    frames = 12 if engine == "layered" else 6
    runs = {}
    for px in (2.5, 0.0):
        plan, textures = _shake_plan(px, frames)
        with renderer(plan, textures, threads=2) as r:
            runs[px] = (list(r.sweep()), r.all_in_focus()[0], plan)
    shaken, aif_shaken, plan = runs[2.5]
    still, aif_still, _ = runs[0.0]
    measured = _measured_shifts(shaken, still)
    stored = motion.image_shift_px(plan)
    assert _rms(measured) == pytest.approx(2.5, rel=0.15)
    np.testing.assert_allclose(measured, stored, atol=0.25)    # frame by frame, where it moved
    assert np.abs(_measured_shifts([aif_shaken], [aif_still])).max() < 0.05


def test_motion_is_recorded_only_when_set_so_older_corpora_keep_their_recipe():
    from nfs_synth.scene.recipe import to_json

    still = json.loads(to_json(load_recipe("quick")))
    assert "motion" not in still and "rgb_camera" in still
    assert json.loads(to_json(load_recipe("quick", QUICK_SHAKE)))["motion"]["shake_px"] == 3.0


def test_a_shaken_scene_file_records_its_path_and_validates(tmp_path):
    pytest.importorskip("blender_scenes")
    from nfs_synth.cli import generate_main, main
    from nfs_synth.corpus.scene_file import SceneReader

    sets = ["corpus.scenes=1", "sweep.frames=4", "camera.width=32", "camera.height=32", "render.engine=layered",
            "render.layered_samples=4", "motion.shake_px=1.5", "rgb_camera.enabled=true", "rgb_camera.scale=2"]
    assert generate_main([a for s in sets for a in ("--set", s)] + ["--out", str(tmp_path), "--no-progress"]) == 0
    assert main(["validate", str(tmp_path), "--no-progress"]) == 0
    with SceneReader(tmp_path / "scenes" / "scene_00000.h5") as scene:
        plan = json.loads(scene.h5.attrs["plan_json"])
        np.testing.assert_array_equal(scene.h5["motion/rest_to_frame"][:], motion.homographies(plan))
        assert scene.h5["motion/camera_rotation_euler_rad"].shape == scene.h5["motion/camera_location_m"].shape == (4, 3)
        assert scene.h5["motion"].attrs["shake_px"] == 1.5
        assert _rms(motion.image_shift_px(plan)) == pytest.approx(1.5, rel=1e-3)
