"""Command-line entry points: `generate.py` and the `nfs-synth` subcommands.

Each subcommand lives in `nfs_synth/commands/<name>.py` with `add_arguments(parser)` and
`run(args) -> int`; only the chosen one is imported, so `nfs-synth preview` never loads torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from nfs_synth.errors import ManifestError, RecipeError, SceneFileError, TextureError, failure, usage_error
from nfs_synth.scene.recipe import DEFAULT_RECIPE, load_recipe

COMMANDS = {
    "preview": "contact sheets of a corpus (PNG per scene)",
    "export": "export a scene's events or spikes to other formats",
    "info": "table of a corpus: scenes, frames, events, spikes, bytes",
    "validate": "check scene files against the schema and the manifest hashes",
    "simulate": "re-run the sensor simulators on stored renders (sensor studies)",
    "evaluate": "all-in-focus methods vs ground truth on a corpus split",
    "train": "train NeuroRefocusNet / NeuroMergeNet on a corpus",
    "aif": "all-in-focus image from a scene file or user data with trained networks",
}


def generate_parser() -> argparse.ArgumentParser:
    from nfs_synth.run.workers import add_pool_arguments

    p = argparse.ArgumentParser(prog="generate.py", description="Render focal sweeps and simulate "
                                "event and spike streams into one HDF5 file per scene.")
    p.add_argument("recipe", nargs="?", default=str(DEFAULT_RECIPE), help="TOML recipe (default: %(default)s)")
    p.add_argument("--out", required=True, help="corpus folder (scenes/, manifest.json)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set sweep.frames=48 (repeatable)")
    p.add_argument("--scenes", metavar="START:STOP", help="only scenes START..STOP-1 (job arrays)")
    p.add_argument("--shard", metavar="I/N", help="only block I (0-based) of N equal blocks (job arrays); "
                   "auto: I and N of this SLURM array task")
    add_pool_arguments(p)
    return p


def generate_main(argv: list[str]) -> int:
    from nfs_synth.run.ledger import check_recipe
    from nfs_synth.run.orchestrate import generate_corpus, select_scenes
    from nfs_synth.run.workers import check_pool_arguments, open_pool, policy_for

    args = generate_parser().parse_args(argv)
    try:            # every check that can fail comes before anything is started or created
        recipe = load_recipe(args.recipe, args.overrides)
        from nfs_synth.scene.textures import catalog

        catalog(recipe["textures"])
        scenes = select_scenes(recipe["corpus"]["scenes"], args.scenes, args.shard)
        check_pool_arguments(args)
        check_recipe(args.out, recipe)
        pool = open_pool(args)
    except (ValueError, TextureError) as err:     # RecipeError, SelectionError, PoolError, bad JSON
        return usage_error(str(err))
    try:
        with pool:
            manifest = generate_corpus(recipe, Path(args.out), scenes=scenes, pool=pool,
                                       policy=policy_for(args, pool, recipe["render"]["threads"]),
                                       progress=not args.no_progress)
    except OSError as err:          # --out is a file or not writable, the disk is full
        return failure(err)
    mine = [s for s in manifest["scenes"] if s["index"] in scenes]
    failed = [s["index"] for s in mine if s["status"] != "complete"]
    print(f"{len(mine) - len(failed)} of {len(scenes)} scenes complete in {args.out}"
          + (f"; failed scenes: {', '.join(map(str, failed))} (errors in manifest.json)" if failed else ""))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    top = argparse.ArgumentParser(prog="nfs-synth", description="nfs_synth: neuromorphic focal-stack toolkit")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in COMMANDS:
        top.parse_args(argv or ["--help"])
        return 2
    module = importlib.import_module(f"nfs_synth.commands.{argv[0]}")
    parser = argparse.ArgumentParser(prog=f"nfs-synth {argv[0]}", description=module.__doc__)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except (RecipeError, TextureError) as err:
        return usage_error(str(err))
    except (OSError, SceneFileError, ManifestError) as err:
        return failure(err)
