"""Command-line entry points: `generate.py` and the `nfs-synth` subcommands.

Each subcommand lives in `nfs_synth/commands/<name>.py` with `add_arguments(parser)` and
`run(args) -> int`; only the chosen one is imported, so `nfs-synth preview` never loads torch.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from nfs_synth import __version__
from nfs_synth.errors import DataError, Interrupted, UsageError, report, report_interrupt

COMMANDS = {
    "generate": "make a corpus from a recipe (the same as generate.py)",
    "preview": "contact sheets of a corpus (PNG per scene)",
    "export": "export a scene's events or spikes to other formats",
    "info": "table of a corpus: scenes, frames, events, spikes, bytes",
    "validate": "check scene files against the schema and the manifest hashes",
    "simulate": "re-run the sensor simulators on stored renders (sensor studies)",
    "evaluate": "all-in-focus methods vs ground truth on a corpus split",
    "prepare": "training-input cache of a corpus (fast random crops for train)",
    "train": "train NeuroRefocusNet / NeuroMergeNet on a corpus",
    "score": "a trained net on its own stage's task over a split (held-out check)",
    "aif": "all-in-focus image from a scene file or user data with trained networks",
}


def generate_main(argv: list[str]) -> int:
    """`python generate.py ...`: the `generate` subcommand under the script's own name."""
    return _run_command("generate", argv, prog="generate.py")


def _first_interrupt(signum, frame):
    """The first Ctrl-C stops cleanly (KeyboardInterrupt); a second one ends the process at once (the
    render workers die with it: PR_SET_PDEATHSIG)."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    raise KeyboardInterrupt


def _reported(run, args) -> int:
    """The one place errors become exit statuses: UsageError 2, DataError and OSError 1 (errors.py),
    Ctrl-C 130."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _first_interrupt) if in_main else None
    try:
        return int(run(args) or 0)
    except (UsageError, DataError, OSError) as err:
        return report(err)
    except (Interrupted, KeyboardInterrupt) as err:
        return report_interrupt(err)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)


def _run_command(name: str, argv: list[str], prog: str) -> int:
    module = importlib.import_module(f"nfs_synth.commands.{name}")
    parser = argparse.ArgumentParser(prog=prog, description=module.__doc__)
    module.add_arguments(parser)
    return _reported(module.run, parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    top = argparse.ArgumentParser(prog="nfs-synth", description="nfs_synth: neuromorphic focal-stack toolkit")
    top.add_argument("--version", action="version", version=f"nfs-synth {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in COMMANDS:
        top.parse_args(argv or ["--help"])
        return 2
    return _run_command(argv[0], argv[1:], prog=f"nfs-synth {argv[0]}")


if __name__ == "__main__":        # python -m nfs_synth.cli, e.g. to run a worktree without installing it
    sys.exit(main())
