"""Re-run the sensor simulators on a corpus's stored renders for every point of a parameter grid.

Each variant lands in STUDY/vNNN/ as a corpus of its own whose scene files link to the source
frames and to the streams the grid does not change (nothing is copied, re-rendered or simulated twice;
--copy makes self-contained files) and record their parameters and source.
"""
from __future__ import annotations

from pathlib import Path

from nfs_synth.run.workers import add_pool_arguments, check_pool_arguments, open_pool, policy_for


def add_arguments(p) -> None:
    p.add_argument("corpus", type=Path, help="corpus folder (manifest.json, scenes/)")
    p.add_argument("--into", type=Path, required=True, help="study folder (study.json, v000/, v001/ ...)")
    p.add_argument("--set", dest="grid", action="append", default=[], metavar="sensors.KEY=V1,V2,...",
                   help="values of one sensor key (repeatable; the grid is every combination)")
    p.add_argument("--scenes", metavar="START:STOP", help="only these scenes of the corpus")
    p.add_argument("--copy", action="store_true",
                   help="self-contained variant files: copy the frames and the streams the grid does not "
                        "change instead of linking them to the source corpus")
    add_pool_arguments(p)


def run(args) -> int:
    from nfs_synth.run.orchestrate import select_scenes
    from nfs_synth.run.study import parse_grid, prepare_study, run_study

    # every check that can fail comes before anything is started or created
    grid = parse_grid(args.grid)
    source, found = prepare_study(args.corpus, args.into, grid)
    scenes = select_scenes(source["recipe"]["corpus"]["scenes"], args.scenes)
    check_pool_arguments(args)
    with open_pool(args) as pool:
        failed = run_study(args.corpus, args.into, grid, pool, policy_for(args, pool), scenes=scenes,
                           progress=not args.no_progress, self_contained=args.copy)
    print(f"{len(found)} variants in {args.into}"
          + "".join(f"; {name} failed scenes: {', '.join(map(str, idx))}" for name, idx in failed.items()))
    return 1 if failed else 0
