"""Sensor studies: re-run the sensor simulators on a corpus's stored renders over a parameter grid.

    STUDY/study.json                 the source corpus, the grid, the variants and their parameters
    STUDY/v000/manifest.json         each variant is a corpus of its own (recipe = source + its point)
    STUDY/v000/scenes/scene_NNNNN.h5 the streams of the sensors the grid changes; everything else
                                     (frames, all_in_focus, depth_m, timestamps, camera, and the stream
                                     of a sensor the grid leaves alone, e.g. spikes in a k1 study) is an
                                     HDF5 external link to the source scene file: nothing is copied,
                                     rendered or simulated twice. `--copy`: self-contained files instead.

Variant files carry `study_params_json`, `source_file` (relative to the variant file, as the links
are) and `source_sha256` (the source's content hash from its manifest). Keep the study next to its
corpus, or move both together: the links are relative. A variant's content hash covers what the file
holds itself (its own streams and attributes, `source_sha256` among them); linked data is covered by the
source's hash.
"""
from __future__ import annotations

import copy
import itertools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import h5py

from nfs_synth.corpus.atomic import atomic_path, write_text
from nfs_synth.corpus.scene_file import SceneReader, provenance_attrs
from nfs_synth.errors import RecipeError, SceneFileError
from nfs_synth.corpus.manifest import corpus_manifest
from nfs_synth.run.ledger import Ledger
from nfs_synth.run.driver_lock import driver_lock
from nfs_synth.run.orchestrate import FileUnit, clean_stale_temporaries, damage, interrupted, pending, run_units
from nfs_synth.run.pipeline import SensorRig, scene_entry, scene_path
from nfs_synth.scene.recipe import apply_override, parse_override, scene_recipe_json, validate

STUDY_FILE = "study.json"
SENSOR_OUTPUTS = {"events": ("events", "ms_to_idx", "t_offset"), "spikes": ("spikes",)}   # file entries


def changed_sensors(grid: dict[str, list]) -> tuple[str, ...]:
    """The sensors whose streams the grid changes: those its keys name (any other sensors.* key: both)."""
    named = {key.split(".")[1] for key in grid}
    return tuple(s for s in SENSOR_OUTPUTS if s in named or not named <= set(SENSOR_OUTPUTS))


def parse_grid(items: list[str]) -> dict[str, list]:
    """`--set sensors.events.k1=4.0,4.5` (repeatable) -> {'sensors.events.k1': [4.0, 4.5]}."""
    grid = {}
    for item in items:
        key, _, text = item.partition("=")
        key, parts = key.strip(), [p.strip() for p in _split_top_level(text)]
        if not key.startswith("sensors.") or "" in parts:
            raise RecipeError(f"--set {item!r}: expected sensors.KEY=V1[,V2...]; only sensor keys can "
                              "change without re-rendering")
        grid[key] = [parse_override(f"{key}={p}")[1] for p in parts]
    if not grid:
        raise RecipeError("give at least one --set sensors.KEY=V1,V2,...")
    return grid


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets, so `ranges.k1=[4.0,4.5],[5.0,5.5]` is two values."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def variants(recipe: dict, grid: dict[str, list]) -> list[dict]:
    """Every point of the grid as {'name', 'params', 'recipe'}; each recipe fully validated."""
    out = []
    for n, point in enumerate(itertools.product(*grid.values())):
        params = dict(zip(grid, point))
        raw = copy.deepcopy(recipe)
        for key, value in params.items():
            apply_override(raw, f"{key}={json.dumps(value)}")
        out.append({"name": f"v{n:03d}", "params": params, "recipe": validate(raw, source="--set")})
    return out


@dataclass(frozen=True)
class StudyUnit(FileUnit):
    variant: str
    recipe: dict
    params: dict
    source: Path
    source_sha256: str
    simulate: tuple[str, ...]         # the sensors to simulate; the others' streams come from the source
    self_contained: bool = False      # copy what is not simulated instead of linking it

    def run(self, threads: int, on_frame) -> dict:
        started = time.perf_counter()
        link = os.path.relpath(self.source, self.path.parent)
        simulated = {name for sensor in self.simulate for name in SENSOR_OUTPUTS[sensor]}
        with atomic_path(self.path) as tmp, SceneReader(self.source) as src, h5py.File(tmp, "w") as out:
            for name in src.h5:
                if name in simulated:
                    continue
                if self.self_contained:
                    src.h5.copy(src.h5[name], out, name=name)
                else:
                    out[name] = h5py.ExternalLink(link, f"/{name}")
            out.attrs.update({k: v for k, v in src.h5.attrs.items()})
            out.attrs.update(recipe_json=scene_recipe_json(self.recipe), study_params_json=json.dumps(self.params),
                             source_file=link, source_sha256=self.source_sha256, **provenance_attrs())
            stamps = src.timestamps_us
            only_simulated = copy.deepcopy(self.recipe)
            for sensor in set(SENSOR_OUTPUTS) - set(self.simulate):
                only_simulated["sensors"][sensor]["enabled"] = False
            rig = SensorRig(only_simulated, self.index, *src.size, out)
            for i in range(src.num_frames):
                rig.feed(src.frame(i), stamps[i])
                if on_frame is not None:
                    on_frame(i)
            rig.close(int(stamps[-1]))
            out.attrs["wall_seconds"] = time.perf_counter() - started
        return scene_entry(self.path, self.index) | {
            "source": link, "source_sha256": self.source_sha256, "params": self.params,
            "seconds": round(time.perf_counter() - started, 3)}


def prepare_study(corpus: str | Path, into: str | Path, grid: dict[str, list]) -> tuple[dict, list[dict]]:
    """Check the corpus and an existing study (RecipeError, nothing written); returns the source
    manifest and the variants."""
    corpus, into = Path(corpus).resolve(), Path(into).resolve()
    source = corpus_manifest(corpus)
    if source is None:
        raise RecipeError(f"{corpus} is not a corpus (no manifest.json)")
    if into in (corpus, corpus / "scenes"):
        raise RecipeError(f"--into {into} would write the study into the source corpus; give it a folder of its own")
    found = variants(source["recipe"], grid)
    existing = into / STUDY_FILE
    if existing.is_file() and json.loads(existing.read_text())["grid"] != grid:
        raise RecipeError(f"{into} holds a study with another grid; use a new --into folder")
    return source, found


def run_study(corpus: str | Path, into: str | Path, grid: dict[str, list], pool, policy, *,
              scenes: range | None = None, progress: bool = True,
              self_contained: bool = False) -> dict[str, list[int]]:
    """Simulate every variant on every complete scene of the corpus (or `scenes`); returns the
    failed scene indices per variant. Re-running skips complete variant files. `self_contained`: copy
    what is not simulated instead of linking it."""
    corpus, into = Path(corpus).resolve(), Path(into).resolve()
    source, found = prepare_study(corpus, into, grid)
    complete = {e["index"]: e for e in source["scenes"] if e["status"] == "complete"}
    scenes = scenes if scenes is not None else range(source["recipe"]["corpus"]["scenes"])
    # Every variant links to its source: a damaged one fails here, once, not in every retry of every variant.
    for entry in (complete[i] for i in scenes if i in complete):
        if problem := damage(corpus / entry["file"], entry):
            raise SceneFileError(f"source scene file {corpus / entry['file']}: {problem}; re-run "
                                 f"generate.py --out {corpus} with its recipe to remake it")
    into.mkdir(parents=True, exist_ok=True)
    with driver_lock(into, scenes):
        write_text(into / STUDY_FILE, json.dumps({
            "format": "nfs_synth sensor study", "source": os.path.relpath(corpus, into), "grid": grid,
            "variants": [{"name": v["name"], "params": v["params"]} for v in found]}, indent=1))
        ledgers, units, failed = {}, [], {}
        for v in found:
            folder = into / v["name"]
            (folder / "scenes").mkdir(parents=True, exist_ok=True)
            ledgers[v["name"]] = ledger = Ledger(folder, v["recipe"], scenes)
            clean_stale_temporaries(folder, scenes)
            units += [StudyUnit(i, scene_path(folder, i), complete[i]["file"], v["name"], v["recipe"],
                                v["params"], corpus / complete[i]["file"], complete[i]["sha256"],
                                changed_sensors(grid), self_contained)
                      for i in pending(folder, scenes, ledger) if i in complete]

        def record(unit: StudyUnit, entry: dict) -> None:
            ledgers[unit.variant].record(entry)
            if entry["status"] != "complete":
                failed.setdefault(unit.variant, []).append(unit.index)

        try:
            run_units(units, record, pool, policy, progress=progress, noun="variant scene")
        except KeyboardInterrupt:
            raise interrupted([into / name for name in ledgers], scenes) from None
        finally:
            for ledger in ledgers.values():
                ledger.close()
    return {name: sorted(idx) for name, idx in failed.items()}
