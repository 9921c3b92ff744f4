"""Which stage of the learned all-in-focus pipeline limits it: each stack crossed with each merge
(docs/networks.md, "Where the learned pipeline loses").

Per test scene, first frame as input (the evaluation protocol), the learned pipeline's refocused stack
(the input refocused by NeuroRefocusNet to the kept refocus times) and the rendered frames at the same
times (an oracle refocus net), each merged by NeuroMergeNet and by the hand merge (Laplacian energy
fusion), plus the best per-pixel choice from each stack (the ceiling of any merge that selects) and the
mean PSNR of the refocused images against the rendered frames at their times (the refocus stage's own
error), and the ground truth's luma with the input's chroma (the colour ceiling of a grey sensor,
docs/networks.md "The colour ceiling"). PSNR against the all-in-focus image in sRGB, the mean of the
per-scene PSNRs, as `nfs-synth evaluate` reports it; "net stack + net merge" is learned-ev / learned-sp.

    python scripts/stage_ablation.py --corpus runs/lc/test --refocus runs/lc/curve/refocus-ev-r54-m18-group/last.pt \
        --merge runs/lc/curve/merge-ev-r54-m18-group/last.pt
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from nfs_synth.aif.learned import LearnedAIF, scene_stream
from nfs_synth.aif.merge import laplacian_energy_fusion
from nfs_synth.aif.metrics import psnr
from nfs_synth.aif.representations import luma_chroma_merge
from nfs_synth.aif.scene import EvalScene
from nfs_synth.color import REC709_LUMA, srgb_decode


def input_chroma(image: np.ndarray, luma_from: np.ndarray) -> np.ndarray:
    """`image`'s chroma with the luma Y' of `luma_from` (sRGB (H, W, 3) each), through Eq. 9's colour
    split: with the target as `luma_from`, the ceiling of a refocus that keeps the input's chroma. The
    split encodes a linear grey, so it is given the decoded Y' to get that Y' back."""
    grey = srgb_decode(np.asarray(luma_from, np.float32) @ REC709_LUMA)
    out = luma_chroma_merge(torch.from_numpy(np.float32(grey))[None, None],
                            torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), np.float32))[None])
    return out[0].permute(1, 2, 0).numpy()


ROWS = ("net stack + net merge", "net stack + hand merge", "net stack, best per-pixel choice",
        "rendered stack + net merge", "rendered stack + hand merge", "rendered stack, best per-pixel choice",
        "all rendered frames + hand merge", "refocused images vs rendered frames", "ground-truth luma, input chroma")


def best_choice(stack: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per pixel, the stack image closest to the target (squared error over RGB)."""
    best = np.argmin(((stack - target[None]) ** 2).sum(-1), axis=0)
    return np.take_along_axis(stack, best[None, ..., None], axis=0)[0]


def ablate(pipeline: LearnedAIF, scene: EvalScene) -> dict[str, float]:
    ts = scene.timestamps_us
    reader, step = scene_stream(scene, pipeline.modality)
    sweep = (int(ts[0]), int(ts[-1]))
    frames, gt, image = scene.frames_srgb, scene.ground_truth_srgb, scene.frame_srgb(0)
    net = pipeline.refocused_stack(image, int(ts[0]), sweep, reader, step)
    rendered = frames[[int(np.argmin(np.abs(ts - t))) for t in net.times_us]]
    stacks = {"net stack": net.images, "rendered stack": rendered}
    out = {}
    for name, stack in stacks.items():
        out[f"{name} + net merge"] = psnr(pipeline.merge_stack(stack, net.times_us, sweep, reader, step)[0], gt)
        out[f"{name} + hand merge"] = psnr(laplacian_energy_fusion(stack)[0], gt)
        out[f"{name}, best per-pixel choice"] = psnr(best_choice(stack, gt), gt)
    out["all rendered frames + hand merge"] = psnr(laplacian_energy_fusion(frames)[0], gt)
    out["refocused images vs rendered frames"] = float(np.mean([psnr(a, b) for a, b in zip(net.images, rendered)]))
    out["ground-truth luma, input chroma"] = psnr(input_chroma(image, gt), gt)
    out["stack size"] = len(net.times_us)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, required=True, help="a corpus folder (its scenes/*.h5)")
    p.add_argument("--refocus", type=Path, required=True, help="a refocus run's last.pt")
    p.add_argument("--merge", type=Path, required=True, help="a merge run's last.pt (same modality)")
    p.add_argument("--max-scenes", type=int, default=0, help="first N scene files only (0: all)")
    p.add_argument("--json", type=Path, help="write the per-scene figures here")
    args = p.parse_args(argv)
    pipeline = LearnedAIF([args.refocus, args.merge])
    files = sorted((args.corpus / "scenes").glob("*.h5"))
    if not files:
        raise SystemExit(f"no scene files in {args.corpus / 'scenes'}")
    files = files[:args.max_scenes or None]
    per_scene = {}
    for path in files:
        with EvalScene(path) as scene:
            per_scene[path.stem] = ablate(pipeline, scene)
        print(path.stem, "  ".join(f"{k}: {v:.2f}" for k, v in per_scene[path.stem].items()), flush=True)
    means = {k: float(np.mean([s[k] for s in per_scene.values()])) for k in (*ROWS, "stack size")}
    print(f"\n{pipeline.modality}, {len(files)} scenes, mean PSNR (dB)\n")
    print("| stack + merge | PSNR |\n|---|---:|")
    for k in ROWS:
        print(f"| {k} | {means[k]:.2f} |")
    print(f"\nmean stack size {means['stack size']:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"means": means, "scenes": per_scene}, indent=1))


if __name__ == "__main__":
    main()
