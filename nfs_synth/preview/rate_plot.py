"""Event rate over the sweep, with the moment each object comes into focus marked: the rate peaks
when the focus crosses an object, as its edges sharpen (and again as they blur)."""
from __future__ import annotations

import numpy as np

from nfs_synth.aif.scene import EvalScene
from nfs_synth.drawing import new_plot, plot_png
from nfs_synth.scene.plan import object_depths_m

RATE_PLOT_PX = (900, 360)
_DPI = 100


def in_focus_times_us(depths_m, focus_distance_m: np.ndarray, timestamps_us: np.ndarray) -> list[float | None]:
    """When the focus distance equals each depth (linear between frames); None for a depth the sweep
    never reaches. The sweep runs near to far (its focus distance only grows)."""
    focus = np.asarray(focus_distance_m, np.float64)
    slack = 1e-9 * focus[-1]   # the background sits at the far end: equal, up to rounding
    return [float(np.interp(d, focus, timestamps_us)) if focus[0] - slack <= d <= focus[-1] + slack else None
            for d in depths_m]


def event_rate(t_us: np.ndarray, p: np.ndarray, t_end_us: int, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin centres (ms) and ON, OFF rates (events per ms) in `bins` equal bins over [0, t_end_us]."""
    edges = np.linspace(0, t_end_us, bins + 1)
    width_ms = (edges[1] - edges[0]) / 1e3
    on, _ = np.histogram(t_us[p == 1], edges)
    off, _ = np.histogram(t_us[p != 1], edges)
    return (edges[:-1] + edges[1:]) / 2e3, on / width_ms, off / width_ms


def rate_plot(scene: EvalScene) -> bytes:
    """PNG of the ON and the OFF event rate over the sweep (one bin per half frame interval), each on
    its own scale: the sensor's ON leak (DVS-Voltmeter's k4 + k5 * L) can bury the ON events of the
    sweep, while OFF events come only from darkening. A dashed line marks where each object's centre
    (from the plan) is in focus."""
    stamps = scene.timestamps_us
    events = scene.events
    centres, on, off = event_rate(events["t"], events["p"], int(stamps[-1]), 2 * (scene.n_frames - 1))
    fig = new_plot(RATE_PLOT_PX[0] / _DPI, RATE_PLOT_PX[1] / _DPI)
    axes = fig.subplots(2, 1, sharex=True)
    depths = object_depths_m(scene.plan)
    focus_times = in_focus_times_us(depths, scene.focus_distance_m, stamps)
    for ax, rate, name, colour in ((axes[0], on, "ON", "tab:red"), (axes[1], off, "OFF", "tab:blue")):
        ax.plot(centres, rate, color=colour, lw=1.0)
        ax.set_ylim(bottom=0, top=max(float(rate.max()) * 1.1, 1e-3))
        ax.set_ylabel(f"{name} events / ms", fontsize=8)
        for t in focus_times:
            if t is not None:
                ax.axvline(t / 1e3, color="tab:green", ls="--", lw=0.8)
    for obj, depth, t in zip(scene.plan["objects"], depths, focus_times):
        if t is not None:
            axes[0].text(t / 1e3, 1.0, f"{obj['name']} {depth:.2f} m", rotation=90, va="top",
                         ha="right", fontsize=6, transform=axes[0].get_xaxis_transform(), color="tab:green")
    axes[1].set_xlim(0, stamps[-1] / 1e3)
    axes[1].set_xlabel("time (ms)")
    focus = scene.focus_distance_m
    axes[0].set_title(f"{scene.path.name}: event rate over the sweep, focus {focus[0]:.2f} to {focus[-1]:.2f} m; "
                      "dashed: object centre in focus", fontsize=9)
    return plot_png(fig, _DPI)
