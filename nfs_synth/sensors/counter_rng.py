"""SplitMix64, the counter-based generator of both sensor kernels.

Draw n of a stream keyed by `state` is `mix(state + n * GAMMA)`: any draw is computed directly from
its counter, so results do not depend on threads, chunking or re-running a row or step.

Numba's cache checks only the file that defines a cached function: after editing this file, clear the
__pycache__ of events_kernel.py and spikes_kernel.py (which inline `mix`), or they keep the old code.
"""
import numpy as np
from numba import njit

GAMMA = np.uint64(0x9E3779B97F4A7C15)  # the SplitMix64 increment (2^64 / golden ratio, odd)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31 = np.uint64(27), np.uint64(30), np.uint64(31)


@njit(cache=True, inline="always")
def mix(z):
    """The SplitMix64 finaliser: a bijection on uint64, so distinct counters give distinct words."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)
