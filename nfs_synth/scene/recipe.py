"""Recipes: TOML files that say what corpus to make, validated against one schema.

A recipe is resolved into a plain nested dict with every key present (defaults filled in), so later
stages never guess. Validation names the key path and the allowed values; the command-line entry
points turn a `RecipeError` into exit status 2 before anything is created on disk.
"""
from __future__ import annotations

import copy
import difflib
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blender_scenes.plan_format import PRIMITIVES
from nfs_synth.errors import RecipeError, UsageError
from nfs_synth.scene import optics
from nfs_synth.sensors import dvs, spike_params
from nfs_synth.sensors.dvs import PARAM_NAMES, TABLE3_RANGES

# The shipped recipes: recipes/ in a checkout (nfs_synth/recipes links to it), package data when installed.
RECIPES = Path(__file__).resolve().parents[1] / "recipes"
DEFAULT_RECIPE = RECIPES / "quick.toml"


@dataclass(frozen=True)
class Key:
    """One leaf of the schema: its type, default, and allowed values."""

    kind: type | tuple            # bool, int, float, str, list (of `item`), "range" (a [lo, hi] pair)
    default: Any
    lo: float | None = None       # inclusive bounds for numbers (and for list items / range ends)
    hi: float | None = None
    choices: tuple | None = None  # allowed strings (or allowed list items)
    nullable: bool = False        # None (TOML: key absent) allowed
    lo_open: bool = False         # lo is exclusive
    doc: str = ""
    item: type | None = None      # element type for lists



SCHEMA: dict[str, Any] = {
    "corpus": {
        "scenes": Key(int, 4, 1, 10_000_000, doc="number of scenes"),
        "seed": Key(int, 0, 0, 2**63 - 1, doc="corpus seed; scene i uses SeedSequence([seed, i, stream])"),
        "splits": {
            "train": Key(float, 0.8, 0.0, 1.0, doc="fraction of scenes in the training split"),
            "val": Key(float, 0.1, 0.0, 1.0),
            "test": Key(float, 0.1, 0.0, 1.0),
        },
        # the names of nfs_synth.corpus.schema.EVENT_FILTERS (a test keeps them equal)
        "event_compression": Key(str, "gzip", choices=("gzip", "blosc"),
                                 doc="events in gzip (any HDF5 reader) or Blosc zstd (as DSEC stores them)"),
    },
    "camera": {
        "width": Key(int, 128, 16, 8192, doc="image width in pixels"),
        "height": Key(int, 128, 16, 8192),
        "focal_length_mm": Key(float, 100.0, 1.0, 2000.0),
        "f_number": Key(float, 1.2, 0.5, 64.0, doc="aperture of the sweep frames"),
        "sensor_width_mm": Key(float, 36.0, 1.0, 100.0, doc="sensor width; spans the image width"),
        "aperture_blades": Key(int, 0, 0, 16, doc="0 = circular aperture, else polygonal (>= 3)"),
    },
    "sweep": {
        "frames": Key(int, 64, 2, 100_000, doc="frames of the focal sweep"),
        "near_m": Key(float, 0.5, 0.05, 10_000.0, doc="first (nearest) focus distance"),
        "far_m": Key(float, 2.0, 0.05, 10_000.0, doc="last (farthest) focus distance"),
        "duration_s": Key(float, 1.0, 1e-4, 3600.0, lo_open=True, doc="time from first to last frame"),
        "schedule": Key(str, "uniform_diopter",
                        choices=("uniform_diopter", "uniform_distance", "focus_ring"),
                        doc="focus distances over time; focus_ring = uneven, hand-turned speed"),
        "focus_ring_jitter": Key(float, 0.5, 0.0, 0.95,
                                 doc="relative speed variation of the focus_ring schedule"),
    },
    "render": {
        "engine": Key(str, "cycles", choices=("cycles", "layered"),
                      doc="cycles: path-trace every frame; layered: depth slabs blurred per frame"),
        "samples": Key(int, 16, 1, 65536, doc="Cycles samples per pixel"),
        "denoise": Key(bool, False, doc="OpenImageDenoise on every frame"),
        "max_bounces": Key(int, 4, 0, 128),
        "pixel_filter_px": Key(float, 1.0, 0.0, 10.0, doc="Blackman-Harris filter width"),
        "threads": Key(int, 0, 0, 1024, doc="Cycles threads per worker; 0 = all cores"),
        "seed": Key(int, 0, 0, 2**31 - 1, doc="Cycles sampling seed, fixed across the sweep"),
        "layered_slabs": Key(int, 0, 0, 4096, doc="layered engine: depth slabs; 0 = from the tolerance"),
        "layered_tolerance_px": Key(float, 0.5, 0.01, 100.0, lo_open=True,
                                    doc="layered engine: largest blur-diameter error per slab"),
        "layered_samples": Key(int, 32, 1, 65536, doc="layered engine: Cycles samples per slab"),
        "layered_noise_threshold": Key(float, 0.0025, 0.0, 1.0,
                                       doc="layered engine: Cycles adaptive-sampling noise threshold of the "
                                           "slabs (at least a quarter of layered_samples, at most all); "
                                           "0 = every pixel gets them all"),
        "layered_visibility_samples": Key(int, 64, 0, 1024,
                                          doc="layered engine: aperture points for occlusion between "
                                              "blurred objects; 0 = plain over"),
    },
    "ground_truth": {
        "f_number": Key(float, 0.0, 0.0, 1024.0,
                        doc="aperture of the all-in-focus render; 0 = pinhole (no depth of field); the "
                            "layered engine needs 0 or >= camera.f_number"),
    },
    "scene": {
        "objects_min": Key(int, 6, 1, 500),
        "objects_max": Key(int, 10, 1, 500),
        "primitives": Key(list, list(PRIMITIVES), item=str, choices=PRIMITIVES,
                          doc="primitive kinds to draw from"),
        "size_min": Key(float, 0.15, 0.01, 2.0, doc="object size as a fraction of the view width at its depth"),
        "size_max": Key(float, 0.45, 0.01, 2.0),
        "sun_strength": Key("range", [2.5, 4.0], 0.0, 1000.0, doc="sun irradiance (W/m^2), drawn per scene"),
        "ambient": Key("range", [0.15, 0.35], 0.0, 100.0, doc="world background strength, drawn per scene"),
    },
    "textures": {
        "source": Key(str, "bundled", choices=("bundled", "coco")),
        "coco_root": Key(str, None, nullable=True,
                         doc="folder with annotations/instances_<split>.json and <split>/ images"),
        "coco_split": Key(str, "val2017"),
        "coco_categories": Key(list, [], item=str, doc="only images with these category names"),
        "procedural_fraction": Key(float, 0.3, 0.0, 1.0,
                                   doc="share of procedural textures mixed into the bundled source"),
        "max_size": Key(int, 512, 16, 8192, doc="textures are downsampled to this longest side"),
    },
    # the RGB camera of a hybrid rig (sensors/rgb_camera.py); off: frames are the only RGB images
    "rgb_camera": {
        "enabled": Key(bool, False, doc="render at the RGB camera's resolution and store its captures (rgb/)"),
        "scale": Key(int, 1, 1, 8, doc="RGB pixels per neuromorphic pixel along each axis, same field of view"),
        "exposure_frames": Key(int, 1, 1, 100_000, doc="sweep frames one RGB capture integrates"),
        "full_well_e": Key(float, 0.0, 0.0, 1e7, doc="electrons at full white (the clip level); 0 = no noise"),
        "read_noise_e": Key(float, 0.0, 0.0, 1e5, doc="Gaussian read noise, electrons std"),
        "misalign_shift_px": Key(float, 0.0, 0.0, 50.0,
                                 doc="beam-splitter shift between the cameras, drawn per scene within +- this "
                                     "(sensor pixels, each axis)"),
        "misalign_rotation_deg": Key(float, 0.0, 0.0, 10.0, doc="rotation drawn within +- this"),
        "misalign_scale": Key(float, 0.0, 0.0, 0.1, doc="relative magnification drawn within +- this"),
    },
    # motion during the sweep (scene/motion.py); 0 switches each off
    "motion": {
        "shake_px": Key(float, 0.0, 0.0, 50.0,
                        doc="hand-held shake: RMS image motion of the frame centre over the sweep, sensor pixels "
                            "(the camera turning about its centre of projection)"),
        "shake_hz": Key(float, 2.0, 0.05, 100.0, doc="bandwidth of the shake path: std of its Gaussian spectrum"),
        "shake_roll_deg": Key(float, 0.0, 0.0, 10.0, doc="RMS roll about the optical axis"),
        "shake_translation_mm": Key(float, 0.0, 0.0, 1000.0,
                                    doc="RMS camera translation (parallax: rendered with Cycles, also when "
                                        "render.engine = layered)"),
        "object_motion_px": Key(float, 0.0, 0.0, 1000.0,
                                doc="each object moves sideways along a line, up to this many sensor pixels over "
                                    "the sweep (drawn per object; rendered with Cycles)"),
    },
    "sensors": {
        "events": {
            "enabled": Key(bool, True),
            "preset": Key(str, "random", choices=("random", "DVS346", "DVS240"),
                          doc="'random' draws k1..k6 per scene from `ranges`"),
            **{k: Key(float, None, 0.0, 1e6, nullable=True, lo_open=k in dvs.POSITIVE,
                      doc=f"explicit {k}, overrides the preset or the random draw") for k in PARAM_NAMES},
            "ranges": {k: Key("range", list(v), 0.0, 1e6, lo_open=k in dvs.POSITIVE)
                       for k, v in TABLE3_RANGES.items()},
            "random_initial_residual": Key(bool, False, doc="no lock-step leak events at the start"),
            "log_drift": Key(bool, False, doc="split-invariant k1*ln((L1+k2)/(L0+k2))/dt drift"),
            "quantize_8bit": Key(bool, False, doc="round gray frames to 8 bits, like a PNG pipeline"),
            "intensity": Key(str, "srgb_luminance", choices=("srgb_luminance", "linear_luminance"),
                             doc="linear RGB -> 0..255 gray conversion"),
            # sensor non-idealities beside the model (sensors/event_nonideal.py); 0 switches each off
            "nonideal": {k: Key(float, 0.0, 0.0, hi, doc=doc) for k, (hi, doc) in dvs.NONIDEAL_LIMITS.items()},
        },
        "spikes": {
            "enabled": Key(bool, True),
            "preset": Key(str, "vidar_250x400", choices=("vidar_250x400", "ideal")),
            "readout_hz": Key(float, 20_000.0, 1.0, 1e7, doc="readout steps per second; at least the preset's dark spike rate (vidar_250x400: 93)"),
            "threshold": Key(float, 1.0, 1e-6, 1e6, lo_open=True, doc="integrate-and-fire threshold phi"),
            "reset": Key(str, "subtract", choices=("subtract", "zero")),
            "initial_charge": Key(str, "random", choices=("random", "zero")),
            "interpolation": Key(str, "linear", choices=("linear", "hold")),
            "intensity_scale": Key(float, 1.0, 0.0, 1e6, lo_open=True,
                                   doc="gain on linear luminance before the clip at full white: full white is radiance "
                                       "1 / scale, so 2 doubles the spike rate and 0.5 halves it"),
        },
    },
}


# ---------------------------------------------------------------- loading and overrides

def load_recipe(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """Read a TOML recipe (default: recipes/quick.toml; a bare name such as `paper` or `paper.toml` that
    is no file here names a shipped recipe), apply `key.path=value` overrides, validate."""
    path = Path(path) if path is not None else DEFAULT_RECIPE
    shipped = RECIPES / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if not path.is_file() and path.name == str(path) and shipped.is_file():
        path = shipped
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in RECIPES.glob("*.toml")))
        raise RecipeError(f"recipe file not found: {path} (shipped recipes: {names})")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise RecipeError(f"{path}: not valid TOML: {err}") from None
    overridden = {}
    for item in overrides or []:
        overridden[apply_override(raw, item)] = f"--set {item}"
    return validate(raw, source=str(path), overridden=overridden)


def parse_override(item: str) -> tuple[list[str], Any]:
    """`sweep.frames=48` -> (['sweep', 'frames'], 48). Values are TOML literals; bare words are strings."""
    if "=" not in item:
        raise RecipeError(f"--set {item!r}: expected KEY=VALUE, e.g. --set sweep.frames=48")
    key, text = item.split("=", 1)
    parts = [p.strip() for p in key.strip().split(".")]
    if not all(parts):
        raise RecipeError(f"--set {item!r}: empty key path")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return parts, value


def apply_override(raw: dict, item: str) -> str:
    """Set `key.path=value` in the raw recipe; returns the dotted key."""
    parts, value = parse_override(item)
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise RecipeError(f"--set {item!r}: '{part}' is a value, not a table")
        node = child
    node[parts[-1]] = value
    return ".".join(parts)


# ---------------------------------------------------------------- validation

def validate(raw: dict, source: str = "recipe", overridden: dict[str, str] | None = None) -> dict:
    """Return the resolved recipe (all keys, defaults filled) or raise RecipeError naming the key and
    where its value came from: `source`, or the `--set` item in `overridden` (dotted key -> item)."""
    resolved = _validate_table(raw, SCHEMA, [], source, overridden or {})
    _check_cross_fields(resolved, source, overridden or {})
    return resolved


def _validate_table(raw: Any, schema: dict, path: list[str], source: str, overridden: dict[str, str]) -> dict:
    where = ".".join(path) or "top level"
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: '{where}' must be a table, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        name = ".".join(path + [unknown[0]])
        close = difflib.get_close_matches(unknown[0], list(schema), n=1)
        hint = f" (did you mean '{'.'.join(path + close)}'?)" if close else \
            f" (known keys under {where}: {', '.join(sorted(schema))})"
        raise RecipeError(f"{overridden.get(name, source)}: unknown key '{name}'{hint}")
    out = {}
    for name, spec in schema.items():
        sub = path + [name]
        if isinstance(spec, dict):
            out[name] = _validate_table(raw.get(name, {}), spec, sub, source, overridden)
        else:
            key = ".".join(sub)
            out[name] = _check_value(raw[name], spec, key, overridden.get(key, source)) if name in raw \
                else copy.deepcopy(spec.default)
    return out


def _type_name(kind) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", "range": "a [min, max] pair"}[kind]


def _check_number(value, spec: Key, key: str, source: str, kind) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (kind is int and not isinstance(value, int)):
        raise RecipeError(f"{source}: '{key}' must be {_type_name(kind)}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(f"{source}: '{key}' must be finite, got {value!r}")
    below = spec.lo is not None and (value <= spec.lo if spec.lo_open else value < spec.lo)
    above = spec.hi is not None and value > spec.hi
    if below or above:
        raise RecipeError(f"{source}: '{key}' = {value!r} is out of range; allowed {_bounds(spec)}")
    return float(value) if kind is float else int(value)


def _bounds(spec: Key) -> str:
    """`[2, 100000]`, `(0, 1e+06]`: as the reference table and the error messages print them."""
    fmt = (lambda v: str(int(v))) if spec.kind is int else (lambda v: f"{v:g}")
    return f"{'(' if spec.lo_open else '['}{fmt(spec.lo)}, {fmt(spec.hi)}]"


def _check_value(value, spec: Key, key: str, source: str):
    if value is None and spec.nullable:
        return None
    kind = spec.kind
    if kind in (int, float):
        return _check_number(value, spec, key, source, kind)
    if kind is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{source}: '{key}' must be true or false, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise RecipeError(f"{source}: '{key}' must be a string, got {value!r}")
        if spec.choices and value not in spec.choices:
            raise RecipeError(f"{source}: '{key}' = {value!r} is not allowed; choose one of "
                              f"{', '.join(map(repr, spec.choices))}")
        return value
    if kind == "range":
        if not (isinstance(value, list) and len(value) == 2):
            raise RecipeError(f"{source}: '{key}' must be {_type_name(kind)}, got {value!r}")
        lo, hi = (_check_number(v, spec, key, source, float) for v in value)
        if lo > hi:
            raise RecipeError(f"{source}: '{key}' = {value!r}: min is larger than max")
        return [lo, hi]
    if kind is list:
        if not isinstance(value, list):
            raise RecipeError(f"{source}: '{key}' must be a list, got {value!r}")
        for v in value:
            if not isinstance(v, spec.item):
                raise RecipeError(f"{source}: '{key}' items must be {_type_name(spec.item)}, got {v!r}")
            if spec.choices and v not in spec.choices:
                raise RecipeError(f"{source}: '{key}' item {v!r} is not allowed; choose from "
                                  f"{', '.join(map(repr, spec.choices))}")
        return list(value)
    raise AssertionError(f"schema kind {kind!r}")


def _check_cross_fields(r: dict, source: str, overridden: dict[str, str]) -> None:
    sweep, scene, tex = r["sweep"], r["scene"], r["textures"]
    if sweep["near_m"] >= sweep["far_m"]:
        raise RecipeError(f"{source}: 'sweep.near_m' ({sweep['near_m']}) must be smaller than "
                          f"'sweep.far_m' ({sweep['far_m']})")
    f_m = r["camera"]["focal_length_mm"] / 1000.0
    if sweep["near_m"] <= f_m:
        raise RecipeError(f"{source}: 'sweep.near_m' ({sweep['near_m']} m) must be beyond the focal "
                          f"length ({f_m} m)")
    if r["camera"]["aperture_blades"] in (1, 2):
        raise RecipeError(f"{source}: 'camera.aperture_blades' must be 0 (circular) or 3..16")
    if r["rgb_camera"]["exposure_frames"] > sweep["frames"]:
        raise RecipeError(f"{source}: 'rgb_camera.exposure_frames' ({r['rgb_camera']['exposure_frames']}) "
                          f"is more than the sweep's {sweep['frames']} frames")
    if scene["objects_min"] > scene["objects_max"]:
        raise RecipeError(f"{source}: 'scene.objects_min' is larger than 'scene.objects_max'")
    if scene["size_min"] > scene["size_max"]:
        raise RecipeError(f"{source}: 'scene.size_min' is larger than 'scene.size_max'")
    if not scene["primitives"]:
        raise RecipeError(f"{source}: 'scene.primitives' must name at least one primitive")
    splits = r["corpus"]["splits"]
    if abs(sum(splits.values()) - 1.0) > 1e-6:
        raise RecipeError(f"{source}: 'corpus.splits' fractions must add up to 1, got "
                          f"{sum(splits.values()):.6g}")
    if tex["source"] == "coco" and not tex["coco_root"]:
        raise RecipeError(f"{source}: 'textures.coco_root' is required when textures.source = 'coco'")
    # The simulators' and the engine's own checks, so that no value fails only at render time.
    gt_f = r["ground_truth"]["f_number"]
    checks = [("sensors.events", lambda: dvs.check_section(r["sensors"]["events"])),
              ("sensors.spikes", lambda: spike_params.check_section(r["sensors"]["spikes"]))]
    if r["render"]["engine"] == "layered":
        checks.append(("", lambda: optics.check_layered_apertures(r["camera"]["f_number"], gt_f or None)))
    for table, check in checks:
        try:
            check()
        except UsageError as err:
            key = ".".join(filter(None, (table, err.key))) or table
            raise RecipeError(f"{overridden.get(key, source)}: '{key}': {err}", key=key) from None


# Tables added after corpora were made, recorded only where they differ from their defaults (off): the
# recipes, manifests and content hashes of corpora made before them stay what they were, and such a
# corpus can still grow.
RECORDED_WHEN_SET = ("motion",)


def to_json(recipe: dict) -> str:
    """Canonical JSON of a resolved recipe (stored in the manifest)."""
    recorded = {k: v for k, v in recipe.items()
                if not (k in RECORDED_WHEN_SET and v == {name: spec.default for name, spec in SCHEMA[k].items()})}
    return json.dumps(recorded, sort_keys=True, separators=(",", ":"))


def scene_recipe_json(recipe: dict) -> str:
    """The recipe as a scene file records it: without `corpus.scenes`, which counts a scene's siblings
    and does not shape the scene, so a corpus that grows keeps its files and equals a fresh one."""
    return to_json(recipe | {"corpus": {k: v for k, v in recipe["corpus"].items() if k != "scenes"}})


def flat_keys(schema: dict = SCHEMA, prefix: str = "") -> list[tuple[str, Key]]:
    """Every leaf key path with its spec, for the README's recipe reference."""
    out = []
    for name, spec in schema.items():
        if isinstance(spec, dict):
            out += flat_keys(spec, f"{prefix}{name}.")
        else:
            out.append((prefix + name, spec))
    return out


def reference_markdown() -> str:
    """The README's recipe reference table (`python -m nfs_synth.scene.recipe`)."""
    rows = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for path, spec in flat_keys():
        kind = spec.kind if isinstance(spec.kind, str) else spec.kind.__name__
        if spec.choices:
            allowed = ", ".join(spec.choices)
        elif spec.lo is not None:
            allowed = _bounds(spec)
        else:
            allowed = ""
        default = json.dumps(spec.default)
        rows.append(f"| `{path}` | {kind} | `{default}` | {allowed} | {spec.doc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(reference_markdown())
