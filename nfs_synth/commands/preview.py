"""Pictures of each scene: a PNG contact sheet (sweep frames, event windows, spike TFP images,
all-in-focus, depth), a PNG of the event rate over the sweep with each object's in-focus time, and
with --video an animated GIF of the sweep."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from nfs_synth.aif.scene import EvalScene
from nfs_synth.corpus.atomic import write_bytes
from nfs_synth.drawing import png_bytes
from nfs_synth.errors import ON_ERROR, SCENE_FILE_ERRORS, ManifestError, SceneFileError, UsageError
from nfs_synth.corpus.manifest import existing_corpus
from nfs_synth.preview.contact_sheet import contact_sheet
from nfs_synth.preview.panels import streams_of
from nfs_synth.preview.rate_plot import rate_plot
from nfs_synth.preview.sweep_video import video_frames, write_gif


def add_arguments(p) -> None:
    p.add_argument("corpus", type=Path, help="corpus folder (with scenes/) or one scene file")
    p.add_argument("--frames", type=int, default=6, help="sweep frames per sheet, at least 1 (default 6)")
    p.add_argument("--out", type=Path, default=None, help="folder for the pictures (default CORPUS/preview)")
    p.add_argument("--video", action="store_true", help="also an animated GIF of each sweep, every frame")
    p.add_argument("--fps", type=float, default=12.0, help="video frames per second (default 12)")
    p.add_argument("--on-error", choices=ON_ERROR, default="skip",
                   help="a scene file that cannot be read: name it and go on (skip, the default) or stop there; "
                        "either way the pictures made are kept and the status is 1")


def run(args) -> int:
    if args.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {args.frames}")
    if not 1 <= args.fps <= 100:                       # GIF delays are whole centiseconds
        raise UsageError(f"--fps must be between 1 and 100, got {args.fps:g}")
    if args.corpus.is_file():
        files = [args.corpus]
    else:           # the manifest's files: anything else in scenes/ (exports, copies) is not a scene
        files = [args.corpus / e["file"] for e in existing_corpus(args.corpus)["scenes"] if e["status"] == "complete"]
        if not files:
            raise ManifestError(f"{args.corpus} has no complete scenes")
    out_dir = args.out or (args.corpus.parent if args.corpus.is_file() else args.corpus) / "preview"
    out_dir.mkdir(parents=True, exist_ok=True)
    bad = []
    for path in files:
        start = time.perf_counter()
        try:
            with EvalScene(path) as scene:
                written = [out_dir / f"{path.stem}.png"]
                write_bytes(written[-1], png_bytes(contact_sheet(scene, args.frames)))
                streams = streams_of(scene)
                if "events" in streams:
                    written.append(out_dir / f"{path.stem}_event_rate.png")
                    write_bytes(written[-1], rate_plot(scene))
                if args.video:
                    written.append(out_dir / f"{path.stem}_sweep.gif")
                    write_gif(written[-1], video_frames(scene), args.fps)
                missing = [name for name in ("events", "spikes") if name not in streams]
        except SCENE_FILE_ERRORS as err:
            bad.append(path)
            print(f"{path}: {err}; " + ("skipped" if args.on_error == "skip" else "stopping"), file=sys.stderr)
            if args.on_error == "stop":
                break
            continue
        note = f"; no {' or '.join(missing)} to show" if missing else ""
        print(f"{path.name}: {', '.join(str(p) for p in written)} ({time.perf_counter() - start:.1f} s{note})")
    if bad:
        raise SceneFileError(f"{len(bad)} scene file(s) could not be read: {', '.join(p.name for p in bad)}")
    return 0
