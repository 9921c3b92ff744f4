"""The corpus ledger: one manifest fragment per run, merged into `manifest.json`.

Shards of a job array write into one folder at the same time. Each run owns one fragment,
`OUT/manifest.d/scenes-START-STOP.json` (a re-run of the same selection rewrites the same one), and
nobody else writes it, so no run can lose another's entries. `manifest.json` is the merge of the
fragments (and of an older manifest.json), rewritten at the start and end of every run and every
minute, under an advisory lock so that the last writer has seen every fragment. On a file system
where locks do not work, `corpus.manifest.corpus_manifest` (how every reader opens a corpus) still
merges the fragments itself, and any re-run rewrites manifest.json.
"""
from __future__ import annotations

import fcntl
import json
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from nfs_synth.corpus.atomic import write_text
from nfs_synth.corpus.manifest import (FRAGMENTS, MANIFEST, corpus_manifest, fragment_paths, read_json, split_of,
                                      write_manifest)
from nfs_synth.errors import RecipeError
from nfs_synth.scene.recipe import to_json

FRAGMENT_EVERY_S = 2.0          # a killed driver loses at most this much of its ledger (files are
MERGE_EVERY_S = 60.0            # adopted on the next run anyway)
SCENE_FILE = re.compile(r"scene_\d+\.h5")


def fragment_name(scenes: range) -> str:
    return f"scenes-{scenes.start:07d}-{scenes.stop:07d}.json"


def check_recipe(out_dir: str | Path, recipe: dict) -> bool:
    """RecipeError when OUT already holds scenes made from another recipe. A raised `corpus.scenes` is
    the same recipe: the corpus grows, keeping its scenes and their splits. True when it holds only
    failed scenes (and no scene file) of another recipe: nothing of value is lost, so the run starts
    the folder afresh with this recipe (`discard_ledger`)."""
    out_dir = Path(out_dir)
    existing = corpus_manifest(out_dir) if out_dir.is_dir() else None
    if existing is None or to_json(existing["recipe"]) == to_json(recipe):
        return False
    complete = any(e["status"] == "complete" for e in existing["scenes"])
    if not complete and not any(SCENE_FILE.fullmatch(p.name) for p in (out_dir / "scenes").glob("scene_*.h5")):
        return True
    differ = sorted(_differences(existing["recipe"], json.loads(to_json(recipe))))
    had, wants = existing["recipe"]["corpus"]["scenes"], recipe["corpus"]["scenes"]
    if differ == ["corpus.scenes"] and wants > had:
        return False
    if differ == ["corpus.scenes"]:
        raise RecipeError(f"{out_dir} holds a corpus of {had} scenes; corpus.scenes={wants} would shrink it; "
                          "a corpus only grows: use a new --out folder for a smaller one")
    raise RecipeError(f"{out_dir} holds a corpus made from another recipe (differs in "
                      f"{', '.join(differ[:5]) or 'structure'}); use a new --out folder (only corpus.scenes "
                      "may change: raising it adds scenes)")


def discard_ledger(out_dir: str | Path) -> None:
    """Remove manifest.json and the fragments of a folder that `check_recipe` found to hold only failed
    scenes of another recipe."""
    out_dir = Path(out_dir)
    print(f"{out_dir} held only failed scenes of another recipe: starting it afresh with this one", file=sys.stderr)
    for path in [out_dir / MANIFEST, *fragment_paths(out_dir)]:
        path.unlink(missing_ok=True)


def _differences(a, b, prefix: str = ""):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in set(a) | set(b):
            yield from _differences(a.get(key), b.get(key), f"{prefix}{key}.")
    elif a != b:
        yield prefix.rstrip(".")


def _write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=1, sort_keys=True))


class Ledger:
    """This run's fragment: `record` entries as scenes finish, `close` to merge manifest.json."""

    def __init__(self, out_dir: str | Path, recipe: dict, scenes: range):
        self.out_dir = Path(out_dir)
        self.recipe = recipe
        self.splits = split_of(recipe)
        (self.out_dir / FRAGMENTS).mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / FRAGMENTS / fragment_name(scenes)
        own = read_json(self.path)
        self.own = {e["index"]: e for e in own["scenes"]} if own else {}
        self.flushed = self.merged = 0.0
        self.merge()

    def entries(self) -> dict[int, dict]:
        merged = corpus_manifest(self.out_dir)
        return {e["index"]: e for e in merged["scenes"]} if merged else {}

    def record(self, entry: dict) -> None:
        self.own[entry["index"]] = entry | {"split": self.splits[entry["index"]]}
        now = time.monotonic()
        if now - self.flushed >= FRAGMENT_EVERY_S:
            self.flush()
        if now - self.merged >= MERGE_EVERY_S:
            self.merge()

    def flush(self) -> None:
        _write_json(self.path, {"format": "nfs_synth manifest fragment", "recipe": json.loads(to_json(self.recipe)),
                                "scenes": [self.own[i] for i in sorted(self.own)]})
        self.flushed = time.monotonic()

    def merge(self) -> dict:
        """Rewrite manifest.json from every fragment, under the folder's lock."""
        self.flush()
        with _locked(self.out_dir / FRAGMENTS / ".lock"):
            entries = self.entries()
            for index, entry in entries.items():
                entry["split"] = self.splits[index]
            manifest = write_manifest(self.out_dir, self.recipe, entries)
        self.merged = time.monotonic()
        return manifest

    close = merge


@contextmanager
def _locked(path: Path):
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError:                  # no locks on this file system: fragments keep us safe
            pass
        yield
