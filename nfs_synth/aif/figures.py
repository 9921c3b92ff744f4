"""The evaluation's pictures: one row per scene (input, streams, every method, ground truth) and a
summary of PSNR per method as box plots."""
from __future__ import annotations

import math

import numpy as np

from nfs_synth.aif.scene import EvalScene
from nfs_synth.drawing import caption, enlarge, new_plot, plot_png, polarity_rgb


def stream_views(scene: EvalScene) -> list[tuple[str, np.ndarray]]:
    """Events of the whole sweep (ON red, OFF blue, white where none) and a mid-sweep spike-rate image."""
    views = []
    if "events" in scene.h5:
        ev = scene.event_stack()
        views.append(("events", polarity_rgb(ev.total_on, ev.total_off)))
    if "spikes" in scene.h5:
        sp = scene.spike_stack()
        rate = sp.tfp(sp.n_steps // 2, 2)
        views.append(("spikes", np.repeat((rate / max(float(rate.max()), 1e-6))[..., None], 3, axis=2)))
    return views


def scene_figure(scene: EvalScene, input_index: int, results: dict, scores: dict) -> np.ndarray:
    tiles = [caption(enlarge(scene.frame_srgb(input_index)), "input", f"frame {input_index}")]
    captions = {"events": "ON red, OFF blue", "spikes": "mid-sweep rate"}
    tiles += [caption(enlarge(img), name, captions[name]) for name, img in stream_views(scene)]
    for name, img in results.items():
        tiles.append(caption(enlarge(img), name, f"{scores[name]['psnr']:.2f} dB {scores[name]['ssim']:.3f}"))
    tiles.append(caption(enlarge(scene.ground_truth_srgb), "ground truth", "PSNR dB, SSIM"))
    return np.concatenate(tiles, axis=1)


def psnr_by_method(rows: list[dict], methods: list[str]) -> dict[str, list[float]]:
    """PSNR of every evaluated (scene, input frame) per method, in the order of `methods`; NaN dropped."""
    return {name: [r["psnr"] for r in rows if r["method"] == name and not math.isnan(r["psnr"])]
            for name in methods}


BOX_DPI = 100


def box_plot_size(n_methods: int) -> tuple[int, int]:
    """Width and height in pixels of the PSNR box plot of `n_methods` methods."""
    return round(max(4.0, 1 + 1.1 * n_methods) * BOX_DPI), 4 * BOX_DPI


def psnr_box_plot(psnr: dict[str, list[float]], title: str) -> bytes:
    """PNG: one box per method (median, quartiles, 1.5 IQR whiskers, outliers), points over it."""
    width, height = box_plot_size(len(psnr))
    fig = new_plot(width / BOX_DPI, height / BOX_DPI)
    ax = fig.add_subplot()
    names = list(psnr)
    ax.boxplot([psnr[n] for n in names], tick_labels=names, widths=0.6)
    for k, name in enumerate(names, start=1):   # the points too: a test split may hold a few scenes
        ax.plot(np.full(len(psnr[name]), k), psnr[name], ".", color="tab:blue", alpha=0.6)
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelrotation=20)
    ax.grid(axis="y", alpha=0.3)
    return plot_png(fig, BOX_DPI)
