"""LayeredRenderer: a focal sweep from K depth slabs path-traced once, blurred and composited per frame.

Each slab is a pinhole render on transparent film whose camera clipping range is the slab's depth
range, so camera rays skip nearer surfaces (the slab holds what they occlude) while shadows, bounces and
lighting still see the whole scene. Slabs are rendered with an overscan margin as wide as the largest
blur radius, so blur near the frame edges draws on real content, as a lens would, and are cut into one
piece per object by the object-index pass. Method, limits and figures: docs/layered.md.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from time import perf_counter

import bpy
import numpy as np
from scipy.ndimage import distance_transform_edt

from nfs_synth.render.layered_composite import LayeredSettingsError, SlabStack, slab_count, slab_edges
from nfs_synth.scene.optics import blur_diameter_px

from .build import CLIP_END_M, CLIP_START_M
from .exr import read_exr
from .renderer import SceneRenderer

MAX_SLABS = 4096
FILTER_MARGIN_PX = 2  # the pixel filter reaches a little past the blur radius
# Half extents of each primitive's bounding box at unit scale (sizes in nfs_synth/scene/plan.py's docstring).
_HALF_EXTENT = {"cube": (1, 1, 1), "plane": (1, 1, 0), "uv_sphere": (1, 1, 1), "ico_sphere": (1, 1, 1),
                "cylinder": (1, 1, 1), "cone": (1, 1, 1), "torus": (1.25, 1.25, 0.25)}


def _count(render: Mapping, key: str, default: int) -> int:
    value = render.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise LayeredSettingsError(f"render.{key}: expected an integer >= 0, got {value!r}")
    return int(value)


class LayeredRenderer(SceneRenderer):
    """SceneRenderer's interface (sweep, all_in_focus, timings, close) from depth slabs.

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
        if samples < 1 or slabs > MAX_SLABS:
            raise LayeredSettingsError(f"render.layered_samples must be >= 1 and render.layered_slabs "
                                       f"<= {MAX_SLABS}; got {samples} and {slabs}")
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance > 0:
            raise LayeredSettingsError(f"render.layered_tolerance_px must be > 0, got {tolerance!r}")
        super().__init__(plan, textures, threads=threads)
        try:
            self._plan_slabs(slabs, float(tolerance), samples, visibility)
        except BaseException:
            self.close()
            raise

    def _plan_slabs(self, slabs: int, tolerance: float, samples: int, visibility: int) -> None:
        cam, scene = self.plan["camera"], self._scene
        gt_f = self.plan["ground_truth"].get("f_number")
        if gt_f is not None and gt_f < cam["f_number"]:
            raise LayeredSettingsError("the layered engine needs ground_truth.f_number >= camera.f_number "
                                       "(or none): its slabs are padded for the sweep's blur")
        self.timings["composite"] = 0.0
        self._workers = scene.render.threads if scene.render.threads_mode == "FIXED" else os.cpu_count()
        self._ppd = float(blur_diameter_px(1.0, np.inf, cam["focal_length_mm"], cam["f_number"],
                                           cam["sensor_width_mm"], cam["width"]))
        for i, spec in enumerate(self.plan["objects"]):
            bpy.data.objects[spec.get("name", f"obj_{i:03d}")].pass_index = i + 1
        _, depth, _ = self._pass(samples=1, transparent=False, depth=True)
        self._depth = depth
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
        self._samples, self._visibility = samples, visibility
        self._stack: SlabStack | None = None
        world = self.plan["world"]
        self._world = np.float32(world["strength"] * 2.0 ** self.plan["render"].get("exposure", 0.0)) \
            * np.asarray(world["color"], np.float32)
        self.settings = {
            "engine": "layered", "layered_slabs": count, "layered_tolerance_px": tolerance,
            "layered_samples": samples, "layered_visibility_samples": visibility,
            "layered_slab_edges_diopter": self._edges.tolist(),
            "layered_max_blur_error_px": 0.5 * self._ppd * (self._edges[0] - self._edges[1]),
            "layered_overscan_px": self._margin,
            "layered_denoise": False,
        }

    def sweep(self) -> Iterator[np.ndarray]:
        """One (H, W, 3) float32 linear RGB frame per planned focus distance, in plan order."""
        frames = self._slab_stack().frames(self.plan["sweep"]["focus_distance_m"])
        while True:
            self._check_open()
            start = perf_counter()
            rgba = next(frames, None)
            if rgba is None:
                return
            rgb = self._with_world(rgba)
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
        """A composite (overscanned RGBA) cropped to the frame, over the world's uniform colour (what
        every slab leaves uncovered shows the world; blur keeps it uniform)."""
        m, cam = self._margin, self.plan["camera"]
        rgba = rgba[m:m + cam["height"], m:m + cam["width"]]
        return rgba[..., :3] + (1.0 - rgba[..., 3:]) * self._world

    def _slab_stack(self) -> SlabStack:
        self._check_open()
        if self._stack is None:
            self._stack = self._render_slabs()
        return self._stack

    def _render_slabs(self) -> SlabStack:
        cam, scene, data = self.plan["camera"], self._scene, self._camera
        m, edges = self._margin, self._edges
        # Overscan: same pixel pitch and principal point, a margin of m pixels on every side.
        size = (cam["width"] + 2 * m, cam["height"] + 2 * m)
        scene.render.resolution_x, scene.render.resolution_y = size
        data.sensor_width = cam["sensor_width_mm"] * size[0] / cam["width"]
        _cull_back_faces_for_camera(self.plan["objects"])
        bounds = [_bounds(o, cam, size) for o in self.plan["objects"]]
        pieces = []
        for k in range(len(self._centres)):
            last = k == len(self._centres) - 1
            lo_d, hi_d = (0.0 if last else edges[k + 1]), (np.inf if k == 0 else edges[k])
            boxes = [box for d_lo, d_hi, box in bounds if d_lo <= hi_d and d_hi >= lo_d]
            if not boxes:
                continue  # no object reaches this depth range: nothing to trace
            data.clip_start = 1.0 / hi_d if k else CLIP_START_M
            data.clip_end = 1.0 / lo_d if lo_d > 1.0 / CLIP_END_M else CLIP_END_M
            # Trace only where the slab's objects can project.
            _set_border(scene, boxes, size)
            rgba, depth, ids = self._pass(samples=self._samples, transparent=True, depth=True)
            pieces += _split_by_object(rgba, depth, ids, (data.clip_start, data.clip_end))
        _set_border(scene, None, size)
        pieces.sort(key=lambda piece: -piece[1])  # nearest first
        pieces = pieces or [(np.zeros((size[1], size[0], 4), np.float32), 0.0, 0)]  # nothing in view
        start = perf_counter()
        stack = SlabStack([p[0] for p in pieces], [p[1] for p in pieces], self._ppd,
                          self._focus_range, groups=[p[2] for p in pieces],
                          blades=cam.get("aperture_blades", 0),
                          rotation_rad=math.radians(cam.get("aperture_rotation_deg", 0.0)),
                          workers=self._workers, visibility_samples=self._visibility)
        self.timings["composite"] += perf_counter() - start
        return stack

    def _pass(self, samples: int, transparent: bool, depth: bool) -> tuple:
        """One pinhole render: (H, W, 4) premultiplied RGBA and, if asked, (H, W) planar depth and
        (H, W) object pass index (0: none; from the first sample, so not antialiased)."""
        scene = self._scene
        # No denoiser: it smears the slabs' antialiased edges (measured: 1-3 dB worse sweeps).
        scene.cycles.samples, scene.cycles.use_denoising = samples, False
        scene.render.film_transparent = transparent
        scene.view_layers[0].use_pass_z = depth
        scene.view_layers[0].use_pass_object_index = depth
        self._camera.dof.use_dof = False
        # Multilayer EXR: the only kind that carries alpha and depth together (readback writes RGB).
        out = scene.render.image_settings
        out.media_type, out.file_format = "MULTI_LAYER_IMAGE", "OPEN_EXR_MULTILAYER"
        out.color_depth, out.exr_codec = "32", "NONE"
        start = perf_counter()
        bpy.ops.render.render(write_still=False)
        mid = perf_counter()
        bpy.data.images["Render Result"].save_render(self._scratch.file, scene=scene)
        try:
            channels = read_exr(self._scratch.file)
        finally:
            os.remove(self._scratch.file)
        layer = f"{scene.view_layers[0].name}."
        rgba = np.stack([channels[f"{layer}Combined.{c}"] for c in "RGBA"], axis=-1)
        self.timings["trace"] += mid - start
        self.timings["readback"] += perf_counter() - mid
        if not depth:
            return rgba, None, None
        return rgba, channels[f"{layer}Depth.Z"], np.rint(channels[f"{layer}Object Index.X"]).astype(np.int64)


def _cull_back_faces_for_camera(objects) -> None:
    """Camera rays pass through the back faces of closed objects; shadow and bounce rays still hit them.

    A slab's near clip cuts closed objects open, and camera rays would then see their insides: a
    surface no lens ray can reach, which would make defocused objects too opaque. A full render never
    shows those faces, so nothing else changes. Planes are open: both their sides stay visible.
    """
    for i, spec in enumerate(objects):
        if spec["primitive"] == "plane":
            continue
        tree = bpy.data.objects[spec.get("name", f"obj_{i:03d}")].active_material.node_tree
        out = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeOutputMaterial")
        link = out.inputs["Surface"].links[0]
        mix = tree.nodes.new("ShaderNodeMixShader")
        hide = tree.nodes.new("ShaderNodeMath")
        hide.operation = "MULTIPLY"
        tree.links.new(tree.nodes.new("ShaderNodeNewGeometry").outputs["Backfacing"], hide.inputs[0])
        tree.links.new(tree.nodes.new("ShaderNodeLightPath").outputs["Is Camera Ray"], hide.inputs[1])
        tree.links.new(hide.outputs["Value"], mix.inputs["Fac"])
        tree.links.new(link.from_socket, mix.inputs[1])
        tree.links.new(tree.nodes.new("ShaderNodeBsdfTransparent").outputs["BSDF"], mix.inputs[2])
        tree.links.new(mix.outputs["Shader"], out.inputs["Surface"])


def _bounds(spec: Mapping, cam: Mapping, size: tuple[int, int]) -> tuple[float, float, tuple]:
    """An object's diopter range and pixel box (x0, y0, x1, y1, rows down) on the overscan canvas,
    from the corners of its oriented bounding box."""
    half = np.array(_HALF_EXTENT[spec["primitive"]]) * np.abs(spec["scale"])
    corners = half * np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)])
    ax, ay, az = spec["rotation_euler_rad"]
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    world = corners @ (rz @ ry @ rx).T + spec["location_m"]  # Blender's XYZ Euler: X first
    depth = -world[:, 2]
    if depth.min() <= CLIP_START_M:  # reaches the camera: anywhere in the image, any near depth
        return 1.0 / depth.max() if depth.max() > 0 else 0.0, np.inf, (0, 0, *size)
    fpx = cam["focal_length_mm"] / cam["sensor_width_mm"] * cam["width"]
    u = size[0] / 2 + fpx * world[:, 0] / depth
    v = size[1] / 2 - fpx * world[:, 1] / depth
    box = (math.floor(u.min()) - FILTER_MARGIN_PX, math.floor(v.min()) - FILTER_MARGIN_PX,
           math.ceil(u.max()) + FILTER_MARGIN_PX, math.ceil(v.max()) + FILTER_MARGIN_PX)
    box = tuple(int(np.clip(c, 0, size[i % 2])) for i, c in enumerate(box))
    return 1.0 / depth.max(), 1.0 / depth.min(), box


def _set_border(scene, boxes, size: tuple[int, int]) -> None:
    """Render only the union of pixel boxes (None: the whole frame). Blender's border is bottom-up."""
    scene.render.use_border = boxes is not None
    scene.render.use_crop_to_border = False
    if boxes is None:
        return
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    scene.render.border_min_x, scene.render.border_max_x = x0 / size[0], x1 / size[0]
    scene.render.border_min_y, scene.render.border_max_y = 1.0 - y1 / size[1], 1.0 - y0 / size[1]


def _split_by_object(rgba: np.ndarray, depth: np.ndarray, ids: np.ndarray,
                     clip: tuple[float, float]) -> list[tuple[np.ndarray, float, int]]:
    """A slab cut into one piece per object: (RGBA, diopter to blur it for, object index).

    Pieces of one object composite additively (they tile its surface), different objects with
    "over" (see layered_composite). Covered pixels without an index (the first sample, which writes
    it, missed an antialiased edge or seam) join the nearest indexed pixel.
    """
    covered = rgba[..., 3] > 0
    surface = covered & (depth >= clip[0]) & (depth <= clip[1])
    labelled = covered & (ids > 0)
    if labelled.any() and (covered & ~labelled).any():
        nearest = distance_transform_edt(~labelled, return_distances=False, return_indices=True)
        ids = ids[nearest[0], nearest[1]]
    ids = np.where(covered, ids, 0)  # a slab with no index at all stays one piece (index 0)
    pieces = []
    for obj in np.unique(ids[covered]):
        mask = ids == obj
        inside = mask & surface & (rgba[..., 3] > 0.5)
        # blurred for the mean depth of what it holds: a plane is then blurred exactly, and the
        # slab's width only bounds the error
        diopter = float(np.mean(1.0 / depth[inside])) if inside.any() else 2.0 / sum(clip)
        pieces.append((rgba * mask[..., None], diopter, int(obj)))
    return pieces
