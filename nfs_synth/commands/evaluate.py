"""All-in-focus methods vs ground truth on a corpus split: CSV, Markdown table, one figure per scene.

Methods are sRGB-in/sRGB-out; the table states the colour convention of every number.  Method
options are passed as --option KEY=VALUE (e.g. grid=8, mu=0.5, weight_sigma=3, tfp_half_window=2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nfs_synth.aif.rig_view import VIEWS
from nfs_synth.errors import ON_ERROR, SceneFileError, UsageError

DEFAULT_METHODS = "input,handcraft-ev,handcraft-sp,uniform-ev,stack-laplacian"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", type=Path, help="corpus folder (manifest.json, scenes/)")
    parser.add_argument("--methods", default=DEFAULT_METHODS,
                        help="comma-separated method names (default: %(default)s); --list-methods shows all")
    parser.add_argument("--split", default="test", help="train, val, test or all (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="output folder (default: CORPUS/eval-SPLIT)")
    parser.add_argument("--input-frame", choices=("first", "index", "sweep"), default="first",
                        help="the defocused input: the sweep's first frame (the paper's protocol), frame "
                             "--input-index, or --sweep-count frames spread over the sweep (paper Fig. 7)")
    parser.add_argument("--input-index", type=int, default=0)
    parser.add_argument("--sweep-count", type=int, default=5)
    parser.add_argument("--convention", choices=("rgb", "y"), default="rgb",
                        help="colour convention of PSNR/SSIM/MS-SSIM (default: %(default)s)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="method option (repeatable); an unknown KEY is an error that lists the known ones")
    parser.add_argument("--max-scenes", type=int, default=0, help="evaluate only the first N scenes (0 = all)")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--on-error", choices=ON_ERROR, default="skip",
                        help="a scene file that cannot be read: name it and go on (skip, the default) or stop "
                             "there; either way the rows computed are in metrics.csv and the status is 1")
    parser.add_argument("--view", choices=VIEWS, default="sensor",
                        help="sensor (default): the rendered frames, aligned with the neuromorphic sensor; rgb: "
                             "what a hybrid rig gives (the RGB captures, the streams registered into their frame, "
                             "the ground truth rgb/all_in_focus); scene files made with rgb_camera.enabled")
    parser.add_argument("--list-methods", action="store_true", help="print the registered methods and exit")


def run(args: argparse.Namespace) -> int:
    from nfs_synth.aif.methods import available_methods
    from nfs_synth.aif.evaluation import EvalConfig, markdown_table, run_evaluation

    if args.list_methods:
        print("\n".join(available_methods()))
        return 0
    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--option expects KEY=VALUE, got {item!r}")
        options[key.strip()] = value.strip()
    cfg = EvalConfig(
        corpus=args.corpus, out=args.out or args.corpus / f"eval-{args.split}",
        methods=[m.strip() for m in args.methods.split(",") if m.strip()], split=args.split,
        input_frame=args.input_frame, input_index=args.input_index, sweep_count=args.sweep_count,
        convention=args.convention, options=options, figures=not args.no_figures, max_scenes=args.max_scenes,
        on_error=args.on_error, view=args.view)
    summary = run_evaluation(cfg)
    print(markdown_table(summary))
    print(f"results in {cfg.out}")
    if summary["skipped"]:
        raise SceneFileError(f"{len(summary['skipped'])} scene file(s) could not be read: "
                             + ", ".join(s["file"] for s in summary["skipped"])
                             + (" (the run stopped there: --on-error stop)" if args.on_error == "stop" else ""))
    return 0
