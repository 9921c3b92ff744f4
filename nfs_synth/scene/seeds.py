"""The random streams of a corpus, named in one place.

Scene i draws stream s from SeedSequence([corpus seed, i, s]); the split assignment draws from
SeedSequence([corpus seed, SPLITS]). Nothing depends on worker count or generation order. Inside a
stream a simulator may spawn children of its own (the event simulator: parameters 0, noise 1), which
its scene-file attributes record.
"""
import numpy as np

PLAN, EVENTS, SPIKES = 0, 1, 2      # per scene
SPLITS = 99                         # per corpus: the permutation of scenes into train/val/test


def scene_seed(seed: int, index: int, stream: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, index, stream])


def split_seed(seed: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, SPLITS])
