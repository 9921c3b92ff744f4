"""Many scenes: choose the ones to make, skip the complete ones, run the rest on a pool, keep the ledger.

A scene file is complete when it exists (files appear only by rename), so a run adopts files whose
manifest entry a killed driver never wrote, remakes files damaged since their entry was written, and
removes the temporaries of its own scenes that a killed run left behind.
"""
from __future__ import annotations

import os
import re
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import h5py
from tqdm import tqdm

from nfs_synth.scene import textures
from nfs_synth.corpus.atomic import TMP_MARK, temporaries
from nfs_synth.corpus.manifest import FRAGMENTS, MANIFEST
from nfs_synth.corpus.scene_file import scene_name
from nfs_synth.run.ledger import Ledger, check_recipe, discard_ledger
from nfs_synth.run.pipeline import render_scene, scene_entry, scene_path
from nfs_synth.run.workers import LocalPool, Outcome, Policy, run_unit
from nfs_synth.errors import Interrupted, SelectionError
from nfs_synth.run.driver_lock import driver_lock

STALE_LEDGER_TMP_S = 300        # a manifest write takes milliseconds; older temporaries are orphans
_TMP_NAME = re.compile(rf"scene_(\d+)\.h5{re.escape(TMP_MARK)}")


def slurm_array_shard(environ=os.environ) -> str:
    """`--shard auto`: I/N of this SLURM array task, I counted from the array's first task id."""
    names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN")
    missing = [name for name in names[:2] if name not in environ]
    if missing:
        raise SelectionError(f"--shard auto: {' and '.join(missing)} not set; it works only inside a "
                             "SLURM job array (sbatch --array=0-N), elsewhere use --shard I/N")
    try:
        task, count, first = (int(environ.get(name, "0")) for name in names)
    except ValueError:
        raise SelectionError("--shard auto: non-integer " + ", ".join(
            f"{n}={environ[n]!r}" for n in names if n in environ)) from None
    if not 0 <= task - first < count:      # a stepped (0-6:2) or sparse (1,5) array has gaps
        raise SelectionError(f"--shard auto: SLURM_ARRAY_TASK_ID={task} is not within the "
                             f"SLURM_ARRAY_TASK_COUNT={count} tasks from SLURM_ARRAY_TASK_MIN={first}; "
                             "use a contiguous array such as --array=0-7")
    return f"{task - first}/{count}"


def select_scenes(total: int, scenes: str | None = None, shard: str | None = None) -> range:
    """`--scenes START:STOP` (either end may be empty), then `--shard I/N` (0-based contiguous
    blocks of that range; `auto`: from the SLURM job array); the whole corpus without either."""
    if shard == "auto":
        shard = slurm_array_shard()
    selected = range(total)
    if scenes is not None:
        start, sep, stop = scenes.partition(":")
        try:
            if not sep:
                raise ValueError
            selected = range(int(start) if start.strip() else 0, int(stop) if stop.strip() else total)
        except ValueError:
            raise SelectionError(f"--scenes {scenes!r}: expected START:STOP, e.g. 0:100") from None
        if not 0 <= selected.start < selected.stop <= total:
            raise SelectionError(f"--scenes {scenes!r}: need 0 <= START < STOP <= {total} (corpus.scenes)")
    if shard is not None:
        i, sep, n = shard.partition("/")
        if not (sep and i.isdigit() and n.isdigit() and 0 <= int(i) < int(n)):
            raise SelectionError(f"--shard {shard!r}: expected I/N with 0 <= I < N, e.g. 3/8")
        i, n, count = int(i), int(n), len(selected)
        selected = range(selected.start + i * count // n, selected.start + (i + 1) * count // n)
    return selected


@dataclass(frozen=True)
class FileUnit:
    """A work unit that makes one file; what the pools and the render workers need of it."""

    index: int
    path: Path                  # absolute target file
    file: str                   # as the manifest names it, relative to the corpus

    def remove_temporaries(self, pid: int) -> None:
        """Temporaries of a worker process that died or was killed while writing this file."""
        for tmp in temporaries(self.path, pid):
            tmp.unlink(missing_ok=True)

    def failure_entry(self, error: str, attempts: int) -> dict:
        return {"index": self.index, "file": self.file, "status": "failed", "error": error,
                "attempts": attempts}


@dataclass(frozen=True)
class SceneUnit(FileUnit):
    recipe: dict
    texture_refs: list

    def run(self, threads: int, on_frame) -> dict:
        return render_scene(self.recipe, self.index, self.path, threads=threads,
                            texture_refs=self.texture_refs, on_frame=on_frame)


def clean_stale_temporaries(out_dir: Path, scenes: range) -> int:
    """Remove temporaries of the selected scenes only: other shards may be writing theirs."""
    stale = [p for p in (out_dir / "scenes").glob(f"scene_*{TMP_MARK}*")
             if (m := _TMP_NAME.match(p.name)) and int(m[1]) in scenes]
    cutoff = time.time() - STALE_LEDGER_TMP_S
    stale += [p for p in [*temporaries(out_dir / MANIFEST), *(out_dir / FRAGMENTS).glob(f"*{TMP_MARK}*")]
              if p.stat().st_mtime < cutoff]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def run_units(units: list, record, pool, policy: Policy, *, progress: bool = True,
              noun: str = "scene", telemetry: list | None = None) -> None:
    """Run `units` on `pool` and `record(unit, entry)` every outcome; one progress bar (rate, ETA)
    and a line per unit that failed for good."""
    with tqdm(total=len(units), unit=noun, disable=not progress, file=sys.stderr, smoothing=0.1) as bar:
        try:
            _record_outcomes(units, record, pool, policy, bar, noun, telemetry)
        except KeyboardInterrupt:
            pool.interrupt(policy.run_id)   # the workers' processes die now; their units are not recorded
            raise


def _record_outcomes(units, record, pool, policy, bar, noun, telemetry) -> None:
    for unit, outcome, error in pool.map_unordered(partial(run_unit, policy=policy), units):
        outcome = outcome or Outcome(unit.failure_entry(error, 0))
        record(unit, outcome.entry)
        if outcome.entry["status"] != "complete":
            first_line = outcome.entry["error"].splitlines()[0]
            bar.write(f"{noun} {unit.index} failed after {outcome.entry['attempts']} attempt(s): "
                      f"{first_line}", file=sys.stderr)
        if telemetry is not None:
            telemetry.append(outcome)
        bar.update()


def damage(path: Path, entry: dict) -> str | None:
    """Why the file of a complete manifest entry is not intact, or None. Quick: a size unlike the
    recorded one or a file that does not open; `nfs-synth validate` reads the content."""
    if not path.is_file():
        return "file missing"
    if path.stat().st_size != entry["bytes"]:
        return f"{path.stat().st_size} bytes, the manifest says {entry['bytes']} (truncated or replaced)"
    try:
        h5py.File(path, "r").close()
    except OSError as err:
        return f"not a readable HDF5 file ({err})"
    return None


def pending(out_dir: Path, scenes: range, ledger: Ledger) -> list[int]:
    """Selected scenes without an intact file; files without a complete entry are adopted."""
    entries = ledger.entries()
    todo = []
    for index in scenes:
        path = scene_path(out_dir, index)
        entry = entries.get(index)
        if entry and entry["status"] == "complete":
            problem = damage(path, entry)
            if problem is None:
                continue
            print(f"scene {index}: {path.name}: {problem}; making it again", file=sys.stderr)
            todo.append(index)
            continue
        try:
            ledger.record(scene_entry(path, index))
        except FileNotFoundError:
            todo.append(index)
        except (OSError, KeyError, ValueError) as err:      # damaged after it was made: redo it
            print(f"scene {index}: {path.name} is unreadable ({err}); making it again", file=sys.stderr)
            todo.append(index)
    return todo


def generate_corpus(recipe: dict, out_dir: str | Path, *, scenes: range | None = None, pool=None,
                    policy: Policy | None = None, progress: bool = True, telemetry: list | None = None) -> dict:
    """Make the selected scenes of `recipe` (default: all) under `out_dir` on `pool` (default: one
    local render worker). Returns the merged manifest; failed scenes are in it with their error."""
    out_dir = Path(out_dir).resolve()
    scenes = scenes if scenes is not None else range(recipe["corpus"]["scenes"])
    refs = textures.catalog(recipe["textures"])          # fails early on a bad texture source
    (out_dir / "scenes").mkdir(parents=True, exist_ok=True)
    with driver_lock(out_dir, scenes):
        if check_recipe(out_dir, recipe):
            discard_ledger(out_dir)
        ledger = Ledger(out_dir, recipe, scenes)
        clean_stale_temporaries(out_dir, scenes)
        units = [SceneUnit(i, scene_path(out_dir, i), f"scenes/{scene_name(i)}", recipe, refs)
                 for i in pending(out_dir, scenes, ledger)]
        stopped = False
        with LocalPool(1) if pool is None else nullcontext(pool) as pool:
            try:
                run_units(units, lambda unit, entry: ledger.record(entry), pool,
                          policy or Policy(slots_per_host=pool.slots_per_host), progress=progress,
                          telemetry=telemetry)
            except KeyboardInterrupt:
                stopped = True
            finally:
                manifest = ledger.close()
        if stopped:
            raise interrupted([out_dir], scenes)
    return manifest


def interrupted(folders: list[Path], scenes: range) -> Interrupted:
    """After Ctrl-C: no temporaries of `scenes` are left in `folders` (this driver holds those scenes),
    and the one line to tell. Files count even when a worker finished one but was killed before its
    entry was recorded: files appear only whole, and the next run adopts them."""
    for folder in folders:
        clean_stale_temporaries(folder, scenes)
    done = sum(scene_path(folder, i).is_file() for folder in folders for i in scenes)
    where = folders[0] if len(folders) == 1 else folders[0].parent
    return Interrupted(f"interrupted: {done} of {len(scenes) * len(folders)} scene files complete in {where}; "
                       "the others were not written. Run the same command again to resume")
