"""Score a trained net on its own stage's task over a corpus split (docs/networks.md, "Held-out scores").

  nfs-synth score runs/refocus-sp/last.pt --corpus runs/test --split test
  nfs-synth score runs/refocus-sp/last.pt --corpus runs/train --split train --max-scenes 20
  nfs-synth score runs/merge-sp/last.pt --corpus runs/test --refocus-checkpoint runs/refocus-sp/last.pt

Refocus: PSNR of the refocused image against the rendered frame at the target time (reference: the input
frame). Merge: PSNR against the all-in-focus ground truth on oracle stacks, or on the stacks of
--refocus-checkpoint (reference: the stack's mean). The same split scored for two checkpoints uses the same
samples; the training split against a held-out one tells over- from underfitting.
"""
from __future__ import annotations

import json
from pathlib import Path

from nfs_synth.corpus.atomic import write_text


def add_arguments(p) -> None:
    p.add_argument("checkpoint", type=Path, help="a run's last.pt (nfs-synth train)")
    p.add_argument("--corpus", type=Path, required=True, help="corpus folder (manifest.json, scenes/)")
    p.add_argument("--split", default="test", help="train, val, test or all (default: %(default)s)")
    p.add_argument("--samples-per-scene", type=int, default=8, help="default %(default)s")
    p.add_argument("--crop", type=int, help="crop side in px (default: the checkpoint's training crop)")
    p.add_argument("--max-scenes", type=int, default=0, help="score only the first N scenes (0 = all)")
    p.add_argument("--refocus-checkpoint", type=Path, help="merge nets: score on the stacks this refocus net makes")
    p.add_argument("--batch-size", type=int, default=8, help="samples per network call (default %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--json", type=Path, help="also write the scores (and per-scene PSNR) to this file")


def run(args) -> int:
    from nfs_synth.aif.holdout import score_checkpoint

    scores = score_checkpoint(args.checkpoint, args.corpus, args.split, args.samples_per_scene, args.crop,
                              args.max_scenes, refocus_checkpoint=args.refocus_checkpoint,
                              batch=args.batch_size, device=args.device)
    print(f"{scores['stage']}/{scores['modality']} on {scores['split']} of {args.corpus} ({scores['scenes']} scenes, "
          f"{scores['samples']} samples of {scores['crop']} px): PSNR {scores['psnr_db']:.2f} dB (median scene {scores['median_scene_psnr_db']:.2f}), "
          f"{scores['reference']} {scores['reference_psnr_db']:.2f} dB")
    if args.json:
        write_text(args.json, json.dumps(scores, indent=1) + "\n")
    return 0
