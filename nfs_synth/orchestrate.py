"""Many scenes: skip the complete ones, run the rest, keep the manifest in step with the files."""
from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from . import textures
from .corpus.manifest import read_manifest, split_of, write_manifest
from .corpus.scene_file import TMP_MARK
from .pipeline import render_scene, scene_path


def clean_stale_temporaries(out_dir: Path) -> int:
    """Temporaries left by a killed run are never complete: remove them."""
    stale = list((out_dir / "scenes").glob(f"*{TMP_MARK}*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def generate_corpus(recipe: dict, out_dir: str | Path, *, indices: list[int] | None = None,
                    threads: int | None = None, progress: bool = True) -> dict:
    """Make every scene of `recipe` (or `indices`) under `out_dir`; returns the manifest."""
    out_dir = Path(out_dir)
    refs = textures.catalog(recipe["textures"])          # fails early on a bad texture source
    (out_dir / "scenes").mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out_dir)
    splits = split_of(recipe)
    previous = read_manifest(out_dir) or {"scenes": []}
    entries = {e["index"]: e for e in previous["scenes"] if e.get("status") == "complete"
               and scene_path(out_dir, e["index"]).is_file()}
    todo = [i for i in (indices if indices is not None else range(recipe["corpus"]["scenes"]))
            if i not in entries]
    bar = tqdm(total=len(todo), unit="scene", disable=not progress, file=sys.stderr)
    for index in todo:
        entry = render_scene(recipe, index, scene_path(out_dir, index), threads=threads, texture_refs=refs)
        entries[index] = entry | {"split": splits[index]}
        write_manifest(out_dir, recipe, entries)
        bar.update()
    bar.close()
    for index, entry in entries.items():
        entry["split"] = splits[index]
    return write_manifest(out_dir, recipe, entries)

