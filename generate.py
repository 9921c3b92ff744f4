#!/usr/bin/env python3
"""Make a corpus: `python generate.py [RECIPE] --out DIR [--set key=value ...]`.

RECIPE defaults to recipes/quick.toml. Re-running skips complete scenes.
"""
import sys

from nfs_synth.cli import generate_main

if __name__ == "__main__":
    sys.exit(generate_main(sys.argv[1:]))
