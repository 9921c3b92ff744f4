"""Render result -> numpy: save the render as an uncompressed float EXR on a RAM disk and slice it.

The 'Render Result' image holds no pixels in background mode, so the file round trip is the only
lossless way out (float32 all the way, no view transform: EXR is scene-linear).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import weakref

import bpy
import numpy as np

from .exr import read_exr

_RAM_DISK = "/dev/shm"


def _set_output(scene, depth: bool) -> None:
    """Uncompressed float32 EXR (so exr.read_exr can slice it): RGB alone for sweep frames; a
    multilayer file when the depth pass is wanted, the only kind that carries it."""
    settings = scene.render.image_settings
    settings.media_type = "MULTI_LAYER_IMAGE" if depth else "IMAGE"
    settings.file_format = "OPEN_EXR_MULTILAYER" if depth else "OPEN_EXR"
    if not depth:
        settings.color_mode = "RGB"
    settings.color_depth = "32"
    settings.exr_codec = "NONE"


class Scratch:
    """A private directory on /dev/shm (a tempdir where there is none) for one renderer's EXRs."""

    def __init__(self) -> None:
        ram = os.path.isdir(_RAM_DISK) and os.access(_RAM_DISK, os.W_OK)
        self.path = tempfile.mkdtemp(prefix="nfs_synth_render_", dir=_RAM_DISK if ram else None)
        self.file = os.path.join(self.path, "render.exr")
        # Removed on cleanup(), or when garbage-collected or at exit if nobody called it.
        self._remove = weakref.finalize(self, shutil.rmtree, self.path, ignore_errors=True)

    def read_render(self, scene, depth: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """(H, W, 3) float32 linear RGB and, if asked, (H, W) float32 planar depth, rows top-down."""
        _set_output(scene, depth)
        bpy.data.images["Render Result"].save_render(self.file, scene=scene)
        try:
            channels = read_exr(self.file)
        finally:
            os.remove(self.file)
        if not depth:
            return np.stack([channels[c] for c in "RGB"], axis=-1), None
        layer = f"{scene.view_layers[0].name}."
        rgb = np.stack([channels[f"{layer}Combined.{c}"] for c in "RGB"], axis=-1)
        return rgb, channels[f"{layer}Depth.Z"]

    def cleanup(self) -> None:
        self._remove()
