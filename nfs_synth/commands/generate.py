"""Render focal sweeps and simulate event and spike streams into one HDF5 file per scene.

The same job as `python generate.py`; RECIPE is a TOML file or the name of a shipped recipe (quick, paper).
"""
from __future__ import annotations

from pathlib import Path

from nfs_synth.run.workers import add_pool_arguments
from nfs_synth.scene.recipe import DEFAULT_RECIPE, load_recipe


def add_arguments(p) -> None:
    p.add_argument("recipe", nargs="?", default=str(DEFAULT_RECIPE),
                   help="TOML recipe, or quick / paper for a shipped one (default: %(default)s)")
    p.add_argument("--out", required=True, help="corpus folder (scenes/, manifest.json)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set sweep.frames=48 (repeatable)")
    p.add_argument("--scenes", metavar="START:STOP", help="only scenes START..STOP-1 (job arrays)")
    p.add_argument("--shard", metavar="I/N", help="only block I (0-based) of N equal blocks (job arrays); "
                   "auto: I and N of this SLURM array task")
    add_pool_arguments(p)


def run(args) -> int:
    from nfs_synth.run.ledger import check_recipe
    from nfs_synth.run.orchestrate import generate_corpus, select_scenes
    from nfs_synth.run.workers import check_pool_arguments, open_pool, policy_for
    from nfs_synth.scene.textures import catalog

    # every check that can fail comes before anything is started or created
    recipe = load_recipe(args.recipe, args.overrides)
    catalog(recipe["textures"])
    scenes = select_scenes(recipe["corpus"]["scenes"], args.scenes, args.shard)
    check_pool_arguments(args)
    check_recipe(args.out, recipe)
    with open_pool(args) as pool:
        manifest = generate_corpus(recipe, Path(args.out), scenes=scenes, pool=pool,
                                   policy=policy_for(args, pool, recipe["render"]["threads"]),
                                   progress=not args.no_progress)
    mine = [s for s in manifest["scenes"] if s["index"] in scenes]
    failed = [s["index"] for s in mine if s["status"] != "complete"]
    print(f"{len(mine) - len(failed)} of {len(scenes)} scenes complete in {args.out}"
          + (f"; failed scenes: {', '.join(map(str, failed))} (errors in manifest.json)" if failed else ""))
    return 1 if failed else 0
