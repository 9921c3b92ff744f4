"""The only package that imports bpy: builds a scene plan in Blender and renders it.

    with SceneRenderer(plan, textures, threads=2) as r:
        frames = list(r.sweep())          # (H, W, 3) float32 linear RGB per focus distance
        aif, depth = r.all_in_focus()     # (H, W, 3) float32, (H, W) float32 metres

It depends on nothing in nfs_synth: plans and textures arrive as plain data. Names load on first use
(PEP 562), so `blender_scenes.plan_format` and `validate` are read without starting Blender.
Conventions (camera, depth of field, read-back) are in docs/rendering.md.
"""
import importlib

_WHERE = {"SceneRenderer": "renderer", "SlabTracer": "slab_tracer", "PlanError": "validate",
          "validate_plan": "validate", "read_exr": "exr", "ExrFormatError": "exr",
          "PRIMITIVES": "plan_format", "LIGHT_TYPES": "plan_format", "PLAN_VERSION": "plan_format"}

__all__ = [*_WHERE, "blender_version"]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'blender_scenes' has no attribute {name!r}")
    return getattr(importlib.import_module(f"blender_scenes.{_WHERE[name]}"), name)


def blender_version() -> str:
    """Blender's version string, e.g. '5.0.1', for scene-file provenance."""
    import bpy

    return bpy.app.version_string
