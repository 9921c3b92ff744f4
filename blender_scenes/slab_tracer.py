"""SlabTracer: the Blender side of the layered engine. Renders one pinhole depth pass and then one slab
at a time: a pinhole render on transparent film whose camera clipping range is the slab's depth range,
so camera rays skip nearer surfaces (the slab holds what they occlude) while shadows, bounces and lighting
still see the whole scene. Planning the slabs and compositing them is bpy-free
(nfs_synth/render/layered/); method, limits and figures: docs/layered.md.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from time import perf_counter

import bpy
import numpy as np

from .exr import read_exr
from .renderer import SceneRenderer


class SlabTracer(SceneRenderer):
    """A built scene (SceneRenderer, whose `timings` it adds to) that renders passes for the compositor."""

    def __init__(self, plan: Mapping, textures: Mapping[str, np.ndarray], *,
                 threads: int | None = None) -> None:
        super().__init__(plan, textures, threads=threads)
        scene = self._scene
        self.workers = scene.render.threads if scene.render.threads_mode == "FIXED" else os.cpu_count()
        # A paper scene's ~115 slab renders each pay ~0.1 CPU-s of fixed cost; keeping the synced scene
        # between them saves ~0.02 of it, with bit-identical slabs (measured, docs/cost.md). The Cycles
        # engine's 480 frames are mostly tracing, and it gained nothing measurable there.
        scene.render.use_persistent_data = True
        for i, spec in enumerate(plan["objects"]):
            bpy.data.objects[spec.get("name", f"obj_{i:03d}")].pass_index = i + 1

    def depth_pass(self) -> np.ndarray:
        """(H, W) planar depth of a one-sample pinhole render; CLIP_END_M where no surface is hit."""
        self._check_open()
        return self._pass(samples=1, transparent=False, depth=True)[1]

    def slabs(self, size: tuple[int, int], sensor_width_mm: float, samples: int,
              slabs: Iterable[tuple[float, float, list]], noise_threshold: float = 0.0) -> Iterator[tuple]:
        """Per slab (clip start m, clip end m, pixel boxes (x0, y0, x1, y1), rows down): its (H, W, 4)
        premultiplied RGBA, planar depth, object pass index, and the clip range as the camera holds it
        (float32), on a canvas of `size` (width, height) with the same pixel pitch as the frame (an
        overscan when larger)."""
        self._check_open()
        scene, data = self._scene, self._camera
        scene.render.resolution_x, scene.render.resolution_y = size
        data.sensor_width = sensor_width_mm
        _cull_back_faces_for_camera(self.plan["objects"])
        # Each slab is traced once for the whole sweep, so pixels that stop early (adaptive sampling) keep
        # one noise pattern in every frame; the frames of the Cycles engine cannot (renderer.py).
        scene.cycles.use_adaptive_sampling = noise_threshold > 0
        scene.cycles.adaptive_threshold = noise_threshold
        scene.cycles.adaptive_min_samples = max(4, samples // 4)   # measured: Cycles' automatic minimum left 32-sample slabs as they were
        try:
            for clip_start, clip_end, boxes in slabs:
                data.clip_start, data.clip_end = clip_start, clip_end
                # Trace only where the slab's objects can project.
                _set_border(scene, boxes, size)
                yield *self._pass(samples=samples, transparent=True, depth=True), (data.clip_start, data.clip_end)
        finally:
            _set_border(scene, None, size)
            scene.cycles.use_adaptive_sampling = False

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
