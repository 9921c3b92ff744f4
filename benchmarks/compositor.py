"""The layered compositor alone, at paper size: frames composited inside the frame against the whole
overscanned canvas cut to the frame (the simple reference), in one run, on the same slab stack.

    PYTHONPATH=. .venv/bin/python benchmarks/compositor.py [--scene 0] [--every 4] [--workers 2]

The slabs of scene --scene of recipes/paper.toml (layered engine, bundled textures) are path-traced
once; then every --every-th frame of its 480-frame sweep is composited twice, with `SlabStack(view=
frame)` and with `view=None` cut afterwards. Prints CPU-s per frame of each (process CPU: the frame
threads included), their ratio, and whether every frame is bit-identical. Key blurs and visibility keys
are computed once per sweep, so a coarser --every overstates their share per frame.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import nfs_synth.render.layered.renderer as layered
from nfs_synth.scene import plan as plans, recipe as recipes, textures

PAPER = Path(__file__).resolve().parents[1] / "recipes" / "paper.toml"


def slab_stack_inputs(scene: int) -> tuple[dict, dict]:
    """The arguments the layered renderer gives SlabStack for this paper scene, and its plan."""
    recipe = recipes.load_recipe(PAPER, ['render.engine="layered"', 'textures.source="bundled"'])
    plan = plans.sample_plan(recipe, scene, None)
    tex = {tid: textures.load_texture(ref, recipe["textures"]) for tid, ref in plan["textures"].items()}
    captured = {}
    real = layered.SlabStack

    def capture(slabs, diopters, ppd, focus, **kw):
        captured.update(slabs=slabs, diopters=diopters, px_per_diopter=ppd, focus_diopters=focus, **kw)
        return real(slabs, diopters, ppd, focus, **kw)

    layered.SlabStack = capture
    try:
        with layered.LayeredRenderer(plan, tex) as renderer:
            renderer.all_in_focus()
    finally:
        layered.SlabStack = real
    return captured, plan


def sweep(inputs: dict, focus: list[float], whole_canvas: bool) -> tuple[list[np.ndarray], float]:
    """The frames and the CPU-s per frame (stack construction excluded), composited inside the frame
    or over the whole canvas and cut to the frame."""
    kw = dict(inputs)
    y0, y1, x0, x1 = kw["view"]
    if whole_canvas:
        kw["view"] = None
    stack = layered.SlabStack(kw.pop("slabs"), kw.pop("diopters"), kw.pop("px_per_diopter"),
                              kw.pop("focus_diopters"), **kw)
    start = time.process_time()
    frames = [f[y0:y1, x0:x1].copy() if whole_canvas else f for f in stack.frames(focus)]
    return frames, (time.process_time() - start) / len(focus)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", type=int, default=0)
    p.add_argument("--every", type=int, default=4)
    p.add_argument("--workers", type=int, default=2, help="frame threads")
    args = p.parse_args()
    inputs, plan = slab_stack_inputs(args.scene)
    inputs["workers"] = args.workers
    focus = list(plan["sweep"]["focus_distance_m"][::args.every])
    h, w = np.shape(inputs["slabs"][0])[:2]
    y0, y1, x0, x1 = inputs["view"]
    print(f"paper scene {args.scene}: {len(inputs['slabs'])} pieces, canvas {w} x {h}, frame {x1 - x0} x "
          f"{y1 - y0}; {len(focus)} frames, {args.workers} frame threads, load {os.getloadavg()[0]:.2f} at start")
    cut, cut_cpu = sweep(inputs, focus, whole_canvas=False)
    whole, whole_cpu = sweep(inputs, focus, whole_canvas=True)
    same = all(np.array_equal(a, b) for a, b in zip(cut, whole))
    print(f"whole canvas, cut (reference): {whole_cpu:.4f} CPU-s per frame")
    print(f"frame only:                    {cut_cpu:.4f} CPU-s per frame")
    print(f"ratio {whole_cpu / cut_cpu:.2f}x; frames bit-identical: {same}; load {os.getloadavg()[0]:.2f} at end")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
