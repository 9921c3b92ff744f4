"""Table of a corpus (or a study variant): scenes, frames, resolution, events, spikes, bytes, failed."""
from __future__ import annotations

from pathlib import Path

from nfs_synth.corpus.manifest import SPLITS
from nfs_synth.corpus.manifest import existing_corpus

COLUMNS = ("split", "scenes", "frames", "resolution", "events", "spikes", "bytes", "failed")


def add_arguments(p) -> None:
    p.add_argument("corpus", type=Path, help="corpus folder (manifest.json, scenes/)")


def table(manifest: dict) -> list[tuple]:
    """One row per split and a total; `spikes` counts spike-camera readout steps."""
    rows = []
    for split in (*SPLITS, "total"):
        entries = [e for e in manifest["scenes"] if split == "total" or e.get("split") == split]
        done = [e for e in entries if e["status"] == "complete"]
        sizes = sorted({f"{e['width']}x{e['height']}" for e in done})
        rows.append((split, len(done), sum(e["frames"] for e in done), ",".join(sizes) or "-",
                     sum(e["events"] for e in done), sum(e["spike_steps"] for e in done),
                     _bytes(sum(e["bytes"] for e in done)), len(entries) - len(done)))
    return rows


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def run(args) -> int:
    manifest = existing_corpus(args.corpus)
    rows = [COLUMNS, *table(manifest)]
    widths = [max(len(f"{row[i]:,}" if isinstance(row[i], int) else str(row[i])) for row in rows)
              for i in range(len(COLUMNS))]
    for row in rows:
        print("  ".join((f"{v:,}" if isinstance(v, int) else str(v)).rjust(w) if i else str(v).ljust(w)
                        for i, (v, w) in enumerate(zip(row, widths))))
    planned = manifest["recipe"]["corpus"]["scenes"]
    made = {e["index"] for e in manifest["scenes"]}
    missing = planned - len(made)
    failed = [e["index"] for e in manifest["scenes"] if e["status"] != "complete"]
    print(f"{planned} scenes planned; {missing} not yet made"
          + (f"; failed: {', '.join(map(str, failed))}" if failed else ""))
    return 0
