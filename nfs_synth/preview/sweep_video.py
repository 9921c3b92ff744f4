"""The focal sweep as an animated GIF (imageio's pillow plugin): per sweep frame the rendered frame,
the events around it and the spike TFP image side by side, with the time and the focus distance.

GIF rather than MP4: it needs no ffmpeg binary, plays inline in a README and in any browser, and at
preview sizes (a few hundred pixels, tens of frames) it stays small."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nfs_synth.aif.scene import EvalScene
from nfs_synth.corpus.atomic import atomic_path
from nfs_synth.drawing import caption, enlarge
from nfs_synth.errors import SceneFileError
from nfs_synth.preview.panels import sweep_panels

VIDEO_MIN_SIDE = 96           # small renders are enlarged (whole factors) so that captions fit
VIDEO_EVENT_WINDOW = 2        # frame intervals of events per video frame
PANEL_TITLES = {"frame": "frame", "events": "events", "spikes": "spike TFP"}


def video_frames(scene: EvalScene) -> list[np.ndarray]:
    """One RGB uint8 image per sweep frame, all of one size."""
    n_frames = scene.n_frames
    if n_frames < 2:
        raise SceneFileError(f"{scene.path}: {n_frames} frame; a sweep video needs at least 2")
    panels = sweep_panels(scene, list(range(n_frames)), VIDEO_EVENT_WINDOW)
    focus, stamps = scene.focus_distance_m, scene.timestamps_us
    legend = f"ON red, OFF blue; {VIDEO_EVENT_WINDOW}-frame windows" if "events" in panels else ""
    note = lambda kind, i: f"{i + 1}/{n_frames}" if kind == "frame" else panels[kind][i].note
    return [caption(np.concatenate([caption(enlarge(panels[kind][i].image, VIDEO_MIN_SIDE), PANEL_TITLES[kind],
                                            note(kind, i)) for kind in panels], axis=1),
                    f"t = {stamps[i] / 1e3:.1f} ms  focus {focus[i]:.3f} m", legend)
            for i in range(n_frames)]


def write_gif(target: Path, frames: list[np.ndarray], fps: float) -> None:
    """An endlessly looping GIF at `fps` frames per second (GIF delays are whole centiseconds)."""
    import imageio.v3 as iio

    with atomic_path(target) as tmp:            # the temporary name hides the suffix: name the format
        iio.imwrite(tmp, np.stack(frames), extension=".gif", plugin="pillow", duration=1000.0 / fps, loop=0)
