"""A scene on one PNG: sweep frames in a row, under them the events of the windows the frames split
the sweep into and the spike TFP images at the frames, then the all-in-focus image and depth."""
from __future__ import annotations

import cv2
import numpy as np

from nfs_synth.aif.scene import EvalScene
from nfs_synth.color import to_uint8
from nfs_synth.drawing import caption, enlarge
from nfs_synth.preview.panels import sweep_panels

TILE_MIN_SIDE = 128   # small renders are enlarged (whole factors) so that captions fit
ROW_TITLES = {"frame": "frame {}", "events": "ON red OFF blue", "spikes": "spike TFP"}


def sheet_frames(n_frames: int, columns: int) -> list[int]:
    """`columns` frame indices spread evenly over the sweep, first and last included (fewer if the
    sweep is shorter)."""
    return np.unique(np.linspace(0, n_frames - 1, columns).round().astype(int)).tolist()


def contact_sheet(scene: EvalScene, columns: int = 6) -> np.ndarray:
    """RGB uint8 image, one row per panel kind (frames, events, spikes), then all-in-focus and depth."""
    picks = sheet_frames(scene.n_frames, columns)
    window = (scene.n_frames - 1) / max(len(picks) - 1, 1)    # the windows tile the sweep
    rows = [[caption(enlarge(p.image, TILE_MIN_SIDE), ROW_TITLES[kind].format(i), p.note)
             for i, p in zip(picks, panels)]
            for kind, panels in sweep_panels(scene, picks, window).items()]
    lo, hi, depth_rgb = depth_colours(scene.depth_m)
    rows.append([caption(enlarge(scene.ground_truth_srgb, TILE_MIN_SIDE), "all-in-focus"),
                 caption(enlarge(depth_rgb, TILE_MIN_SIDE), "depth, near warm", f"{lo:.2f}-{hi:.2f} m")])
    strips = [np.concatenate(tiles, axis=1) for tiles in rows]
    width = max(s.shape[1] for s in strips)
    return np.concatenate([np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255)
                           for s in strips])


def depth_colours(depth: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(near, far, RGB uint8): inverse depth between the 1st and 99th percentile, turbo colour map."""
    finite = np.isfinite(depth) & (depth < 1e9)             # 1e10 where no surface
    lo, hi = (np.percentile(depth[finite], [1, 99]) if finite.any() else (0.0, 1.0))
    norm = np.clip((1.0 / np.maximum(depth, 1e-6) - 1 / hi) / (1 / lo - 1 / hi + 1e-12), 0, 1)
    return float(lo), float(hi), cv2.cvtColor(cv2.applyColorMap(to_uint8(norm), cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
