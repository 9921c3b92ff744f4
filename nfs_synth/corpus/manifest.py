"""`OUT/manifest.json`: the recipe, the split of every scene, and per-scene status and content hash."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nfs_synth.corpus.atomic import write_text
from nfs_synth.scene import seeds
from nfs_synth.scene.recipe import to_json
from nfs_synth.errors import ManifestError, UsageError

MANIFEST = "manifest.json"
SPLITS = ("train", "val", "test")


def split_of(recipe: dict) -> list[str]:
    """Split name of every scene index; depends only on the seed, scene count and fractions."""
    n = recipe["corpus"]["scenes"]
    fractions = recipe["corpus"]["splits"]
    order = np.random.default_rng(seeds.split_seed(recipe["corpus"]["seed"])).permutation(n)
    counts = [int(round(fractions[s] * n)) for s in SPLITS[:2]]
    counts.append(n - sum(counts))
    labels = np.empty(n, dtype=object)
    start = 0
    for name, count in zip(SPLITS, counts):
        labels[order[start:start + count]] = name
        start += count
    return labels.tolist()


def read_manifest(out_dir: str | Path) -> dict | None:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path} is not valid JSON ({err}); delete it and re-run to rebuild it") from None


def write_manifest(out_dir: str | Path, recipe: dict, entries: dict[int, dict]) -> dict:
    """Write the manifest atomically so that a killed run never leaves half of one."""
    manifest = {
        "format": "nfs_synth corpus",
        "recipe": json.loads(to_json(recipe)),
        "scenes": [entries[i] for i in sorted(entries)],
    }
    write_text(Path(out_dir) / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def scenes_in_split(manifest: dict, split: str) -> list[dict]:
    if split not in SPLITS and split != "all":
        raise UsageError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)} or 'all'")
    return [s for s in manifest["scenes"] if s.get("status") == "complete"
            and (split == "all" or s.get("split") == split)]
