"""Export a scene's events (txt | npz | dsec-h5) or spikes (dat | npz) to a file other tools read."""
from __future__ import annotations

from pathlib import Path

from nfs_synth.errors import UsageError

FORMATS = {"events": ("txt", "npz", "dsec-h5"), "spikes": ("dat", "npz")}
SUFFIX = {"txt": ".txt", "npz": ".npz", "dsec-h5": ".h5", "dat": ".dat"}


def add_arguments(p) -> None:
    p.add_argument("stream", choices=sorted(FORMATS), help="which stream to export")
    p.add_argument("scene", type=Path, help="scene file (scene_NNNNN.h5)")
    p.add_argument("--format", required=True, help="events: txt, npz, dsec-h5; spikes: dat, npz")
    p.add_argument("--out", type=Path, default=None,
                   help="output file, named with the format's suffix (.txt .npz .h5 .dat), or a folder for "
                        "SCENE_STREAM.SUFFIX (default: that name in the current folder, never the corpus's scenes/)")
    p.add_argument("--no-flip", action="store_true", help="spikes .dat: rows top-down instead of bottom-up")


def run(args) -> int:
    if args.format not in FORMATS[args.stream]:
        raise UsageError(f"{args.stream} export format must be one of {', '.join(FORMATS[args.stream])}, "
                         f"got {args.format!r}")
    suffix = SUFFIX[args.format]
    name = f"{args.scene.stem}_{args.stream}{suffix}"
    out = args.out / name if args.out and args.out.is_dir() else args.out or Path(name)
    if out.suffix != suffix:        # an .npz named .txt would mislead every tool that opens it
        raise UsageError(f"--out {out}: {args.format} exports are named *{suffix}")
    if out.resolve() == args.scene.resolve():
        raise UsageError(f"--out {out} is the scene file itself")
    if args.stream == "events":
        from nfs_synth.corpus.events_io import export_events
        path = export_events(args.scene, args.format, out)
    else:
        from nfs_synth.corpus.spikes_io import export_spikes
        path = export_spikes(args.scene, args.format, out, flip=not args.no_flip)
    print(path)
    return 0
