"""SceneRenderer: one scene plan in Blender/Cycles -> focal-sweep frames, all-in-focus image, depth."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
import weakref
from time import perf_counter

import bpy
import numpy as np

from .build import build_scene
from .readback import Scratch
from .validate import validate_plan


def reset_blender() -> None:
    """Back to an empty factory scene: nothing from a previous scene (data, settings) survives."""
    bpy.ops.wm.read_factory_settings(use_empty=True)


def configure_cycles(scene, render: Mapping, threads: int | None) -> None:
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.samples = render["samples"]
    # Fixed sample count: adaptive sampling would stop at different counts in each frame, so the
    # noise pattern, and with it spurious events downstream, would change along the sweep.
    cycles.use_adaptive_sampling = False
    cycles.use_denoising = bool(render.get("denoise", False))
    cycles.denoiser = "OPENIMAGEDENOISE"
    cycles.max_bounces = render["max_bounces"]
    cycles.filter_width = render["pixel_filter_px"]
    cycles.seed = render["seed"]
    cycles.use_animated_seed = False  # same seed in every frame: Monte Carlo noise does not flicker
    cycles.film_exposure = 2.0 ** render.get("exposure", 0.0)  # stops, baked into the linear data
    scene.render.film_transparent = False
    scene.render.use_compositing = False
    scene.render.use_sequencer = False
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure, scene.view_settings.gamma = 0.0, 1.0
    if threads is not None:
        scene.render.threads_mode = "FIXED"
        scene.render.threads = int(threads)
    else:
        scene.render.threads_mode = "AUTO"


class SceneRenderer:
    """Builds one plan in Blender; renders its focal sweep, all-in-focus image and depth.

    One bpy state per process, so one open renderer at a time; close() (or the context manager)
    resets Blender for the next scene. `timings` holds cumulative seconds for "build" (reset,
    scene construction, settings), "trace" (Cycles) and "readback" (EXR write and read).
    """

    # The open renderer, weakly: one dropped without close() does not lock Blender for good (the
    # next constructor's factory reset clears its scene).
    _open: weakref.ref = lambda: None

    def __init__(self, plan: Mapping, textures: Mapping[str, np.ndarray], *,
                 threads: int | None = None) -> None:
        if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
            raise ValueError(f"threads: expected a positive integer or None, got {threads!r}")
        validate_plan(plan, textures)
        if SceneRenderer._open() is not None:
            raise RuntimeError("another SceneRenderer is open in this process; close() it first")
        self.plan = plan
        self.timings = {"build": 0.0, "trace": 0.0, "readback": 0.0}
        start = perf_counter()
        reset_blender()
        try:
            self._scene = bpy.context.scene
            self._camera = build_scene(plan, textures).data
            configure_cycles(self._scene, plan["render"], threads)
        except BaseException:
            reset_blender()  # leave no half-built scene behind for the next renderer
            raise
        self._scratch = Scratch()
        SceneRenderer._open = weakref.ref(self)
        self.timings["build"] += perf_counter() - start

    def sweep(self) -> Iterator[np.ndarray]:
        """One (H, W, 3) float32 linear RGB frame per planned focus distance, in plan order."""
        moving = "motion" in self.plan
        for i, distance in enumerate(self.plan["sweep"]["focus_distance_m"]):
            self._check_open()
            if moving:   # the keyed camera and objects of frame i (build._animate)
                self._scene.frame_set(i + 1)
            # Set every frame: all_in_focus() may have run between two frames of this generator.
            dof = self._camera.dof
            dof.use_dof = True
            dof.aperture_fstop = self.plan["camera"]["f_number"]
            dof.focus_distance = distance
            yield self._render(depth=False)[0]

    def all_in_focus(self) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) float32 linear RGB and (H, W) float32 planar depth in metres.

        ground_truth.f_number None renders a pinhole image; a number renders with that aperture,
        focused at the dioptric middle of the sweep. Depth always comes from a pinhole render,
        because the Z pass takes one sample per pixel and is noisy under depth of field.
        """
        self._check_open()
        if "motion" in self.plan:
            self._scene.frame_set(0)   # the rest pose
        dof = self._camera.dof
        f_number = self.plan["ground_truth"].get("f_number")
        if f_number is None:
            dof.use_dof = False
            return self._render(depth=True)
        diopters = 1.0 / np.asarray(self.plan["sweep"]["focus_distance_m"], dtype=float)
        dof.use_dof = True
        dof.aperture_fstop = f_number
        dof.focus_distance = 2.0 / (diopters.min() + diopters.max())
        rgb, _ = self._render(depth=False)
        dof.use_dof = False
        cycles = self._scene.cycles
        samples, denoise = cycles.samples, cycles.use_denoising
        cycles.samples, cycles.use_denoising = 1, False  # depth needs one sample, not colour quality
        try:
            _, depth = self._render(depth=True)
        finally:
            cycles.samples, cycles.use_denoising = samples, denoise
        return rgb, depth

    def close(self) -> None:
        """Reset Blender and remove scratch files; safe to call twice."""
        if SceneRenderer._open() is self:
            self._scratch.cleanup()
            reset_blender()
            SceneRenderer._open = lambda: None

    def __enter__(self) -> SceneRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if SceneRenderer._open() is not self:
            raise RuntimeError("this SceneRenderer is closed")

    def _render(self, depth: bool) -> tuple[np.ndarray, np.ndarray | None]:
        self._scene.view_layers[0].use_pass_z = depth
        start = perf_counter()
        bpy.ops.render.render(write_still=False)
        mid = perf_counter()
        out = self._scratch.read_render(self._scene, depth)
        self.timings["trace"] += mid - start
        self.timings["readback"] += perf_counter() - mid
        return out
