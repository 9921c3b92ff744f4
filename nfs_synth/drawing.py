"""Picture pieces shared by the previews and the evaluation figures: event polarity colours, enlarged
tiles with caption strips, PNG bytes (OpenCV for images, matplotlib's Agg backend for plots)."""
from __future__ import annotations

import io
import math

import cv2
import numpy as np

from nfs_synth.color import to_uint8

CAPTION_HEIGHT = 28  # two lines of FONT_HERSHEY_PLAIN at 0.8


def polarity_rgb(on: np.ndarray, off: np.ndarray, peak: float | None = None) -> np.ndarray:
    """ON counts red, OFF counts blue, white where there are none; (H, W, 3) float32 in [0, 1].
    `peak` (counts at full colour) defaults to the 99th percentile of ON + OFF, so that a few hot
    pixels do not wash out the rest; pass one peak to compare several windows."""
    on, off = np.asarray(on, np.float32), np.asarray(off, np.float32)
    if peak is None:
        peak = float(np.percentile(on + off, 99))
    r, b = np.clip(on / max(peak, 1.0), 0, 1), np.clip(off / max(peak, 1.0), 0, 1)
    return np.stack([1 - b, 1 - np.maximum(r, b), 1 - r], axis=-1)


def enlarge(img: np.ndarray, min_side: int = 128) -> np.ndarray:
    """uint8 tile of an image in [0, 1] (or uint8), enlarged by a whole factor (nearest neighbour, so
    pixels stay visible) until its short side is at least `min_side`."""
    tile = img if img.dtype == np.uint8 else to_uint8(img)
    scale = max(1, math.ceil(min_side / min(tile.shape[:2])))
    return cv2.resize(tile, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) if scale > 1 else tile


def caption(tile: np.ndarray, *lines: str) -> np.ndarray:
    """The tile with a white strip below holding up to two lines of black text."""
    strip = np.full((CAPTION_HEIGHT, tile.shape[1], 3), 255, np.uint8)
    for n, text in enumerate(lines[:2]):
        cv2.putText(strip, text, (2, 11 + 13 * n), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([tile, strip])


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:                                                 # OpenCV does not raise
        raise OSError("cannot encode the PNG")
    return png.tobytes()


def new_plot(width_in: float, height_in: float):
    """A matplotlib Figure drawn by the Agg canvas: no pyplot, no global backend, no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_png(fig, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
