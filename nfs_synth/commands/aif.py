"""All-in-focus image from a scene file or user data with trained NeuroRefocusNet + NeuroMergeNet.

Examples:
  nfs-synth aif --checkpoint runs/refocus-ev/last.pt --checkpoint runs/merge-ev/last.pt SCENE.h5 --frame 0
  nfs-synth aif --checkpoint R.pt --checkpoint M.pt --image photo.png --events sweep.h5 --out aif.png
  nfs-synth aif --checkpoint R.pt --checkpoint M.pt --image photo.png --spikes sweep.dat --input-time-us 0
User events: DSEC .h5, .npz with arrays t, x, y, p (as `nfs-synth export` writes it) or text `t x y p`
(.txt; t in integer us or float seconds, see --time-unit; p 1 = ON, 0 or -1 = OFF; sorted by t; an
optional `width height` first line). User spikes: a headerless .dat (rows bottom-up unless --no-flip) of
the --image's size at --readout-hz, or the .npz of `nfs-synth export spikes --format npz`.
Give one of --events/--spikes, the modality of the checkpoints. The image is 8/16-bit sRGB; its size
must match the sensor's. Time zero is the stream's own origin: DSEC's t_offset, t = 0 of a .txt or
.npz, the start of a .dat's first readout step (as `nfs-synth export` writes them, the first sweep
frame). --input-time-us (default 0) counts from it and must lie between 0 and the stream's last
event or step. Writes an sRGB PNG (and the refocused stack with --save-stack).
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np

from nfs_synth.errors import StreamFileError, UsageError


def add_arguments(p) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the docstring's example lines
    p.add_argument("--checkpoint", action="append", required=True,
                   help="a refocus and a merge checkpoint (give the option twice, any order)")
    p.add_argument("scene", nargs="?", type=Path, help="scene file (scene_NNNNN.h5)")
    p.add_argument("--frame", type=int, default=0, help="scene file: index of the input frame (default 0)")
    p.add_argument("--image", type=Path, help="user data: the RGB image (PNG, JPEG, TIFF)")
    p.add_argument("--events", type=Path, help="user data: events (.h5 DSEC, .txt, .npz)")
    p.add_argument("--spikes", type=Path, help="user data: spikes (.dat, .npz)")
    p.add_argument("--time-unit", choices=("auto", "us", "s"), default="auto",
                   help=".txt events: times in us or float seconds (ESIM, v2e, rpg); auto (default): seconds "
                        "when any time has a fractional part")
    p.add_argument("--input-time-us", type=int,
                   help="user data: time of the image, us from the stream's origin (default 0; see above)")
    p.add_argument("--readout-hz", type=float, default=20000.0,
                   help=".dat readout rate (default 20000; an .npz records its own)")
    p.add_argument("--no-flip", action="store_true", help=".dat rows stored top-down")
    p.add_argument("--candidates", type=int, default=16, help="refocus times probed, at least 1 (default 16)")
    p.add_argument("--grid", type=int, default=4,
                   help="N x N patches for the time selection, 1 to the image size (default 4)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, help="output PNG (default: beside the input, *_aif.png)")
    p.add_argument("--save-stack", action="store_true", help="also write the refocused stack as PNGs")


def _check_arguments(args) -> None:
    """Checks that must fail (status 2) before a checkpoint or stream is read."""
    if (args.scene is None) == (args.image is None):
        raise UsageError("give either a scene file or --image with --events/--spikes")
    if args.scene is not None and (args.events or args.spikes or args.input_time_us is not None):
        raise UsageError("--events, --spikes and --input-time-us go with --image, not with a scene file")
    if args.events and args.spikes:
        raise UsageError("give one of --events/--spikes: the checkpoints are for one modality")
    for flag, value in (("--candidates", args.candidates), ("--grid", args.grid)):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if not 0 < args.readout_hz < math.inf:
        raise UsageError(f"--readout-hz must be a positive number, got {args.readout_hz}")
    for flag, path in (("scene file", args.scene), ("--image", args.image), ("--events", args.events),
                       ("--spikes", args.spikes)):
        if path is not None and not path.is_file():
            raise UsageError(f"{flag} {path}: no such file")
    if args.spikes and args.spikes.suffix.lower() not in (".dat", ".npz"):
        raise UsageError(f"--spikes {args.spikes}: expected a .dat or .npz file")


def _check_out(out: Path) -> None:
    """Fails before any work when `out` cannot be written (its missing folders are made at the end)."""
    import cv2

    if not cv2.haveImageWriter(str(out)):
        raise UsageError(f"cannot write {out}: not an image file name OpenCV can write (use .png)")
    folder = out.parent
    while not folder.exists():
        folder = folder.parent
    if not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        raise UsageError(f"cannot write {out}: {folder} is not a writable folder")


def _check_grid(grid: int, shape: tuple[int, int]) -> None:
    if grid > min(shape):
        raise UsageError(f"--grid must be between 1 and {min(shape)} for a {shape[1]}x{shape[0]} image, got {grid}")


def _read_image(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] < 3:
        raise StreamFileError(f"{path}: not a readable RGB image")
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    return (img[..., 2::-1].astype(np.float32) / scale).clip(0, 1)  # BGR(A) -> RGB


def _write_image(path: Path, srgb: np.ndarray) -> None:
    import cv2

    from nfs_synth.corpus.atomic import write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(path.suffix, np.rint(srgb[..., ::-1].clip(0, 1) * 255).astype(np.uint8))
    if not ok:                                                     # OpenCV does not raise
        raise OSError(f"cannot encode {path}")
    write_bytes(path, png.tobytes())


def _user_stream(args, modality: str, shape: tuple[int, int]):
    """(reader, step_us, (0, t_end)) over the user's stream file, in us from its origin."""
    from nfs_synth.corpus.user_streams import read_user_events, read_user_spikes
    from nfs_synth.sensors.spikes import SpikeStream

    h, w = shape
    if modality == "events":
        if not args.events:
            raise UsageError("these checkpoints are for events: give --events")
        ev, sensor = read_user_events(args.events, args.time_unit)
        if sensor is not None and sensor != (h, w):
            raise UsageError(f"--image {args.image} is {w}x{h} but --events {args.events} is from a "
                             f"{sensor[1]}x{sensor[0]} sensor: the sizes must match")
        if ev.size == 0:
            raise StreamFileError(f"{args.events}: no events")
        if ev["x"].max() >= w or ev["y"].max() >= h:
            raise UsageError(f"{args.events}: events fall outside the {w}x{h} image")
        t = ev["t"]
        if t[0] < 0:
            raise StreamFileError(f"{args.events}: events at t = {int(t[0])} us, before the stream's origin")
        return (lambda lo, hi: ev[np.searchsorted(t, lo):np.searchsorted(t, hi)]), 0, (0, int(t[-1]))
    if not args.spikes:
        raise UsageError("these checkpoints are for spikes: give --spikes")
    stream, readout_hz = read_user_spikes(args.spikes, h, w, flip=not args.no_flip, readout_hz=args.readout_hz)
    t = stream.t_us
    if t.size == 0:
        raise StreamFileError(f"{args.spikes}: no spikes")

    def reader(lo, hi):
        a, b = np.searchsorted(t, lo), np.searchsorted(t, hi)
        return SpikeStream(stream.packed[a:b], t[a:b], h, w)

    # step n ends at (n + 1) / readout_hz: the first one starts at the origin
    return reader, max(1, int(round(1e6 / readout_hz))), (0, int(t[-1]))


def run(args) -> int:
    from nfs_synth.aif.learned import LearnedAIF, LearnedOptions, run_on_scene

    _check_arguments(args)
    pipeline = LearnedAIF(args.checkpoint, args.device, LearnedOptions(args.candidates, args.grid))
    if args.scene is not None:
        from nfs_synth.aif.scene import EvalScene

        out = args.out or args.scene.with_name(f"{args.scene.stem}_f{args.frame}_learned-{pipeline.modality}.png")
        _check_out(out)
        with EvalScene(args.scene) as scene:
            if not 0 <= args.frame < scene.n_frames:
                raise UsageError(f"--frame {args.frame} is out of range: {args.scene} has frames "
                                 f"0 to {scene.n_frames - 1}")
            _check_grid(args.grid, scene.size)
            result = run_on_scene(pipeline, scene, args.frame)
    else:
        out = args.out or args.image.with_name(f"{args.image.stem}_aif.png")
        _check_out(out)
        image = _read_image(args.image)
        _check_grid(args.grid, image.shape[:2])
        reader, step, (t0, t1) = _user_stream(args, pipeline.modality, image.shape[:2])
        t_in = 0 if args.input_time_us is None else args.input_time_us
        if not t0 <= t_in <= t1:
            raise UsageError(f"--input-time-us {t_in} is outside the stream, which spans {t0} to {t1} us")
        result = pipeline.run(image, t_in, (t0, t1), reader, step)
    _write_image(out, result.image)
    if args.save_stack:
        for k, (t, img) in enumerate(zip(result.times_us, result.stack)):
            _write_image(out.with_name(f"{out.stem}_stack{k:02d}_{t}us.png"), img)
    print(f"{out} ({len(result.times_us)} refocused images at {result.times_us} us)")
    return 0
