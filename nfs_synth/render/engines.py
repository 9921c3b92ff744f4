"""The render engines a recipe can name (`render.engine`) and the renderer class of each.

Every renderer takes (plan, textures, threads=) and offers sweep(), all_in_focus(), `timings`, close()
and the context manager; the layered one also reports its `settings`. Blender loads only when a
renderer is asked for."""
from __future__ import annotations

from nfs_synth.errors import UsageError


def _cycles():
    from blender_scenes import SceneRenderer

    return SceneRenderer


def _layered():
    from nfs_synth.render.layered.renderer import LayeredRenderer

    return LayeredRenderer


ENGINES = {"cycles": _cycles, "layered": _layered}


def renderer_class(engine: str):
    if engine not in ENGINES:
        raise UsageError(f"unknown render engine {engine!r}; expected one of {sorted(ENGINES)}")
    return ENGINES[engine]()


def blender_version() -> str:
    from blender_scenes import blender_version as version

    return version()
