"""The only package that imports bpy: builds a scene plan in Blender and renders it.

    with SceneRenderer(plan, textures, threads=2) as r:
        frames = list(r.sweep())          # (H, W, 3) float32 linear RGB per focus distance
        aif, depth = r.all_in_focus()     # (H, W, 3) float32, (H, W) float32 metres

Conventions (camera, depth of field, read-back) are in docs/rendering.md.
"""
import bpy

from .exr import ExrFormatError, read_exr
from .layered import LayeredRenderer, LayeredSettingsError
from .renderer import SceneRenderer
from .validate import LIGHT_TYPES, PRIMITIVES, PlanError, validate_plan

__all__ = ["SceneRenderer", "LayeredRenderer", "LayeredSettingsError", "PlanError", "validate_plan",
           "blender_version", "read_exr", "ExrFormatError", "PRIMITIVES", "LIGHT_TYPES"]


def blender_version() -> str:
    """Blender's version string, e.g. '5.0.1', for scene-file provenance."""
    return bpy.app.version_string
