"""The random streams of a corpus, named in one place.

Scene i draws stream s from SeedSequence([corpus seed, i, s]) (the train/val/test split draws nothing:
`corpus.manifest.split_of`). Nothing depends on worker count, generation order or the scene count. Inside a
stream a simulator may spawn children of its own (the event simulator: parameters 0, noise 1), which
its scene-file attributes record.
"""
import numpy as np

PLAN, EVENTS, SPIKES, RGB, MOTION = 0, 1, 2, 3, 4      # per scene


def scene_seed(seed: int, index: int, stream: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, index, stream])
