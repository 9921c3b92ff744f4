"""Build the training-input cache of a corpus (docs/networks.md, "Training-input cache").

  nfs-synth prepare --corpus out/demo --modality events --out out/demo-cache-ev
  nfs-synth train ... --corpus out/demo --cache out/demo-cache-ev

Per scene, the arrays the datasets read, uncompressed with a checksum per chunk and the leak lines
precomputed; parallel with --workers / --cluster like generate, resumable (complete, current files are
kept), and recorded with the corpus' scene hashes so a stale cache is refused.
"""
from __future__ import annotations

from pathlib import Path

from nfs_synth.run.workers import add_pool_arguments, check_pool_arguments, open_pool, policy_for


def add_arguments(p) -> None:
    p.add_argument("--corpus", type=Path, required=True, help="corpus folder (manifest.json, scenes/)")
    p.add_argument("--modality", required=True, choices=("events", "spikes"))
    p.add_argument("--out", type=Path, required=True, help="cache folder (cache.json, scenes/)")
    add_pool_arguments(p)


def run(args) -> int:
    from nfs_synth.aif.training_cache import prepare_cache

    check_pool_arguments(args)
    with open_pool(args) as pool:
        made, failed = prepare_cache(args.corpus, args.modality, args.out, pool, policy_for(args, pool),
                                     progress=not args.no_progress)
    print(f"{args.out}: {made} cache files made" + (f"; failed: {'; '.join(failed)}" if failed else ""))
    return 1 if failed else 0
