"""Renderer tests: tiny Cycles renders (tens of pixels, few samples) checking shapes, units and optics."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy.ndimage import laplace
from scipy.optimize import curve_fit

from blender_scenes import PlanError, SceneRenderer, blender_version

FOCAL_MM, F_NUMBER, SENSOR_MM = 100.0, 1.2, 36.0
THREADS = 2


def checker(size: int = 64, cells: int = 8) -> np.ndarray:
    idx = (np.arange(size) * cells // size) % 2
    return np.repeat(((idx[:, None] ^ idx[None, :]) * 0.9 + 0.05)[..., None], 3, axis=2).astype(np.float32)


def edge(size: int = 1024) -> np.ndarray:
    """Black left half, white right half (sRGB 1.0 is linear 1.0, 0.0 is 0.0)."""
    tex = np.zeros((8, size, 3), np.float32)
    tex[:, size // 2:] = 1.0
    return tex


def plane(name: str, texture: str, depth: float, half_size: float, x: float = 0.0, y: float = 0.0) -> dict:
    """A square facing the camera, centred at (x, y) at planar depth `depth` metres."""
    return {"name": name, "primitive": "plane", "location_m": [x, y, -depth],
            "rotation_euler_rad": [0.0, 0.0, 0.0], "scale": [half_size, half_size, 1.0],
            "texture": texture, "roughness": 1.0}


def make_plan(objects, focus, *, width=32, height=32, samples=4, pixel_filter=1.5, gt_f_number=None):
    return {
        "version": 1, "scene_index": 0, "seed": 1,
        "camera": {"width": width, "height": height, "focal_length_mm": FOCAL_MM, "f_number": F_NUMBER,
                   "sensor_width_mm": SENSOR_MM, "aperture_blades": 0, "aperture_rotation_deg": 0.0},
        "sweep": {"focus_distance_m": list(focus), "timestamps_us": [1000 * i for i in range(len(focus))]},
        "ground_truth": {"f_number": gt_f_number},
        "render": {"samples": samples, "denoise": False, "seed": 0, "max_bounces": 2,
                   "pixel_filter_px": pixel_filter, "exposure": 0.0},
        "world": {"color": [1.0, 1.0, 1.0], "strength": 1.0},  # uniform light: no shadows, little noise
        "lights": [],
        "objects": objects,
        "textures": {},
    }


def blur_diameter_px(depth: float, focus: float, width: int) -> float:
    """Cycles' blur circle A*f*|1/z - 1/S| with A = f/N, from sensor metres to pixels."""
    f = FOCAL_MM / 1000.0
    return (f / F_NUMBER) * f * abs(1.0 / depth - 1.0 / focus) / (SENSOR_MM / 1000.0 / width)


def sharpness(img: np.ndarray) -> float:
    return float(laplace(img.mean(axis=-1)).var())


def render(plan, textures):
    with SceneRenderer(plan, textures, threads=THREADS) as renderer:
        frames = list(renderer.sweep())
        aif, depth = renderer.all_in_focus()
        timings = dict(renderer.timings)
    return frames, aif, depth, timings


def test_tiny_sweep_shapes_units_and_sharpness():
    focus = 1.0 / np.linspace(1.0, 0.1, 4)  # near to far, uniform in diopters
    objects = [plane("near", "coarse", 1.5, 0.12), plane("back", "fine", 8.0, 2.0)]  # ~3 px cells
    textures = {"coarse": checker(64, 4), "fine": checker(256, 32)}
    frames, aif, depth, timings = render(make_plan(objects, focus, samples=8), textures)

    assert len(frames) == 4
    for img in [*frames, aif]:
        assert img.shape == (32, 32, 3) and img.dtype == np.float32
        assert np.all(np.isfinite(img)) and img.min() >= 0.0
    assert depth.shape == (32, 32) and depth.dtype == np.float32
    # metres, planar: the near square covers the centre, the background the corners
    assert depth[16, 16] == pytest.approx(1.5, rel=1e-3)
    assert depth[0, 0] == pytest.approx(8.0, rel=1e-3)
    # defocus moves light around, it does not create or destroy it
    means = [f.mean() for f in frames]
    assert max(means) / min(means) < 1.1
    assert sharpness(aif) > 2.0 * min(sharpness(f) for f in frames)
    assert set(timings) == {"build", "trace", "readback"} and all(v > 0 for v in timings.values())
    assert blender_version().startswith("5.")


def _edge_spread(x, x0, radius, lo, hi):
    """Row profile across a straight edge blurred by a uniform disk: the share of the disk past the edge."""
    u = np.clip((x - x0) / radius, -1.0, 1.0)
    return lo + (hi - lo) * (0.5 + (u * np.sqrt(1.0 - u * u) + np.arcsin(u)) / np.pi)


@pytest.mark.parametrize("focus", [0.5, 2.0])
def test_blur_diameter_matches_thin_plane_model(focus):
    width, depth = 128, 1.0
    # pixel_filter 0.01 px: every sample goes through the pixel centre, so the profile is the pure ESF
    plan = make_plan([plane("edge", "edge", depth, 0.5)], [focus], width=width, height=16,
                     samples=64, pixel_filter=0.01)
    with SceneRenderer(plan, {"edge": edge()}, threads=THREADS) as renderer:
        (frame,) = renderer.sweep()
    profile = frame.mean(axis=(0, 2))
    x = np.arange(width) + 0.5
    expected = blur_diameter_px(depth, focus, width)
    (x0, radius, _, _), _ = curve_fit(_edge_spread, x, profile, p0=[width / 2, expected / 3, 0.0, 1.0])
    assert 2 * abs(radius) == pytest.approx(expected, rel=0.15)
    assert x0 == pytest.approx(width / 2, abs=1.0)  # pinhole projection: no focus breathing


def test_each_object_sharpest_where_focused_nearest():
    width, height = 96, 32
    focus = [0.667, 0.833, 1.111, 1.667, 3.333, 10.0]  # 1.5 ... 0.1 diopters
    depths = [0.847, 1.613, 3.226]  # 1.18, 0.62, 0.31 diopters: each near one frame, none on a tie
    half_view = 0.5 * SENSOR_MM / FOCAL_MM  # half the image width at 1 m depth
    objects = [plane(f"p{i}", "check", z, 0.12 * half_view * z, x=(i - 1) * 0.62 * half_view * z)
               for i, z in enumerate(depths)]
    objects.append(plane("back", "grey", 30.0, 20.0))
    grey = np.full((4, 4, 3), 0.5, np.float32)
    frames, _, _, _ = render(make_plan(objects, focus, width=width, height=height, samples=32),
                             {"check": checker(64, 8), "grey": grey})
    for i, z in enumerate(depths):
        cx = int(round(width / 2 * (1 + (i - 1) * 0.62)))
        box = (slice(height // 2 - 5, height // 2 + 5), slice(cx - 5, cx + 5))
        scores = [sharpness(f[box]) for f in frames]
        assert int(np.argmax(scores)) == int(np.argmin(np.abs(1 / np.asarray(focus) - 1 / z))), (z, scores)


def test_fixed_seed_no_flicker_and_small_aperture_ground_truth():
    plan = make_plan([plane("back", "check", 3.0, 1.0)], [2.0, 2.0], width=16, height=16, samples=2,
                     gt_f_number=22.0)
    with SceneRenderer(plan, {"check": checker()}, threads=THREADS) as renderer:
        frames = renderer.sweep()
        first = next(frames)
        aif, depth = renderer.all_in_focus()  # between two frames: the sweep must restore its optics
        second = next(frames)
    np.testing.assert_array_equal(first, second)  # same focus, same noise: no spurious events
    assert aif.shape == (16, 16, 3) and not np.array_equal(aif, first)
    np.testing.assert_allclose(depth, 3.0, rtol=1e-4)  # depth from the pinhole pass, not the f/22 one


def test_thread_count_does_not_change_pixels():
    plan = make_plan([plane("back", "check", 3.0, 1.0)], [2.0], width=16, height=16, samples=4)
    out = []
    for threads in (1, 2):
        with SceneRenderer(plan, {"check": checker()}, threads=threads) as renderer:
            out.append(next(renderer.sweep()))
    # A corpus does not depend on how many cores rendered it. Two scene builds may differ by float
    # rounding (~1e-7 measured in a 10-object scene), far below Monte Carlo noise (~1e-1 at 4 spp).
    np.testing.assert_allclose(*out, rtol=1e-5, atol=1e-6)


def test_image_orientation_rows_top_down():
    """+Y world is up in the image, +X right, and texture rows are top-down like an image file."""
    red_over_blue = np.zeros((8, 8, 3), np.float32)
    red_over_blue[:4, :, 0] = red_over_blue[4:, :, 2] = 1.0
    half_view = 0.5 * SENSOR_MM / FOCAL_MM * 2.0  # at 2 m
    objects = [plane("tag", "rb", 2.0, 0.3 * half_view, x=0.5 * half_view, y=0.5 * half_view),
               plane("back", "black", 4.0, 2.0)]
    plan = make_plan(objects, [2.0], width=32, height=32, samples=4)
    with SceneRenderer(plan, {"rb": red_over_blue, "black": np.zeros((2, 2, 3), np.float32)},
                       threads=THREADS) as renderer:
        aif, _ = renderer.all_in_focus()
    rows, cols = np.nonzero(aif.sum(axis=-1) > 0.5)
    assert rows.mean() < 16 and cols.mean() > 16  # top-right quadrant
    tag = aif[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    half = tag.shape[0] // 2
    assert tag[:half, :, 0].mean() > 0.8 > 0.2 > tag[:half, :, 2].mean()
    assert tag[half:, :, 2].mean() > 0.8 > 0.2 > tag[half:, :, 0].mean()


def test_exposure_scales_linear_values():
    objects = [plane("back", "check", 3.0, 1.0)]
    plan = make_plan(objects, [3.0], width=8, height=8, samples=2)
    bright = copy.deepcopy(plan)
    bright["render"]["exposure"] = 1.0
    with SceneRenderer(plan, {"check": checker()}, threads=THREADS) as r:
        (base,) = r.sweep()
    with SceneRenderer(bright, {"check": checker()}, threads=THREADS) as r:
        (double,) = r.sweep()
    np.testing.assert_allclose(double, 2.0 * base, rtol=1e-5, atol=1e-6)


def _bad(mutate):
    plan = make_plan([plane("a", "check", 2.0, 1.0)], [1.0])
    mutate(plan)
    return plan


@pytest.mark.parametrize("mutate, textures, message", [
    (lambda p: p["objects"][0].update(primitive="teapot"), None, "objects[0].primitive"),
    (lambda p: p["objects"][0].update(texture="nope"), None, "objects[0].texture"),
    (lambda p: p["camera"].update(width=0), None, "camera.width"),
    (lambda p: p["camera"].update(f_number=-1.0), None, "camera.f_number"),
    (lambda p: p["camera"].update(aperture_blades=2), None, "camera.aperture_blades"),
    (lambda p: p["sweep"].update(focus_distance_m=[0.0]), None, "sweep.focus_distance_m[0]"),
    (lambda p: p["sweep"].update(timestamps_us=[]), None, "sweep.timestamps_us"),
    (lambda p: p["lights"].append({"type": "SPOT"}), None, "lights[0].type"),
    (lambda p: None, {"check": np.zeros((4, 4), np.float32)}, "textures['check']"),
])
def test_bad_plans_raise_named_errors(mutate, textures, message):
    with pytest.raises(PlanError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        SceneRenderer(_bad(mutate), textures or {"check": checker()})
    assert isinstance(err.value, ValueError)


def test_one_open_renderer_at_a_time():
    plan = make_plan([plane("a", "check", 2.0, 1.0)], [1.0], width=8, height=8, samples=1)
    first = SceneRenderer(plan, {"check": checker()}, threads=1)
    with pytest.raises(RuntimeError, match="another SceneRenderer"):
        SceneRenderer(plan, {"check": checker()})
    first.close()
    first.close()
    with pytest.raises(RuntimeError, match="closed"):
        next(first.sweep())
    with SceneRenderer(plan, {"check": checker()}, threads=1) as second:
        assert next(second.sweep()).shape == (8, 8, 3)
    dropped = SceneRenderer(plan, {"check": checker()}, threads=1)
    del dropped  # never closed: it must not lock Blender for the next scene
    with SceneRenderer(plan, {"check": checker()}, threads=1) as third:
        assert next(third.sweep()).shape == (8, 8, 3)
