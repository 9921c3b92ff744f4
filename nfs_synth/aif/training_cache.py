"""The training-input cache (`nfs-synth prepare`): what the datasets read, laid out to be read fast.

A corpus scene file is written for storage: frames in gzip chunks of a whole frame, events in gzip
chunks, and nothing precomputed; a 256 px training sample then decodes two whole frames, the events of
its interval and fits its input frame's leak line on the whole frame. The cache holds, per scene, one
HDF5 file `CACHE/scenes/scene_NNNNN.h5` with the same arrays uncompressed, a Fletcher-32 checksum per
chunk (so a corrupt or truncated chunk is an error, never silent garbage) and the leak line of every
frame, plus `CACHE/cache.json` naming the corpus it was made from.

HDF5 rather than zarr: the corpus is HDF5 already, so the cache keeps the corpus' own readers (events
through `ms_to_idx`, spike steps) and its schema; uncompressed chunks are read by a single pread each,
which is what a random crop needs, and h5py verifies the checksums in C. Frames are chunked per frame
(a 256 px crop of a 346x260 frame reads 0.5 MB); events in runs of 65,536; spike steps in runs of 64
(one spike window).

Staleness: every cache file records its scene's content hash (the manifest's sha256) and the schema
version; `cache.json` records the hashes of all scenes. A dataset given a cache checks both against
the corpus it trains on and refuses a mismatch naming it. `prepare` writes each file atomically and
skips the files that are complete and current, so an interrupted run resumes.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from nfs_synth.aif.sample_sources import SceneSource
from nfs_synth.corpus.atomic import atomic_path, write_text
from nfs_synth.corpus.manifest import existing_corpus
from nfs_synth.errors import CacheError, UsageError
from nfs_synth.run.driver_lock import driver_lock
from nfs_synth.run.orchestrate import FileUnit, clean_stale_temporaries, interrupted, run_units

CACHE_SCHEMA = 1
CACHE_FILE = "cache.json"
FORMAT = "nfs_synth training cache"
MODALITIES = ("events", "spikes")
EVENT_CHUNK = 65536
SPIKE_CHUNK = 64
_COPY_STEPS = 1024
_CHECKED = {"fletcher32": True}


def scene_hashes(corpus: str | os.PathLike) -> dict[str, str]:
    """{scene file name: content hash} of the complete scenes of a corpus."""
    return {Path(e["file"]).name: e["sha256"] for e in existing_corpus(corpus)["scenes"]
            if e.get("status") == "complete"}


def prepare_scene(source: Path, target: Path, modality: str, source_sha256: str) -> dict:
    """Write the cache file of one scene (atomically); returns its entry."""
    src = SceneSource(source)
    try:
        with atomic_path(target) as tmp, h5py.File(tmp, "w") as out:
            out.attrs.update(format=FORMAT, schema=CACHE_SCHEMA, modality=modality, source_file=source.name,
                             source_sha256=source_sha256)
            out["timestamps_us"] = src.timestamps
            frames = src.h5["frames"]
            dst = out.create_dataset("frames", frames.shape, frames.dtype, chunks=(1, *frames.shape[1:]), **_CHECKED)
            for i in range(frames.shape[0]):
                dst[i] = frames[i]
            out.create_dataset("all_in_focus", data=src.h5["all_in_focus"][:], **_CHECKED)
            if modality == "events":
                _copy_events(src.h5, out)
                out.create_dataset("leak_line", data=np.stack([src.leak_line(i) for i in range(frames.shape[0])]),
                                   **_CHECKED)
            else:
                _copy_spikes(src.h5, out)
    finally:
        src.close()
    return {"file": target.name, "source_sha256": source_sha256, "bytes": target.stat().st_size}


def _copy_events(src: h5py.File, out: h5py.File) -> None:
    group = out.create_group("events")
    for name in ("t", "x", "y", "p"):
        data = src["events"][name]
        dst = group.create_dataset(name, data.shape, data.dtype, chunks=(min(EVENT_CHUNK, max(len(data), 1)),),
                                   **_CHECKED)
        for a in range(0, len(data), EVENT_CHUNK * 16):
            dst[a:a + EVENT_CHUNK * 16] = data[a:a + EVENT_CHUNK * 16]
    for name in ("height", "width"):
        group[name] = src["events"][name][()]
    out["ms_to_idx"] = src["ms_to_idx"][:]
    out["t_offset"] = src["t_offset"][()] if "t_offset" in src else np.int64(0)


def _copy_spikes(src: h5py.File, out: h5py.File) -> None:
    packed = src["spikes/packed"]
    group = out.create_group("spikes")
    group.attrs.update(src["spikes"].attrs)
    group["t_us"] = src["spikes/t_us"][:]
    dst = group.create_dataset("packed", packed.shape, packed.dtype,
                               chunks=(min(SPIKE_CHUNK, max(packed.shape[0], 1)), *packed.shape[1:]), **_CHECKED)
    for a in range(0, packed.shape[0], _COPY_STEPS):
        dst[a:a + _COPY_STEPS] = packed[a:a + _COPY_STEPS]


@dataclass(frozen=True)
class CacheUnit(FileUnit):
    source: Path
    source_sha256: str
    modality: str

    def run(self, threads: int, on_frame) -> dict:
        return {"index": self.index, "status": "complete",
                **prepare_scene(self.source, self.path, self.modality, self.source_sha256)}


def _current(path: Path, modality: str, sha256: str) -> bool:
    """Whether a cache file exists, opens and was made from this scene version with this schema."""
    try:
        with h5py.File(path, "r") as h5:
            attrs = dict(h5.attrs)
    except (OSError, KeyError):
        return False
    return (attrs.get("schema") == CACHE_SCHEMA and attrs.get("modality") == modality
            and attrs.get("source_sha256") == sha256)


def prepare_cache(corpus: str | os.PathLike, modality: str, out: str | os.PathLike, pool, policy, *,
                  progress: bool = True) -> tuple[int, list[str]]:
    """Cache every complete scene of the corpus (all splits); returns (files made, failed files).
    Files already complete and current are kept; `cache.json` is written when every scene is cached."""
    if modality not in MODALITIES:
        raise UsageError(f"modality must be one of {MODALITIES}, got {modality!r}")
    corpus, out = Path(corpus).resolve(), Path(out).resolve()
    hashes = scene_hashes(corpus)
    if not hashes:
        raise CacheError(f"{corpus} has no complete scenes to cache")
    if out in (corpus, corpus / "scenes"):
        raise UsageError(f"--out {out} would write the cache into the corpus; give it a folder of its own")
    _check_existing(out, modality)
    (out / "scenes").mkdir(parents=True, exist_ok=True)
    indices = sorted(int(name[6:11]) for name in hashes)
    scenes = range(indices[0], indices[-1] + 1)
    with driver_lock(out, scenes, noun="cache files of scenes"):
        clean_stale_temporaries(out, scenes)
        units = [CacheUnit(int(name[6:11]), out / "scenes" / name, f"scenes/{name}", corpus / "scenes" / name,
                           sha, modality)
                 for name, sha in sorted(hashes.items()) if not _current(out / "scenes" / name, modality, sha)]
        failed = []

        def record(unit: CacheUnit, entry: dict) -> None:
            if entry["status"] != "complete":
                failed.append(f"{unit.file}: {entry.get('error', 'failed')}")

        try:
            run_units(units, record, pool, policy, progress=progress, noun="scene")
        except KeyboardInterrupt:
            raise interrupted([out], scenes) from None
        if not failed:
            write_text(out / CACHE_FILE, json.dumps({
                "format": FORMAT, "schema": CACHE_SCHEMA, "modality": modality, "corpus": str(corpus),
                "scenes": hashes}, indent=1, sort_keys=True))
    return len(units) - len(failed), failed


def _check_existing(out: Path, modality: str) -> None:
    meta = _read_meta(out) if (out / CACHE_FILE).is_file() else None
    if meta is not None and meta.get("modality") != modality:
        raise UsageError(f"{out} holds a {meta.get('modality')} cache; give --out a folder of its own for {modality}")


def _read_meta(cache: Path) -> dict:
    try:
        meta = json.loads((cache / CACHE_FILE).read_text())
    except FileNotFoundError:
        raise CacheError(f"{cache} is not a complete training cache (no {CACHE_FILE}); run nfs-synth prepare "
                         "(again, if it was interrupted)") from None
    except (OSError, ValueError) as err:
        raise CacheError(f"{cache / CACHE_FILE}: unreadable ({err})") from None
    if meta.get("format") != FORMAT:
        raise CacheError(f"{cache / CACHE_FILE} is not an nfs_synth training cache")
    return meta


def cache_files(cache: str | os.PathLike, scenes: list[Path], modality: str) -> list[Path]:
    """The cache files of `scenes` (corpus scene files), after checking that the cache was made by this
    schema, for this modality, from exactly these scene versions (CacheError naming what differs)."""
    cache = Path(cache)
    meta = _read_meta(cache)
    if meta.get("schema") != CACHE_SCHEMA:
        raise CacheError(f"{cache}: cache schema {meta.get('schema')}, this nfs_synth reads schema {CACHE_SCHEMA}; "
                         f"re-run nfs-synth prepare into a new folder")
    if meta.get("modality") != modality:
        raise CacheError(f"{cache} is a {meta.get('modality')} cache; the {modality} stage needs its own")
    files, known = [], {}
    for scene in map(Path, scenes):
        corpus = scene.parent.parent
        if corpus not in known:
            known[corpus] = scene_hashes(corpus)
        sha = known[corpus].get(scene.name)
        if sha is None:
            raise CacheError(f"{scene} is not a complete scene of a corpus manifest; a cache needs one")
        if meta["scenes"].get(scene.name) != sha:
            raise CacheError(f"{cache}: was prepared from another corpus or another version of {scene.name} "
                             f"(cache {str(meta['scenes'].get(scene.name))[:12]}, corpus {sha[:12]}); "
                             f"re-run nfs-synth prepare --corpus {corpus}")
        path = cache / "scenes" / scene.name
        if not _current(path, modality, sha):
            raise CacheError(f"{path}: missing, unreadable or not made from {scene.name} (sha {sha[:12]}); "
                             f"re-run nfs-synth prepare")
        files.append(path)
    return files
