"""Learning curve of the learned all-in-focus methods (issue 15): train NeuroRefocusNet and NeuroMergeNet
per modality at several budgets, evaluate each beside the hand-crafted baselines, write a table and a plot.

    python scripts/learning_curve.py --train TRAIN_CORPUS --test TEST_CORPUS --cache-ev CACHE --cache-sp CACHE \
        --out runs/learning-curve --budgets 2:2,6:3,18:6

Without caches the nets read the scene files. `--view` / `--eval-view` choose what the nets are trained
and scored on (`rig_view`): e.g. a net trained on an idealised corpus (`--view sensor`) and one trained
on a hybrid-rig corpus (`--view rgb`), both scored on the rig's test split with `--eval-view rgb`.

A budget is REFOCUS_EPOCHS:MERGE_EPOCHS; each is its own run with the full learning-rate schedule (a
snapshot of a longer run would be cut before its schedule decays). The merge net is trained on oracle
stacks (rendered frames), so the two nets of a budget train independently. Runs already complete in --out
are kept, so an interrupted curve resumes, and the rows of earlier calls on the same --out stay in its table
and plot (`--modalities spikes --budgets 54:18` adds one point). CPU time is that of the training processes and their loader
workers (getrusage of children), so it does not depend on what else shares the machine. `--norm` picks
the nets' normalisation (group, the default, or batch, docs/networks.md "Normalisation"); runs and rows of
both sit in the same --out (group-norm runs named ...-group), so one table and plot compare the two.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

BASE_METHODS = "input,handcraft-ev,uniform-ev,handcraft-sp,stack-laplacian"
SHORT = {"events": "ev", "spikes": "sp"}


def parse_budgets(text: str) -> list[tuple[int, int]]:
    budgets = []
    for item in text.split(","):
        refocus, _, merge = item.partition(":")
        if not (refocus.isdigit() and merge.isdigit()) or int(refocus) < 1 or int(merge) < 1:
            raise SystemExit(f"--budgets: {item!r} is not REFOCUS_EPOCHS:MERGE_EPOCHS with both >= 1")
        budgets.append((int(refocus), int(merge)))
    return budgets


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _epochs_logged(run: Path) -> int:
    log = run / "log.csv"
    return len(list(csv.DictReader(log.open()))) if log.exists() else 0


def train_run(args, run: Path, stage: str, modality: str, epochs: int) -> dict:
    """Train one net unless `run` already holds a complete run; returns its cost (kept in run/cost.json)."""
    cost_file = run / "cost.json"
    if cost_file.exists() and _epochs_logged(run) == epochs:
        return json.loads(cost_file.read_text())
    per_scene = args.samples_per_scene if stage == "refocus" else args.merge_samples_per_scene
    cache = getattr(args, f"cache_{SHORT[modality]}")
    cmd = [sys.executable, "-m", "nfs_synth.cli", "train", "--stage", stage, "--modality", modality,
           "--corpus", str(args.train), *(["--cache", str(cache)] if cache else []), "--view", args.view,
           "--out", str(run), "--epochs", str(epochs), "--samples-per-scene", str(per_scene),
           "--width-mult", str(args.width), "--norm", args.norm, "--crop", str(args.crop), "--batch-size", str(args.batch_size),
           "--perceptual-weight", str(args.perceptual_weight), "--workers", str(args.workers)]
    if stage == "merge":
        cmd += ["--stack-size", str(args.stack_size)]
    if run.exists():                    # an interrupted run: continue it rather than start over
        cmd.append("--resume")
    cpu0, wall0 = _children_cpu_s(), time.perf_counter()
    subprocess.run(cmd, check=True)
    cost = {"cpu_s": _children_cpu_s() - cpu0, "wall_s": time.perf_counter() - wall0,
            "samples": sum(int(r["samples"]) for r in csv.DictReader((run / "log.csv").open()))}
    cost_file.write_text(json.dumps(cost))
    return cost


def evaluate(args, out: Path, methods: str, options: list[str]) -> dict:
    summary = out / "summary.json"
    if not summary.exists():
        cmd = [sys.executable, "-m", "nfs_synth.cli", "evaluate", str(args.test), "--split", "test",
               "--out", str(out), "--no-figures", "--methods", methods, "--view", args.eval_view]
        for option in options:
            cmd += ["--option", option]
        subprocess.run(cmd, check=True)
    return json.loads(summary.read_text())["means"]


def run_tag(modality: str, refocus_epochs: int, merge_epochs: int, norm: str) -> str:
    return f"{SHORT[modality]}-r{refocus_epochs}-m{merge_epochs}" + ("" if norm == "batch" else f"-{norm}")


def row_norm(row: dict) -> str:
    return row.get("norm", "batch")  # rows written before the option are batch norm


def label(row: dict) -> str:
    norm = row_norm(row)
    return f"learned-{SHORT[row['modality']]}" + ("" if norm == "batch" else f" ({norm} norm)")


def merged_rows(path: Path, rows: list[dict]) -> list[dict]:
    """`rows` added to those an earlier call wrote to `path` (a row of the same modality, norm and budget
    is replaced), so a later budget adds a point to the curve instead of replacing it."""
    def key(r):
        return r["modality"], row_norm(r), r["refocus_epochs"], r["merge_epochs"]
    kept = {key(r): r for r in (json.loads(path.read_text())["rows"] if path.exists() else [])}
    kept.update({key(r): r for r in rows})
    return sorted(kept.values(), key=lambda r: (r["modality"], row_norm(r), r["cpu_min"]))


def plot(rows: list[dict], base: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    colours = {"events": "tab:blue", "spikes": "tab:red"}
    for modality, colour in colours.items():
        for name in dict.fromkeys(label(r) for r in rows if r["modality"] == modality):
            mine = [r for r in rows if label(r) == name]
            ax.plot([r["cpu_min"] for r in mine], [r["psnr"] for r in mine], "s:" if row_norm(mine[0]) == "batch" else "o-",
                    color=colour, label=name)
        ax.axhline(base[f"handcraft-{SHORT[modality]}"]["psnr"], color=colour, ls="--", lw=1,
                   label=f"handcraft-{SHORT[modality]}")
    ax.axhline(base["input"]["psnr"], color="grey", ls=":", lw=1, label="input")
    ax.axhline(base["stack-laplacian"]["psnr"], color="black", ls="-.", lw=1, label="stack-laplacian")
    ax.set_xscale("log")
    ax.set_xlabel("training CPU-minutes (both nets)")
    ax.set_ylabel("test PSNR (dB, sRGB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--test", type=Path, required=True)
    p.add_argument("--cache-ev", type=Path, help="training cache of --train for events (default: scene files)")
    p.add_argument("--cache-sp", type=Path, help="training cache of --train for spikes (default: scene files)")
    p.add_argument("--view", choices=("sensor", "rgb"), default="sensor", help="what the nets train on")
    p.add_argument("--eval-view", choices=("sensor", "rgb"), default="sensor", help="what the test scores")
    p.add_argument("--modalities", default="events,spikes", help="comma-separated (default %(default)s)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--budgets", default="2:2,6:3,18:6", help="REFOCUS_EPOCHS:MERGE_EPOCHS,... (default %(default)s)")
    p.add_argument("--samples-per-scene", type=int, default=4, help="refocus samples per scene per epoch")
    p.add_argument("--merge-samples-per-scene", type=int, default=1)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--norm", choices=("batch", "group"), default="group", help="the nets' normalisation layers")
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--stack-size", type=int, default=6)
    p.add_argument("--perceptual-weight", type=float, default=0.05)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--plot", type=Path, help="PNG path (default OUT/learning_curve.png)")
    args = p.parse_args(argv)
    budgets = parse_budgets(args.budgets)
    args.out.mkdir(parents=True, exist_ok=True)

    base = evaluate(args, args.out / "eval-base", BASE_METHODS, [])
    rows = []
    for modality in args.modalities.split(","):
        short = SHORT[modality]
        for refocus_epochs, merge_epochs in budgets:
            tag = run_tag(modality, refocus_epochs, merge_epochs, args.norm)
            refocus = train_run(args, args.out / f"refocus-{tag}", "refocus", modality, refocus_epochs)
            merge = train_run(args, args.out / f"merge-{tag}", "merge", modality, merge_epochs)
            ckpts = f"{args.out}/refocus-{tag}/last.pt;{args.out}/merge-{tag}/last.pt"
            means = evaluate(args, args.out / f"eval-{tag}", f"learned-{short}", [f"checkpoints_{short}={ckpts}"])
            m = means[f"learned-{short}"]
            rows.append({"modality": modality, "norm": args.norm, "refocus_epochs": refocus_epochs, "merge_epochs": merge_epochs,
                         "refocus_samples": refocus["samples"], "merge_samples": merge["samples"],
                         "cpu_min": (refocus["cpu_s"] + merge["cpu_s"]) / 60,
                         "wall_min": (refocus["wall_s"] + merge["wall_s"]) / 60,
                         "psnr": m["psnr"], "ssim": m["ssim"], "lpips": m["lpips"],
                         "gain_db": m["psnr"] - base[f"handcraft-{short}"]["psnr"]})
    rows = merged_rows(args.out / "learning_curve.json", rows)
    (args.out / "learning_curve.json").write_text(json.dumps({"base": base, "rows": rows}, indent=1))

    lines = ["| method | budget (refocus / merge epochs) | samples (refocus / merge) | CPU-min | wall-min | "
             "PSNR | SSIM | LPIPS | vs handcraft (dB) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, m in base.items():
        lines.append(f"| {name} | | | | | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['lpips']:.4f} | |")
    for r in rows:
        lines.append(f"| {label(r)} | {r['refocus_epochs']} / {r['merge_epochs']} | "
                     f"{r['refocus_samples']} / {r['merge_samples']} | {r['cpu_min']:.1f} | {r['wall_min']:.1f} | "
                     f"{r['psnr']:.2f} | {r['ssim']:.4f} | {r['lpips']:.4f} | {r['gain_db']:+.2f} |")
    table = "\n".join(lines) + "\n"
    (args.out / "learning_curve.md").write_text(table)
    plot(rows, base, args.plot or args.out / "learning_curve.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
