"""Export a scene's events (txt | npz | dsec-h5) or spikes (dat | npz) to a file other tools read."""
from __future__ import annotations

from pathlib import Path

FORMATS = {"events": ("txt", "npz", "dsec-h5"), "spikes": ("dat", "npz")}
SUFFIX = {"txt": ".txt", "npz": ".npz", "dsec-h5": ".h5", "dat": ".dat"}


def add_arguments(p) -> None:
    p.add_argument("stream", choices=sorted(FORMATS), help="which stream to export")
    p.add_argument("scene", type=Path, help="scene file (scene_NNNNN.h5)")
    p.add_argument("--format", required=True, help="events: txt, npz, dsec-h5; spikes: dat, npz")
    p.add_argument("--out", type=Path, default=None, help="output file (default: beside the scene)")
    p.add_argument("--no-flip", action="store_true", help="spikes .dat: rows top-down instead of bottom-up")


def run(args) -> int:
    if args.format not in FORMATS[args.stream]:
        raise SystemExit(f"error: {args.stream} export format must be one of {', '.join(FORMATS[args.stream])}")
    out = args.out or args.scene.with_name(f"{args.scene.stem}_{args.stream}{SUFFIX[args.format]}")
    try:
        if args.stream == "events":
            from ..corpus.events_io import export_events
            path = export_events(args.scene, args.format, out)
        else:
            from ..corpus.spikes_io import export_spikes
            path = export_spikes(args.scene, args.format, out, flip=not args.no_flip)
    except (ValueError, OSError) as err:
        print(f"error: {err}")
        return 1
    print(path)
    return 0
