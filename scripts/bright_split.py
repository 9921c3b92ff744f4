"""A method's per-scene PSNR gain over a baseline, split into bright and other scenes (docs/networks.md).

Bright scenes are those whose input (the sweep's first frame) has a mean linear RGB above --threshold;
they are where batch-normalised spikes refocus nets failed. Reads `nfs-synth evaluate` metrics.csv files:

    python scripts/bright_split.py --test runs/lc/test --csv runs/lc/curve/eval-base/metrics.csv \\
        --csv runs/lc/curve/eval-sp-r18-m6/metrics.csv --method learned-sp --baseline handcraft-sp
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from nfs_synth.aif.scene import EvalScene


def psnr_by_scene(paths: list[Path], method: str) -> dict[str, float]:
    rows = [r for path in paths for r in csv.DictReader(path.open()) if r["method"] == method]
    if not rows:
        raise SystemExit(f"no rows of method {method!r} in {', '.join(map(str, paths))}")
    return {r["scene_file"]: float(r["psnr"]) for r in rows if r["input_index"] == "0"}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--test", type=Path, required=True, help="the evaluated corpus (its scenes/)")
    p.add_argument("--csv", type=Path, action="append", required=True, help="metrics.csv (repeatable)")
    p.add_argument("--method", required=True)
    p.add_argument("--baseline", required=True)
    p.add_argument("--threshold", type=float, default=0.35, help="mean linear RGB of a bright input")
    args = p.parse_args(argv)
    method, baseline = psnr_by_scene(args.csv, args.method), psnr_by_scene(args.csv, args.baseline)
    gains = {"bright": [], "other": []}
    for name in sorted(method.keys() & baseline.keys()):
        with EvalScene(args.test / name) as scene:
            bright = float(scene.frame(0).mean()) > args.threshold
        gains["bright" if bright else "other"].append((Path(name).stem, method[name] - baseline[name]))
    for group, rows in gains.items():
        values = np.array([gain for _, gain in rows])
        scenes = " ".join(name for name, _ in rows) if group == "bright" else ""
        mean = f"{values.mean():+.2f} dB" if len(values) else "n/a"
        print(f"{group}: {len(rows)} scenes, {args.method} - {args.baseline} = {mean} {scenes}".rstrip())


if __name__ == "__main__":
    main()
