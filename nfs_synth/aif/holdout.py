"""A trained net scored on its own stage's task over a corpus split: the check for over- and underfitting.

- refocus: the refocused image against the rendered frame at the target time; the reference is the
  input frame itself (no refocusing).
- merge: the merged image against the all-in-focus ground truth, on oracle stacks of rendered frames
  (or, with a refocus checkpoint, on the stacks that net refocuses, as at inference); the reference is
  the stack's mean.

Samples are drawn as in training (`RefocusDataset`, `MergeDataset`: random frames and crops) but from a
seed of their own, fixed, so two checkpoints are scored on the same samples. Scored on the training
split and on a held-out one, a net that does much better on the first is overfitting; one that does
equally well on both is underfitting. PSNR is from the mean MSE over the samples, as train's log.csv
reports it (there on the training crops, in train mode, during the epoch), and the median of the scenes'
PSNRs beside it. Two checkpoints scored on the same split are best compared scene by scene (`per_scene`).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from nfs_synth.aif.datasets import MergeDataset, RefocusDataset, corpus_scenes, usable_scenes
from nfs_synth.aif.nets import pad_to_multiple
from nfs_synth.aif.metrics import psnr_of_mse
from nfs_synth.aif.train import check_crop, forward, load_model, resolve_device
from nfs_synth.errors import UsageError

SEED = 1_000_003    # not a training seed (train's default is 0): other frame pairs and crops than trained on


def _output(model, batch: dict[str, torch.Tensor], device) -> torch.Tensor:
    """The net's image for a batch (`train.forward`), its inputs padded as the nets need, cut back."""
    h, w = batch["target"].shape[-2:]
    padded = {k: pad_to_multiple(v.to(device))[0] for k, v in batch.items() if k != "target"}
    return forward(model, padded)[..., :h, :w]


@torch.no_grad()
def score_checkpoint(checkpoint: str | os.PathLike, corpus: str | os.PathLike, split: str = "test",
                     samples_per_scene: int = 8, crop: int | None = None, max_scenes: int = 0, seed: int = SEED,
                     refocus_checkpoint: str | os.PathLike | None = None, batch: int = 8,
                     device: str = "cpu", log=print) -> dict:
    """The checkpoint's MSE and PSNR (and its reference's) over `samples_per_scene` samples of each
    scene of the split; crop: the checkpoint's training crop unless given."""
    if samples_per_scene < 1 or batch < 1 or max_scenes < 0:
        raise UsageError(f"samples per scene and batch must be at least 1 and max scenes at least 0, got "
                         f"{samples_per_scene}, {batch}, {max_scenes}")
    device = resolve_device(device)
    model, cfg = load_model(checkpoint, device)
    crop = int(crop or cfg["crop"])
    view = cfg.get("view", "sensor")
    scenes = usable_scenes(corpus_scenes(corpus, split), cfg["modality"], "skip", log, view)
    scenes = scenes[:max_scenes] if max_scenes else scenes
    check_crop(scenes, crop, view)
    common = dict(modality=cfg["modality"], crop=crop, samples_per_scene=samples_per_scene, seed=seed, view=view)
    if cfg["stage"] == "refocus":
        if refocus_checkpoint is not None:
            raise UsageError(f"{checkpoint} is a refocus checkpoint; a refocus checkpoint for its stacks "
                             "applies only to scoring a merge net")
        dataset = RefocusDataset(scenes, **common)
    else:
        net = None
        if refocus_checkpoint is not None:
            net, net_cfg = load_model(refocus_checkpoint)
            if net_cfg["stage"] != "refocus" or net_cfg["modality"] != cfg["modality"]:
                raise UsageError(f"{refocus_checkpoint} is a {net_cfg['stage']} net for {net_cfg['modality']}; "
                                 f"the stacks need a refocus net for {cfg['modality']}")
        dataset = MergeDataset(scenes, stack_size=cfg["stack_size"], refocus_net=net, **common)
    squared = {"net": [], "reference": []}     # per sample, in dataset order
    for item in torch.utils.data.DataLoader(dataset, batch_size=batch):
        target = item["target"].to(device)
        reference = item["stack"].mean(1) if "stack" in item else item["image"]
        squared["net"].append(((_output(model, item, device).clamp(0, 1) - target) ** 2).mean((1, 2, 3)).double().cpu())
        squared["reference"].append(((reference.to(device) - target) ** 2).mean((1, 2, 3)).double().cpu())
    squared = {key: torch.cat(v) for key, v in squared.items()}
    per_scene = {key: v.view(len(scenes), samples_per_scene).mean(1) for key, v in squared.items()}
    return {"checkpoint": str(checkpoint), "stage": cfg["stage"], "modality": cfg["modality"],
            "corpus": str(corpus), "split": split, "scenes": len(scenes), "samples": len(dataset), "crop": crop,
            "seed": seed, "stack": None if cfg["stage"] == "refocus" else str(refocus_checkpoint or "oracle"),
            "reference": "stack mean" if cfg["stage"] == "merge" else "input frame",
            "mse": float(squared["net"].mean()), "psnr_db": psnr_of_mse(float(squared["net"].mean())),
            "reference_psnr_db": psnr_of_mse(float(squared["reference"].mean())),
            # pooled MSE lets a few bad scenes decide; the median scene shows what most scenes get
            "median_scene_psnr_db": float(np.median([psnr_of_mse(float(m)) for m in per_scene["net"]])),
            "per_scene": [{"scene": Path(p).name, "psnr_db": psnr_of_mse(float(n)), "reference_psnr_db": psnr_of_mse(float(r))}
                          for p, n, r in zip(scenes, per_scene["net"], per_scene["reference"])]}
