"""Samples/s of the training loader alone (no network): scene files vs the training-input cache.

The reference is the same dataset reading the corpus' scene files (gzip chunks, leak line fitted per
sample); the cache is `nfs-synth prepare`'s. Both run in this process's run through the loader `train`
uses (persistent workers, batches collated by torch), after one warm-up batch, and their samples are
checked equal first.

    PYTHONPATH=. python benchmarks/training_loader.py                      # makes a 288 px corpus first
    PYTHONPATH=. python benchmarks/training_loader.py --corpus DIR [--crop 256] [--samples 400] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from nfs_synth.aif.datasets import MergeDataset, RefocusDataset, corpus_scenes
from nfs_synth.aif.train import TrainConfig, make_loader

ROOT = Path(__file__).resolve().parents[1]
CORPUS_SETTINGS = ["--set", "corpus.scenes=4", "--set", "camera.width=288", "--set", "camera.height=288",
                   "--set", "sweep.frames=96", "--set", "corpus.splits.train=1", "--set", "corpus.splits.val=0",
                   "--set", "corpus.splits.test=0"]


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def throughput(dataset, batch: int, workers: int, samples: int) -> float:
    cfg = TrainConfig(stage="refocus", modality=dataset.modality, corpus="", out="", batch_size=batch, workers=workers)
    loader = make_loader(dataset, cfg, torch.device("cpu"))
    batches = samples // batch
    epoch, seen, t0 = 0, -1, None
    while seen < batches:
        loader.sampler.set_epoch(epoch)
        for _ in loader:
            seen += 1
            if seen == 0:
                t0 = time.perf_counter()      # after the warm-up batch: workers started, files open
            if seen == batches:
                break
        epoch += 1
    return batches * batch / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, help="an existing corpus with frames of at least --crop (default: make one)")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--samples", type=int, default=400)
    p.add_argument("--stage", choices=("refocus", "merge"), default="refocus")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="loader-bench-"))
    corpus = args.corpus
    if corpus is None:
        corpus = work / "corpus"
        run([sys.executable, "generate.py", "recipes/quick.toml", "--out", str(corpus), "--workers", "2",
             "--no-progress", *CORPUS_SETTINGS])
    scenes = corpus_scenes(corpus, "all")
    print(f"{len(scenes)} scenes of {corpus}; crop {args.crop}, batch {args.batch_size}, {args.workers} workers, "
          f"{args.samples} samples after one warm-up batch; {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| stage | modality | scene files samples/s | cache samples/s | ratio | cache MB/scene |")
    print("|---|---|---:|---:|---:|---:|")
    for modality in ("events", "spikes"):
        cache = work / f"cache-{modality}"
        t0 = time.perf_counter()
        run([sys.executable, "-m", "nfs_synth.cli", "prepare", "--corpus", str(corpus), "--modality", modality,
             "--out", str(cache), "--workers", "2", "--no-progress"])
        prepare_s = time.perf_counter() - t0
        make = (RefocusDataset if args.stage == "refocus" else MergeDataset)
        per_scene = max(1, args.samples // len(scenes))
        plain = make(scenes, modality, args.crop, per_scene, 0)
        cached = make(scenes, modality, args.crop, per_scene, 0, cache=cache)
        for i in range(0, len(plain), max(1, len(plain) // 5)):
            a, b = plain[i], cached[i]
            assert all(torch.equal(a[k], b[k]) for k in a), f"sample {i} differs between cache and scene files"
        rates = [throughput(ds, args.batch_size, args.workers, args.samples) for ds in (plain, cached)]
        mb = sum(f.stat().st_size for f in (cache / "scenes").glob("*.h5")) / len(scenes) / 2**20
        print(f"| {args.stage} | {modality} | {rates[0]:.1f} | {rates[1]:.1f} | {rates[1] / rates[0]:.1f}x | "
              f"{mb:.0f} (prepare {prepare_s / len(scenes):.1f} s/scene) |")
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
