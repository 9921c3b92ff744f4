"""`OUT/manifest.json`: the recipe, the split of every scene, and per-scene status and content hash;
`corpus_manifest` / `existing_corpus` read it merged with the shard fragments in `OUT/manifest.d/`."""
from __future__ import annotations

import json
from pathlib import Path

from nfs_synth.corpus.atomic import write_text
from nfs_synth.scene.recipe import to_json
from nfs_synth.errors import ManifestError, UsageError

MANIFEST = "manifest.json"
FRAGMENTS = "manifest.d"        # one fragment per run of a selection (run/ledger.py writes them)
SPLITS = ("train", "val", "test")


def split_of(recipe: dict) -> list[str]:
    """Split name of every scene index: each scene goes to the split furthest behind its fraction
    (ties: train, val, test). Every prefix is within one scene of the fractions, so a corpus that grows
    keeps its scenes' splits and a small one has every split it asks for. Scenes are drawn independently
    of their index, so the regular interleave does not bias a split."""
    fractions = recipe["corpus"]["splits"]
    counts = dict.fromkeys(SPLITS, 0)
    labels = []
    for made in range(1, recipe["corpus"]["scenes"] + 1):
        name = max(SPLITS, key=lambda s: fractions[s] * made - counts[s])
        counts[name] += 1
        labels.append(name)
    return labels


def read_manifest(out_dir: str | Path) -> dict | None:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path} is not valid JSON ({err}); delete it and re-run to rebuild it") from None


def fragment_paths(out_dir: str | Path) -> list[Path]:
    """The fragments of a sharded run's ledger, oldest first, so that later runs win ties."""
    paths = (Path(out_dir) / FRAGMENTS).glob("scenes-*.json")
    return sorted(paths, key=lambda p: (p.stat().st_mtime_ns, p.name))


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path} is not valid JSON ({err}); delete it and re-run to rebuild it") from None


def _merge(entries: dict[int, dict], scenes: list[dict]) -> None:
    """A complete entry beats a failed one; otherwise the later source wins."""
    for entry in scenes:
        old = entries.get(entry["index"])
        if old is None or entry["status"] == "complete" or old["status"] != "complete":
            entries[entry["index"]] = entry


def corpus_manifest(out_dir: str | Path) -> dict | None:
    """manifest.json with the entries of every fragment in manifest.d/ merged in (a sharded run's
    shards may not have merged yet); None when OUT is no corpus. The one way every reader opens a corpus."""
    out_dir = Path(out_dir)
    base = read_manifest(out_dir)
    sources = ([base] if base else []) + [f for f in map(read_json, fragment_paths(out_dir)) if f]
    if not sources:
        return None
    entries: dict[int, dict] = {}
    for source in sources:
        _merge(entries, source["scenes"])
    return {**sources[0], "scenes": [entries[i] for i in sorted(entries)]}


def existing_corpus(out_dir: str | Path) -> dict:
    """corpus_manifest for the commands that read a corpus: ManifestError when OUT is none."""
    manifest = corpus_manifest(out_dir)
    if manifest is None:
        raise ManifestError(f"{out_dir} is not a corpus (no manifest.json)")
    return manifest


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
