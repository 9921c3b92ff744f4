"""The registry of all-in-focus methods the evaluation can run.

A method is a callable ``fn(scene: EvalScene, input_index: int, options: dict) -> (H, W, 3) float32``
returning an sRGB image in [0, 1]; ``input_index`` is the frame used as the single defocused input and
``options`` holds ``key=value`` settings from the command line (a method reads the keys it knows, and
declares them at registration: the evaluation rejects a key no chosen method reads, so a misspelt one
cannot silently change nothing). Other modules add methods with ``register_method(name, fn,
options=...)``; modules named in ``PLUGIN_MODULES`` are imported on first lookup so that their
``register_method`` calls run (the learned methods live there).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable

import numpy as np

from nfs_synth.aif.handcraft import HandcraftOptions, handcraft_events, handcraft_spikes
from nfs_synth.aif.merge import laplacian_energy_fusion, laplacian_pyramid_fusion
from nfs_synth.aif.scene import EvalScene
from nfs_synth.errors import UsageError

Method = Callable[[EvalScene, int, dict], np.ndarray]

# Modules that register further methods when imported; a missing one (e.g. not written yet) is skipped.
PLUGIN_MODULES = ("nfs_synth.aif.learned",)

_METHODS: dict[str, Method] = {}
_OPTIONS: dict[str, frozenset[str]] = {}
_plugins_loaded = False


def register_method(name: str, fn: Method, *, replace: bool = False, options=()) -> None:
    """Make ``fn`` available to ``nfs-synth evaluate --methods NAME``; ``options``: the keys it reads."""
    if not name or "," in name or name.strip() != name:
        raise UsageError(f"invalid method name {name!r}")
    if name in _METHODS and not replace:
        raise UsageError(f"method {name!r} is already registered")
    _METHODS[name] = fn
    _OPTIONS[name] = frozenset(options)


def method_options(name: str) -> frozenset[str]:
    """The --option keys method ``name`` reads (as registered)."""
    get_method(name)
    return _OPTIONS[name]


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in PLUGIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:  # the plugin exists but one of its imports is missing: say so
                raise


def available_methods() -> list[str]:
    _load_plugins()
    return sorted(_METHODS)


def get_method(name: str) -> Method:
    _load_plugins()
    if name not in _METHODS:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _parse(key: str, raw, default):
    if not isinstance(raw, str):
        return raw
    try:
        if isinstance(default, bool):
            return _BOOLS[raw.lower()]
        if isinstance(default, tuple):  # e.g. threshold_candidates=0.15;0.2;0.25
            return tuple(float(v) for v in raw.split(";"))
        return type(default)(raw)
    except (KeyError, ValueError):
        raise UsageError(f"option {key}={raw!r}: expected a {type(default).__name__} like {default!r}") from None


def handcraft_options(options: dict, **fixed) -> HandcraftOptions:
    """HandcraftOptions from the string options of the command line (unknown keys are left to others)."""
    defaults = HandcraftOptions()
    values = {f.name: _parse(f.name, options[f.name], getattr(defaults, f.name))
              for f in dataclasses.fields(HandcraftOptions) if f.name in options}
    return HandcraftOptions(**{**values, **fixed})


def _event_options(scene: EvalScene, options: dict, **fixed) -> HandcraftOptions:
    # The sensor's own conventions, when the scene file records them, unless the user overrides them.
    attrs = scene.event_attrs
    recorded = {}
    if "intensity" in attrs:
        recorded["event_intensity"] = str(attrs["intensity"])
    if "k2" in attrs:
        recorded["log_offset"] = float(attrs["k2"]) / 255.0
    return handcraft_options({**recorded, **options}, **fixed)


def _input(scene: EvalScene, i: int, options: dict) -> np.ndarray:
    return scene.frame_srgb(i)


def _handcraft_ev(scene, i, options, **fixed):
    opts = _event_options(scene, options, **fixed)
    stack = scene.event_stack(int(options.get("event_subdivisions", 2)))
    return handcraft_events(scene.frame(i), int(scene.timestamps_us[i]), stack, opts).image


def _handcraft_sp(scene, i, options, **fixed):
    opts = handcraft_options(options, **fixed)
    stack = scene.spike_stack(int(options.get("spike_cells_per_frame", 4)))
    return handcraft_spikes(scene.frame(i), int(scene.timestamps_us[i]), stack, opts).image


def _uniform_count(options: dict) -> int:
    # Same number of refocused images as the N x N patch search can produce.
    return int(options.get("uniform", int(options.get("grid", HandcraftOptions().grid)) ** 2))


_HANDCRAFT = {f.name for f in dataclasses.fields(HandcraftOptions)}
register_method("input", _input)
register_method("handcraft-ev", _handcraft_ev, options=_HANDCRAFT | {"event_subdivisions"})
register_method("handcraft-sp", _handcraft_sp, options=_HANDCRAFT | {"spike_cells_per_frame"})
register_method("uniform-ev", lambda s, i, o: _handcraft_ev(s, i, o, uniform=_uniform_count(o)),
                options=_HANDCRAFT | {"event_subdivisions"})
register_method("uniform-sp", lambda s, i, o: _handcraft_sp(s, i, o, uniform=_uniform_count(o)),
                options=_HANDCRAFT | {"spike_cells_per_frame"})
register_method("stack-laplacian", lambda s, i, o: laplacian_energy_fusion(s.frames_srgb)[0])
register_method("stack-pyramid", lambda s, i, o: laplacian_pyramid_fusion(s.frames_srgb))

__all__ = ["EvalScene", "Method", "available_methods", "get_method", "handcraft_options", "register_method"]
