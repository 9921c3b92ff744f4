"""Numba kernel of the integrate-and-fire spike camera.

One call runs a block of readout steps for every pixel. Rows run in parallel; inside a row the pixel
loop is contiguous float32 so LLVM vectorises it, and the row's state stays in L1 across steps.

Per-step noise comes from a counter-based generator: the random bits of (step n, pixel p) are a
64-bit hash of (key, n, p). Nothing is carried between calls except the charge and the fired flag,
so cutting the sweep into chunks anywhere cannot change a single spike.
"""

import numpy as np
from numba import njit, prange

from nfs_synth.sensors.counter_rng import GAMMA, mix

_S8, _S16, _S32 = (np.uint64(s) for s in (8, 16, 32))
_BYTE_PAIRS = np.uint64(0x00FF00FF)
_LOW16 = np.uint64(0xFFFF)
# Sum of four uniform bytes: mean 4 * 127.5, variance 4 * (256**2 - 1) / 12.
_IH_MEAN = np.float32(510.0)
_IH_INV_STD = np.float32(1.0 / np.sqrt(4 * (256**2 - 1) / 12))


@njit(inline="always")
def _normal(h):
    """Approximately standard normal from the low 32 bits of h: Irwin-Hall sum of four bytes.

    Exact mean and variance, bounded at +-3.46 sigma; cheap and vectorisable, unlike Box-Muller.
    """
    x = (h & _BYTE_PAIRS) + ((h >> _S8) & _BYTE_PAIRS)
    s = (x & _LOW16) + ((x >> _S16) & _LOW16)
    return (np.float32(s) - _IH_MEAN) * _IH_INV_STD


@njit(inline="always")
def _pack_row(spk, out_row):
    for b in range(out_row.shape[0]):
        k = 8 * b
        out_row[b] = (spk[k] | (spk[k + 1] << 1) | (spk[k + 2] << 2) | (spk[k + 3] << 3)
                      | (spk[k + 4] << 4) | (spk[k + 5] << 5) | (spk[k + 6] << 6) | (spk[k + 7] << 7))


@njit(parallel=True, cache=True)
def integrate(charge, fired, start, delta, segment, weight, gain, dark, threshold,
              post_reset_gain, subtract, shot_scale, jitter, key, first_step, out):
    """Run len(weight) readout steps in place.

    charge (H, W) f32, fired (H, W) bool: state, updated.
    start, delta (K, H, W) f32: intensity of step s is start[segment[s]] + weight[s] * delta[segment[s]].
    gain, dark, threshold (H, W) f32: fixed pattern (dark in charge per step).
    shot_scale: variance of the charge increment per unit charge (1 / photons at full white), 0 = off.
    jitter: relative std of the threshold per comparison, 0 = off.
    key (uint64), first_step: the global index of step 0 of this call, for the noise counter.
    out (S, H, ceil(W/8)) uint8: spike bits, LSB first along each row.
    """
    height, width = charge.shape
    zero = np.float32(0.0)
    one = np.float32(1.0)
    noisy = shot_scale > 0 or jitter > 0
    for r in prange(height):
        q = charge[r].copy()
        f_prev = fired[r].copy()
        spk = np.zeros(out.shape[2] * 8, np.uint8)  # tail bits beyond width stay 0 (padding)
        g, d, th = gain[r], dark[r], threshold[r]
        row_base = np.uint64(r * width)
        for s in range(weight.shape[0]):
            i0, di, w = start[segment[s], r], delta[segment[s], r], weight[s]
            if noisy:
                step_key = mix(key + np.uint64(first_step + s) * GAMMA)
                for x in range(width):
                    a = g[x] * (i0[x] + w * di[x]) + d[x]
                    a = a * post_reset_gain if f_prev[x] else a
                    h = mix(step_key + (row_base + np.uint64(x)) * GAMMA)
                    a = max(a + np.sqrt(a * shot_scale) * _normal(h), zero)
                    v = q[x] + a
                    fire = v >= th[x] * (one + jitter * _normal(h >> _S32))
                    if fire:  # at most one spike per step: charge beyond 2 phi is lost (saturation)
                        v = min(v - th[x], th[x]) if subtract else zero
                    q[x] = v
                    f_prev[x] = fire
                    spk[x] = fire
            else:
                for x in range(width):
                    a = g[x] * (i0[x] + w * di[x]) + d[x]
                    a = a * post_reset_gain if f_prev[x] else a
                    v = q[x] + a
                    fire = v >= th[x]
                    if fire:
                        v = min(v - th[x], th[x]) if subtract else zero
                    q[x] = v
                    f_prev[x] = fire
                    spk[x] = fire
            _pack_row(spk, out[s, r])
        charge[r] = q
        fired[r] = f_prev
