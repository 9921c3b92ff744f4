"""What a preview shows of a scene at a sweep frame: the rendered frame, the events of a window around
it (ON red, OFF blue) and the spike TFP image. A sensor that was off has no panel."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nfs_synth.aif.scene import EvalScene
from nfs_synth.color import srgb_encode
from nfs_synth.drawing import polarity_rgb

EVENT_GRID = 2       # event counts on half frame intervals: grid point 2 * i is frame i
SPIKE_CELLS = 4      # spike counts on quarter frame intervals
TFP_HALF_CELLS = 2   # so a TFP image spans one frame interval, as short as the sweep allows


@dataclass(frozen=True)
class Panel:
    image: np.ndarray    # (H, W, 3) float32 sRGB in [0, 1]
    note: str            # what the panel holds, in a few characters (fits under 96 px)


def streams_of(scene: EvalScene) -> list[str]:
    """The stream panels this scene can show: a window needs a sweep (two frames at least)."""
    if scene.n_frames < 2:
        return []
    return [name for name in ("events", "spikes") if name in scene.h5]


def sweep_panels(scene: EvalScene, frames: list[int], event_window_frames: float) -> dict[str, list[Panel]]:
    """Panels "frame", then "events" and "spikes" where stored, one per index in `frames`.

    Event windows are `event_window_frames` frame intervals long, centred on the frame, all coloured
    on one scale (so the windows where objects come into focus stand out); TFP images span one frame
    interval and are shown sRGB-encoded, like the frames, as the spike rate is linear intensity.
    """
    focus, stamps = scene.focus_distance_m, scene.timestamps_us
    out = {"frame": [Panel(scene.frame_srgb(i), f"{focus[i]:.2f} m {stamps[i] / 1e3:.0f} ms") for i in frames]}
    streams = streams_of(scene)
    if "events" in streams:
        ev = scene.event_stack(EVENT_GRID)
        half = max(1, round(event_window_frames * EVENT_GRID / 2))
        windows = [(max(0, EVENT_GRID * i - half), min(ev.edges_us.size - 1, EVENT_GRID * i + half)) for i in frames]
        counts = [(ev.on[hi] - ev.on[lo], ev.off[hi] - ev.off[lo]) for lo, hi in windows]
        peak = float(np.percentile(np.stack([on + off for on, off in counts]), 99))
        out["events"] = [Panel(polarity_rgb(on, off, peak), f"{int(on.sum() + off.sum())} events") for on, off in counts]
    if "spikes" in streams:
        sp = scene.spike_stack(SPIKE_CELLS)
        out["spikes"] = []
        for i in frames:
            j = sp.index_of(stamps[i])
            lo, hi = max(0, j - TFP_HALF_CELLS), min(sp.n_steps - 1, j + TFP_HALF_CELLS)
            grey = srgb_encode(np.clip(sp.tfp(j, TFP_HALF_CELLS), 0, 1))
            out["spikes"].append(Panel(np.repeat(grey[..., None], 3, axis=2), f"{(sp.t_us[hi] - sp.t_us[lo]) / 1e3:.3g} ms"))
    return out
