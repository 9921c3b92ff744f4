"""Check every scene file of a corpus against the schema and the manifest's content hashes.

Names every bad file (missing, unreadable, truncated, wrong shapes or dtypes, counts or hash unlike
the manifest), every failed or missing scene, and files the manifest does not know; status 1 if any.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from nfs_synth.corpus.atomic import TMP_MARK
from nfs_synth.corpus.scene_file import content_hash
from nfs_synth.errors import SceneFileError
from nfs_synth.corpus.schema import READABLE_SCHEMA_VERSIONS, datasets, parts_written
from nfs_synth.corpus.manifest import existing_corpus
from nfs_synth.sensors.rgb_camera import capture_count

SCENE_NAME = re.compile(r"scene_\d+\.h5(" + re.escape(TMP_MARK) + r".*)?")  # a scene file or its temporary


def add_arguments(p) -> None:
    p.add_argument("corpus", type=Path, help="corpus folder (manifest.json, scenes/)")
    p.add_argument("--no-progress", action="store_true")


def schema_problems(h5: h5py.File, entry: dict) -> list[str]:
    """Shapes, dtypes and counts of one open scene file against the schema and its manifest entry."""
    problems = []
    recipe = json.loads(h5.attrs["recipe_json"])
    parts = parts_written(recipe)
    sizes = {"T": entry["frames"], "H": entry["height"], "W": entry["width"]}
    if "events" in parts:
        sizes["N"] = entry["events"]
    if "spikes" in parts:
        sizes["S"] = entry["spike_steps"]
    if "rgb" in parts:
        rgb = recipe["rgb_camera"]
        sizes |= {"s": rgb["scale"], "C": capture_count(entry["frames"], rgb["exposure_frames"])}
    for name, spec in datasets(*parts):
        shape, dtype = spec.shape_for(**sizes), spec.dtype
        ds = h5.get(name)
        link = h5.get(name.split("/")[0], getlink=True)
        if not isinstance(ds, h5py.Dataset) and isinstance(link, h5py.ExternalLink):   # study variants
            problems.append(f"{name} links to {link.filename}, which does not resolve")
        elif not isinstance(ds, h5py.Dataset):
            problems.append(f"missing dataset {name}")
        elif (shape is not None and ds.shape != shape) or ds.dtype != np.dtype(dtype):
            problems.append(f"{name} is {ds.dtype}{list(ds.shape)}, expected {dtype}{list(shape or ['N'])}")
    if h5.attrs.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
        problems.append(f"schema_version {h5.attrs.get('schema_version')!r}, expected one of "
                        f"{list(READABLE_SCHEMA_VERSIONS)}")
    if h5.attrs.get("scene_index") != entry["index"]:
        problems.append(f"scene_index {h5.attrs.get('scene_index')!r}, expected {entry['index']}")
    return problems


def file_problems(path: Path, entry: dict) -> list[str]:
    if not path.is_file():
        return ["file missing"]
    try:
        with h5py.File(path, "r") as h5:
            problems = schema_problems(h5, entry)
        if content_hash(path) != entry["sha256"]:
            problems.append("content hash differs from the manifest (data altered)")
    except (OSError, SceneFileError, KeyError, ValueError) as err:
        problems = [f"unreadable or truncated: {err}"]
    return problems


def run(args) -> int:
    manifest = existing_corpus(args.corpus)
    entries = {e["index"]: e for e in manifest["scenes"]}
    bad = 0
    for entry in tqdm([e for e in entries.values() if e["status"] == "complete"], unit="file",
                      disable=args.no_progress, file=sys.stderr):
        problems = file_problems(args.corpus / entry["file"], entry)
        bad += bool(problems)
        for problem in problems:
            tqdm.write(f"BAD {entry['file']}: {problem}")
    known = {Path(e["file"]).name for e in entries.values()}
    # Scene files and their temporaries only: outputs users put beside them (exports, PNGs) are theirs.
    strays = sorted(p.name for p in (args.corpus / "scenes").glob("scene_*.h5*")
                    if SCENE_NAME.fullmatch(p.name) and (p.name not in known or TMP_MARK in p.name))
    for name in strays:
        print(f"STRAY scenes/{name}: not in the manifest (a temporary, or made after the last manifest write)")
    failed = sorted(i for i, e in entries.items() if e["status"] != "complete")
    missing = sorted(set(range(manifest["recipe"]["corpus"]["scenes"])) - set(entries))
    for index in failed:
        print(f"FAILED scene {index}: {entries[index]['error'].splitlines()[0]}")
    if missing:
        print(f"MISSING scenes: {_ranges(missing)}")
    ok = not (bad or strays or failed or missing)
    print(f"{len(entries) - len(failed) - bad} good files, {bad} bad, {len(failed)} failed, "
          f"{len(missing)} missing, {len(strays)} stray: {'valid' if ok else 'NOT valid'}")
    return 0 if ok else 1


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    spans, start = [], indices[0]
    for prev, cur in zip(indices, indices[1:] + [None]):
        if cur is None or cur != prev + 1:
            spans.append(f"{start}-{prev}" if prev > start else f"{start}")
            start = cur
    return ", ".join(spans)
