"""LayeredRenderer: a focal sweep from K depth slabs path-traced once, blurred and composited per frame.

Blender traces the slabs (`blender_scenes.SlabTracer`); this module plans them and composites. Slabs are
rendered with an overscan margin as wide as the largest blur radius, so blur near the frame edges draws
on real content, as a lens would, and are cut into one piece per object by the object-index pass.
Method, limits and figures: docs/layered.md.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from time import perf_counter

import cv2
import numpy as np

from blender_scenes import SlabTracer
from blender_scenes.plan_format import CLIP_END_M, CLIP_START_M
from nfs_synth.errors import LayeredSettingsError
from nfs_synth.render.layered.slabs import (FILTER_MARGIN_PX, box_within_depths, object_corners, slab_count, slab_edges,
                                            split_by_object)
from nfs_synth.render.layered.stack import SlabStack
from nfs_synth.scene import motion
from nfs_synth.scene.optics import blur_diameter_px, check_layered_apertures

MAX_SLABS = 4096
COMPOSITOR_VERSION = 2


def _shake_warps(plan: Mapping) -> np.ndarray | None:
    """Per frame the rest-to-frame homography of a shaken camera; None without motion. Parallax (a
    moving centre of projection or object) is refused: the planner renders such scenes with Cycles."""
    if "motion" not in plan:
        return None
    move = plan["motion"]
    if np.any(move["camera_location_m"]) or any(np.any(v) for v in move["object_velocity_m_s"].values()):
        raise LayeredSettingsError("the layered engine renders camera rotation only; camera translation "
                                   "(motion.shake_translation_mm) and moving objects (motion.object_motion_px) "
                                   "need render.engine = 'cycles'")
    return motion.homographies(plan)


def _shake_overscan_px(warps: np.ndarray, width: int, height: int) -> int:
    """Pixels past the frame's edges that some shaken frame reads, plus the interpolation's 4 taps."""
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], float).T
    rest = np.linalg.inv(warps) @ corners                     # (T, 3, 4) rest-pose points the corners read
    x, y = rest[:, 0] / rest[:, 2], rest[:, 1] / rest[:, 2]
    past = max(0.0, float(-x.min()), float(x.max() - (width - 1)), float(-y.min()), float(y.max() - (height - 1)))
    return int(math.ceil(past)) + 4


def _count(render: Mapping, key: str, default: int) -> int:
    value = render.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise LayeredSettingsError(f"render.{key}: expected an integer >= 0, got {value!r}")
    return int(value)


class LayeredRenderer:
    """SceneRenderer's interface (sweep, all_in_focus, timings, close, a context manager) from depth slabs.

    `settings` records the engine, slab count, tolerance, samples per slab and the slab boundaries
    (diopters, nearest first); it is complete after construction, which renders one depth pass.
    Slabs are path-traced on the first call of sweep() or all_in_focus(); `timings` adds
    "composite" (blur and compositing) to SceneRenderer's keys.
    """

    def __init__(self, plan: Mapping, textures: Mapping[str, np.ndarray], *,
                 threads: int | None = None) -> None:
        render = plan.get("render", {})
        slabs = _count(render, "layered_slabs", 0)
        samples = _count(render, "layered_samples", 32)
        visibility = _count(render, "layered_visibility_samples", 0)  # absent in plans made before it
        tolerance = render.get("layered_tolerance_px", 0.5)
        threshold = render.get("layered_noise_threshold", 0.0)   # absent in plans made before it
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise LayeredSettingsError(f"render.layered_noise_threshold must be in [0, 1], got {threshold!r}")
        self._noise_threshold = float(threshold)
        if samples < 1 or slabs > MAX_SLABS:
            raise LayeredSettingsError(f"render.layered_samples must be >= 1 and render.layered_slabs "
                                       f"<= {MAX_SLABS}; got {samples} and {slabs}")
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance > 0:
            raise LayeredSettingsError(f"render.layered_tolerance_px must be > 0, got {tolerance!r}")
        self.plan = plan
        self._warps = _shake_warps(plan)
        self._tracer = SlabTracer(plan, textures, threads=threads)
        self.timings = self._tracer.timings
        try:
            self._plan_slabs(slabs, float(tolerance), samples, visibility)
        except BaseException:
            self.close()
            raise

    def _plan_slabs(self, slabs: int, tolerance: float, samples: int, visibility: int) -> None:
        cam = self.plan["camera"]
        check_layered_apertures(cam["f_number"], self.plan["ground_truth"].get("f_number"))
        self.timings["composite"] = 0.0
        self._ppd = float(blur_diameter_px(1.0, np.inf, cam["focal_length_mm"], cam["f_number"],
                                           cam["sensor_width_mm"], cam["width"]))
        depth = self._depth = self._tracer.depth_pass()
        surfaces = depth[depth < CLIP_END_M]
        focus_d = 1.0 / np.asarray(self.plan["sweep"]["focus_distance_m"], float)
        if surfaces.size:
            near, far = float(surfaces.min()), float(surfaces.max())
        else:  # only the world in view: one slab at the farthest focus
            near = far = 1.0 / focus_d.min()
        # one depth in view (a lone plane): one slab holds it whatever was asked
        count = 1 if near == far else slabs or slab_count(1.0 / near - 1.0 / far, self._ppd, tolerance)
        if count > MAX_SLABS:
            raise LayeredSettingsError(f"render.layered_tolerance_px = {tolerance} needs {count} slabs "
                                       f"(more than {MAX_SLABS}); raise it or set render.layered_slabs")
        self._edges = slab_edges(near, far, count)
        self._centres = 0.5 * (self._edges[:-1] + self._edges[1:])
        self._focus_range = (float(focus_d.min()), float(focus_d.max()))
        worst = max(abs(self._centres - d).max() for d in self._focus_range)
        self._margin = int(math.ceil(0.5 * self._ppd * worst)) + FILTER_MARGIN_PX
        # a shaken frame also sees what lies past the rest pose's edges: the composites cover them too
        self._shake_px = 0 if self._warps is None else _shake_overscan_px(self._warps, cam["width"], cam["height"])
        self._margin += self._shake_px
        self._samples, self._visibility = samples, visibility
        self._stack: SlabStack | None = None
        world = self.plan["world"]
        self._world = np.float32(world["strength"] * 2.0 ** self.plan["render"].get("exposure", 0.0)) \
            * np.asarray(world["color"], np.float32)
        self.settings = {
            "engine": "layered", "layered_slabs": count, "layered_tolerance_px": tolerance,
            "layered_samples": samples, "layered_visibility_samples": visibility,
            "layered_noise_threshold": self._noise_threshold,
            "layered_slab_edges_diopter": self._edges.tolist(),
            "layered_max_blur_error_px": 0.5 * self._ppd * (self._edges[0] - self._edges[1]),
            "layered_overscan_px": self._margin,
            "layered_denoise": False,
            # 2: blurs in windows per blur class, interpolated between key diameters in a sweep,
            # coarse grids upsampled by resize, odd-sized coarse grids cut right (1: before; absent)
            "layered_compositor": COMPOSITOR_VERSION,
        }

    def sweep(self) -> Iterator[np.ndarray]:
        """One (H, W, 3) float32 linear RGB frame per planned focus distance, in plan order."""
        frames = self._slab_stack().frames(self.plan["sweep"]["focus_distance_m"])
        for i in itertools.count():
            self._tracer._check_open()
            start = perf_counter()
            rgba = next(frames, None)
            if rgba is None:
                return
            rgb = self._with_world(rgba) if self._warps is None else self._over_world(self._shaken(rgba, self._warps[i]))
            self.timings["composite"] += perf_counter() - start
            yield rgb

    def all_in_focus(self) -> tuple[np.ndarray, np.ndarray]:
        """The slabs composited unblurred (ground_truth.f_number None) or blurred for that aperture
        focused at the dioptric middle of the sweep, and the planar depth of the pinhole pass."""
        stack = self._slab_stack()
        gt_f = self.plan["ground_truth"].get("f_number")
        if gt_f is None:
            return self._composite(stack, 1.0 / self._focus_range[0], 0.0), self._depth
        middle = 2.0 / sum(self._focus_range)
        return self._composite(stack, middle, self.plan["camera"]["f_number"] / gt_f), self._depth

    def _composite(self, stack: SlabStack, focus_m: float, scale: float) -> np.ndarray:
        start = perf_counter()
        rgb = self._with_world(stack.frame(focus_m, scale))
        self.timings["composite"] += perf_counter() - start
        return rgb

    def _with_world(self, rgba: np.ndarray) -> np.ndarray:
        """A composite (RGBA of the frame and the shake's margin) cropped to the frame, over the world's
        uniform colour."""
        s, cam = self._shake_px, self.plan["camera"]
        return self._over_world(rgba[s:s + cam["height"], s:s + cam["width"]])

    def _over_world(self, rgba: np.ndarray) -> np.ndarray:
        """What every slab leaves uncovered shows the world (blur keeps it uniform)."""
        return rgba[..., :3] + (1.0 - rgba[..., 3:]) * self._world

    def _shaken(self, rgba: np.ndarray, rest_to_frame: np.ndarray) -> np.ndarray:
        """The frame of a camera turned about its centre of projection: the rest pose's composite (the
        frame and the shake's margin) through the rotation's homography. Lanczos (8 x 8 taps)
        interpolates the band-limited render without the up-to-half-pixel blur of a bilinear read."""
        s, cam = self._shake_px, self.plan["camera"]
        frame_to_canvas = np.array([[1.0, 0, s], [0, 1.0, s], [0, 0, 1.0]]) @ np.linalg.inv(rest_to_frame)
        out = cv2.warpPerspective(rgba, frame_to_canvas, (cam["width"], cam["height"]),
                                  flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        return np.clip(out, 0.0, None, out=out)   # no negative light or coverage from the taps' ringing

    def _slab_stack(self) -> SlabStack:
        self._tracer._check_open()
        if self._stack is None:
            self._stack = self._render_slabs()
        return self._stack

    def _render_slabs(self) -> SlabStack:
        cam, m, edges = self.plan["camera"], self._margin, self._edges
        # Overscan: same pixel pitch and principal point, a margin of m pixels on every side.
        size = (cam["width"] + 2 * m, cam["height"] + 2 * m)
        corners = [object_corners(o) for o in self.plan["objects"]]
        todo = []
        for k in range(len(self._centres)):
            last = k == len(self._centres) - 1
            lo_d = 0.0 if last else edges[k + 1]
            clip = (1.0 / edges[k] if k else CLIP_START_M, 1.0 / lo_d if lo_d > 1.0 / CLIP_END_M else CLIP_END_M)
            # each object's part within the slab's depths (a tilted object spans many slabs, a strip in each)
            boxes = [box for c in corners if (box := box_within_depths(c, *clip, cam, size)) is not None]
            if boxes:  # else no object reaches this depth range: nothing to trace
                todo.append((*clip, boxes))
        traced = self._tracer.slabs(size, cam["sensor_width_mm"] * size[0] / cam["width"], self._samples, todo,
                                    self._noise_threshold)
        pieces = []
        for rgba, depth, ids, clip in traced:
            pieces += split_by_object(rgba, depth, ids, clip)
        pieces.sort(key=lambda piece: -piece[1])  # nearest first
        pieces = pieces or [(np.zeros((size[1], size[0], 4), np.float32), 0.0, 0)]  # nothing in view
        start = perf_counter()
        blur = m - self._shake_px   # the margin only the blur reads: the composites leave it out
        stack = SlabStack([p[0] for p in pieces], [p[1] for p in pieces], self._ppd,
                          self._focus_range, groups=[p[2] for p in pieces],
                          blades=cam.get("aperture_blades", 0),
                          rotation_rad=math.radians(cam.get("aperture_rotation_deg", 0.0)),
                          workers=self._tracer.workers, visibility_samples=self._visibility,
                          view=(blur, size[1] - blur, blur, size[0] - blur))
        self.timings["composite"] += perf_counter() - start
        return stack

    def background_cpu_s(self) -> float:
        """CPU seconds so far of the threads that composite frames ahead of the caller."""
        return self._stack.pool_cpu.seconds() if self._stack is not None else 0.0

    def close(self) -> None:
        self._tracer.close()

    def __enter__(self) -> "LayeredRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
