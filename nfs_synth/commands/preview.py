"""Write a PNG contact sheet per scene: frames across the sweep, the all-in-focus image and depth."""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from nfs_synth.color import srgb_encode, to_uint8
from nfs_synth.corpus.atomic import write_bytes
from nfs_synth.corpus.scene_file import SceneReader
from nfs_synth.errors import ON_ERROR, SCENE_FILE_ERRORS, ManifestError, SceneFileError, UsageError
from nfs_synth.corpus.manifest import existing_corpus


def add_arguments(p) -> None:
    p.add_argument("corpus", type=Path, help="corpus folder (with scenes/) or one scene file")
    p.add_argument("--frames", type=int, default=6, help="sweep frames per sheet, at least 1 (default 6)")
    p.add_argument("--out", type=Path, default=None, help="folder for PNGs (default CORPUS/preview)")
    p.add_argument("--on-error", choices=ON_ERROR, default="skip",
                   help="a scene file that cannot be read: name it and go on (skip, the default) or stop there; "
                        "either way the sheets made are kept and the status is 1")


def contact_sheet(scene: SceneReader, columns: int = 6) -> np.ndarray:
    """RGB uint8 image: one row of sweep frames, then all-in-focus and colour-mapped depth."""
    h, w = scene.size
    picks = np.unique(np.linspace(0, scene.num_frames - 1, columns).round().astype(int))
    focus, stamps = scene.focus_distance_m, scene.timestamps_us
    tiles = [_label(to_uint8(srgb_encode(scene.frame(i))), f"{focus[i]:.2f} m  {stamps[i] / 1e3:.0f} ms")
             for i in picks]
    depth = scene.depth_m
    finite = np.isfinite(depth) & (depth < 1e9)
    lo, hi = (np.percentile(depth[finite], [1, 99]) if finite.any() else (0.0, 1.0))
    norm = np.clip((1.0 / np.maximum(depth, 1e-6) - 1 / hi) / (1 / lo - 1 / hi + 1e-12), 0, 1)  # near = warm
    depth_rgb = cv2.cvtColor(cv2.applyColorMap(to_uint8(norm), cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    bottom = [_label(to_uint8(srgb_encode(scene.all_in_focus)), "all-in-focus"),
              _label(depth_rgb, f"depth {lo:.2f}-{hi:.2f} m")]
    row1 = np.concatenate(tiles, axis=1)
    row2 = np.concatenate(bottom + [np.zeros((h, w, 3), np.uint8)] * (len(tiles) - 2), axis=1) \
        if len(tiles) >= 2 else np.concatenate(bottom, axis=1)
    width = max(row1.shape[1], row2.shape[1])
    pad = lambda r: np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)))
    return np.concatenate([pad(row1), pad(row2)], axis=0)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = np.ascontiguousarray(img)
    scale = max(0.25, img.shape[1] / 400)
    cv2.putText(img, text, (2, int(12 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return img


def run(args) -> int:
    if args.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {args.frames}")
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
        try:
            with SceneReader(path) as scene:
                sheet = contact_sheet(scene, args.frames)
        except SCENE_FILE_ERRORS as err:
            bad.append(path)
            print(f"{path}: {err}; " + ("skipped" if args.on_error == "skip" else "stopping"), file=sys.stderr)
            if args.on_error == "stop":
                break
            continue
        target = out_dir / f"{path.stem}.png"
        ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        if not ok:                                                 # OpenCV does not raise
            raise OSError(f"{target}: cannot encode the PNG")
        write_bytes(target, png.tobytes())
        print(target)
    if bad:
        raise SceneFileError(f"{len(bad)} scene file(s) could not be read: {', '.join(p.name for p in bad)}")
    return 0
