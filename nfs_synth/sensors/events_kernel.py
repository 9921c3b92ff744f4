"""Numba kernels of the event simulator (see docs/events.md for the model).

Random numbers are counter-based: each (interval, row) owns a SplitMix64 stream seeded
by hashing (simulator key, interval index, row), and pixel x uses its counters
x * 2^32 + 1, 2, ...  The events therefore do not depend on thread scheduling, on how a
sequence is split into calls, or on re-running a row, which is what lets rows run in
parallel and an overflowing row be re-simulated with a larger buffer.
"""
import math

import numpy as np
from numba import njit

from nfs_synth.sensors.counter_rng import GAMMA, mix

_LO32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_TWO_M32 = 2.0 ** -32


@njit(cache=True, inline="always")
def _two_uniforms(h):
    # Two uniforms in the open interval (0, 1) from one 64-bit word.
    return ((h >> _S32) + 0.5) * _TWO_M32, ((h & _LO32) + 0.5) * _TWO_M32


def _ziggurat_tables(layers=1024, r=4.038849846109504, v=1.2263246463530893e-3):
    """Layer edges x, ratios x[i+1]/x[i] and densities exp(-x^2/2) of the Marsaglia-Tsang
    ziggurat for the normal density (Doornik's form).  r (the base strip's edge) and v (the
    common layer area) close the top layer at x = 0 for 1024 layers, solved to 1e-15; with
    1024 layers 99.57 % of draws take the fast path (256: 98.5 %, 3.5 times the slow paths)."""
    x = np.empty(layers + 1)
    x[0] = v / math.exp(-0.5 * r * r)
    x[1] = r
    for i in range(2, layers):
        x[i] = math.sqrt(-2.0 * math.log(v / x[i - 1] + math.exp(-0.5 * x[i - 1] ** 2)))
    x[layers] = 0.0
    return x, x[1:] / x[:-1], np.exp(-0.5 * x * x)


_ZIG_X, _ZIG_RATIO, _ZIG_F = _ziggurat_tables()
_ZIG_R = _ZIG_X[1]
_LAYER_SHIFT = np.uint64(54)  # the layer from the top 10 bits of a draw
_LO22 = np.uint64(0x3FFFFF)

# A buffered event is one int64, (time offset << 17) | (x << 1) | polarity: one store per
# event in the kernel and one load in the sort, instead of three each.
_T_SHIFT = 17


@njit(cache=True, inline="always")
def _pack(tr, x, on):
    return (tr << _T_SHIFT) | (np.int64(x) << 1) | np.int64(on)


@njit(cache=True, inline="always")
def _uniform(state, j):
    return ((mix(state + np.uint64(j) * GAMMA) & _LO32) + 0.5) * _TWO_M32


@njit(cache=True, inline="always")
def _abs_normal(state, j):
    """|Z| for Z ~ N(0, 1), exact (ziggurat), from draws j, j+1, ... of the stream, and a
    uniform u on 22 bits of Z's word that the ziggurat does not read (independent of Z).

    Returns (|Z|, u, next j).  The fast path (99.6 %) costs one hash and no transcendental.
    """
    while True:
        h = mix(state + np.uint64(j) * GAMMA)
        j += 1
        i = np.int64(h >> _LAYER_SHIFT)  # layer from the top 10 bits, value from the low 32
        x = ((h & _LO32) + 0.5) * _TWO_M32
        u = ((h >> _S32 & _LO22) + 0.5) * 2.0 ** -22
        if x < _ZIG_RATIO[i]:
            return x * _ZIG_X[i], u, j
        if i == 0:  # the tail beyond R, by Marsaglia's exponential rejection
            while True:
                u1, u2 = _two_uniforms(mix(state + np.uint64(j) * GAMMA))
                j += 1
                tx = -math.log(u1) / _ZIG_R
                if -2.0 * math.log(u2) >= tx * tx:
                    return _ZIG_R + tx, u, j
        # the wedge: accept z under the density, a point uniform between its layer's edges
        z = x * _ZIG_X[i]
        u3 = _uniform(state, j)
        j += 1
        if _ZIG_F[i] + u3 * (_ZIG_F[i + 1] - _ZIG_F[i]) < math.exp(-0.5 * z * z):
            return z, u, j


@njit(cache=True, inline="always", error_model="numpy")
def _p_on(mu, s2, a_dist, b_dist):
    """P(drifted Brownian motion from 0 hits +a_dist before -b_dist).

    Written with expm1 of non-positive arguments so it never overflows; the limits
    sigma -> 0 (certain polarity) and mu -> 0 (exactly b/(a+b)) come out right.  Beyond
    an exponent of 40 both expm1 round to -1, so the result is exact without them.
    """
    if mu > 0.0:
        if 2.0 * mu * b_dist > 40.0 * s2:
            return 1.0
        g = 2.0 * mu / s2
        return math.expm1(-g * b_dist) / math.expm1(-g * (a_dist + b_dist))
    if mu < 0.0:
        if -2.0 * mu * a_dist > 40.0 * s2:
            return 0.0
        g = 2.0 * mu / s2
        return 1.0 - math.expm1(g * a_dist) / math.expm1(g * (a_dist + b_dist))
    return b_dist / (a_dist + b_dist)


@njit(cache=True, inline="always", error_model="numpy")
def _passage(e, inv_e, c, s2, z2, u):
    """(1/T, T) for T the time Brownian motion with drift c >= 0, variance s2, takes to
    first reach e > 0 (inv_e = 1/e); z2 is a chi-square(1) draw, u uniform.

    Inverse Gaussian(mean e/c, shape e^2/s2) by Michael-Schucany-Haas, with the smaller
    root written as e/D, D = c + psi + sqrt(psi*(psi + 2c)), psi = s2*z2/(2e): no
    cancellation, c -> 0 gives the Levy law e^2/(s2*z2) and s2 -> 0 the deterministic e/c.
    Both the rate and the time from one division (the costliest instruction here).
    """
    psi = 0.5 * s2 * z2 * inv_e
    d = c + psi + math.sqrt(psi * (psi + 2.0 * c))
    # Keep root e/D with probability e/(e + c*e/D) = D/(D + c); else the other root,
    # e^2/(c^2 * e/D).  Selects, not a branch: the condition is a coin flip.  With
    # T = q/p, 1/T = p^2 w and T = q^2 w for w = 1/(p q).
    keep = u * (d + c) <= d
    p = d if keep else c * c
    q = e if keep else e * d
    w = 1.0 / (p * q)
    if p > 0.0:
        return p * p * w, q * q * w
    return 0.0, math.inf  # no drift and no noise: never


@njit(cache=True, inline="always")
def _outcome(r, on, e, rate, tau, t, dt):
    """(residual carried if no event comes before dt, event time, does it fire?) of a
    passage to the barrier e away from residual r, started at t."""
    left = dt - t
    step = e * left * rate  # the reference's carry (docs/events.md, Model)
    return r + step if on else r - step, t + tau, left * rate > 1.0


@njit(cache=True, inline="always")
def _barrier(r, on):
    return max(1.0 - r if on else 1.0 + r, 1e-300)  # rounding can put r on a barrier


@njit(cache=True, inline="always")
def _attempt(state, j, mu, s2, r):
    """One polarity draw and passage time from residual r.

    Conditioned on reaching its barrier, the passage time depends on the drift through
    |mu| only (Girsanov), so the same law serves drift towards or away from the barrier.
    Draws: the normal (and the root choice) from j on, then the polarity only when it is
    not certain.  Returns (ON?, barrier distance, 1/passage time, passage time, next
    draw index j).
    """
    z, u_acc, j = _abs_normal(state, j)
    p = _p_on(mu, s2, 1.0 - r, 1.0 + r)
    on = p >= 1.0
    if 0.0 < p < 1.0:
        on = _uniform(state, j) <= p
        j += 1
    e = _barrier(r, on)
    rate, tau = _passage(e, 1.0 / e, abs(mu), s2, z * z, u_acc)
    return on, e, rate, tau, j


@njit(cache=True, error_model="numpy")
def _attempts(row_seed, mus, s2s, js, rs, first, ts, dt, n, on_w, r_w, t_w, fast_w, fire_w):
    """`_attempt` for n pixels (drift mus, variance s2s, draw index js, residual rs unless
    not first, then 0, time ts) as straight-line code over contiguous arrays, which the
    compiler vectorises.

    fast_w is False where a rare slow path is needed (a ziggurat rejection, or a polarity
    that is not certain): the caller redoes those with `_attempt`; elsewhere the results
    are bit-identical to it, from one draw (the next is js + 1).  For each pixel: polarity
    on_w, the residual r_w carried if no event comes before the next frame, the event time
    t_w and whether it fires (fire_w).  Returns the number of slow paths.
    """
    n_slow = 0
    for k in range(n):
        mu = mus[k]
        s2 = s2s[k]
        r = rs[k] if first else 0.0
        h = mix(row_seed + np.uint64(js[k]) * GAMMA)
        i = np.int64(h >> _LAYER_SHIFT)
        x = ((h & _LO32) + 0.5) * _TWO_M32
        u_acc = ((h >> _S32 & _LO22) + 0.5) * 2.0 ** -22
        # Where `_p_on` is exactly 1 or 0; otherwise a slow path.
        certain_on = mu > 0.0 and 2.0 * mu * (1.0 + r) > 40.0 * s2
        certain_off = mu < 0.0 and -2.0 * mu * (1.0 - r) > 40.0 * s2
        on = certain_on
        e = _barrier(r, on)
        z = x * _ZIG_X[i]
        rate, tau = _passage(e, 1.0 / e, abs(mu), s2, z * z, u_acc)
        on_w[k] = on
        r_w[k], t_w[k], fire_w[k] = _outcome(r, on, e, rate, tau, ts[k], dt)
        fast = x < _ZIG_RATIO[i] and (certain_on or certain_off)
        fast_w[k] = fast
        n_slow += not fast
    return n_slow


@njit(cache=True, error_model="numpy")
def _simulate_row(l0, l1, res_in, res_out, y, dt, inv_dt, k1, k2, k3, k4, k5, k6, log_drift,
                  key, base, cap, buf, counts, hist,
                  mus, s2s, js, ts, rs, on_w, r_w, t_w, fast_w, fire_w, fired):
    """One row of `simulate_interval`, using the caller's work arrays (length width)."""
    width = l0.shape[1]
    with_hist = hist.size > 0
    # Drift and variance of the row first, in a loop the compiler can vectorise.
    for x in range(width):
        a0 = l0[y, x]
        a1 = l1[y, x]
        lm = 0.5 * (a0 + a1)
        inv = 1.0 / (lm + k2)
        if log_drift:
            signal = k1 * math.log((a1 + k2) / (a0 + k2)) * inv_dt
        else:
            signal = k1 * (a1 - a0) * inv_dt * inv
        mus[x] = signal + k4 + k5 * lm
        sigma = k3 * math.sqrt(lm) * inv + k6
        s2s[x] = sigma * sigma
        js[x] = (x << 32) + 1  # pixel x draws from counters x * 2^32 + 1, 2, ...: x = j >> 32
        ts[x] = 0.0
        rs[x] = res_in[y, x]
    row_seed = mix(key ^ mix(base | np.uint64(y)))
    res_row = res_out[y]
    row_buf = buf[y]
    # Pixels still stepping, in waves: every pixel, then those that fired, and so on;
    # the survivors of a wave are compacted to the front of js, ts, mus, s2s.
    n_act = width
    n = 0
    first = True
    while n_act > 0:
        n_slow = _attempts(row_seed, mus, s2s, js, rs, first, ts, dt, n_act, on_w, r_w, t_w,
                           fast_w, fire_w)
        a = 0
        while n_slow > 0:  # the rare slow paths, redone exactly
            if not fast_w[a]:
                n_slow -= 1
                r = rs[a] if first else 0.0
                on, e, rate, tau, j = _attempt(row_seed, js[a], mus[a], s2s[a], r)
                on_w[a] = on
                r_w[a], t_w[a], fire_w[a] = _outcome(r, on, e, rate, tau, ts[a], dt)
                js[a] = j - 1  # the draw a fast step would have ended on
            a += 1
        # Every pixel writes the residual it would carry (one that fires writes it again at
        # its last step), and those that fire are listed, without branches.
        m = 0
        if first:
            for a in range(n_act):  # pixel a
                res_row[a] = r_w[a]
                fired[m] = a
                m += fire_w[a]
        else:
            for a in range(n_act):
                res_row[js[a] >> 32] = r_w[a]
                fired[m] = a
                m += fire_w[a]
        # They record an event and move to the front (in place: fired[i] >= i).  Past cap
        # events are only counted: the row is re-run with a larger buffer.
        room = cap - n
        for i in range(m):
            a = fired[i]
            t = t_w[a]
            tr = np.int64(np.rint(t))
            if with_hist:
                hist[tr + 1] += 1
            if i < room:
                row_buf[n + i] = _pack(tr, js[a] >> 32, on_w[a])
            js[i] = js[a] + 1
            ts[i] = t
            mus[i] = mus[a]
            s2s[i] = s2s[a]
        n += m
        n_act = m
        first = False
    counts[y] = n


@njit(cache=True, nogil=True, error_model="numpy")
def simulate_interval(l0, l1, res_in, res_out, dt, k, log_drift, key, interval,
                      rows, cap, buf, counts, hist):
    """Events of one frame interval for the given rows (releases the GIL: callers run
    disjoint row sets in threads).

    Writes per-row events (time offset rounded to integer us, x, polarity; packed, see
    `_pack`) to buf[row, :cap] and the exact per-row count to counts[row] (counts > cap
    means the row overflowed and must be re-run with a larger cap; nothing else changes).
    Unless it is empty, hist[b + 1] counts the events at time offset b (of all rows,
    stored or not).
    res_out receives the residual carried into the next interval.
    """
    width = l0.shape[1]
    k1, k2, k3, k4, k5, k6 = k[0], k[1], k[2], k[3], k[4], k[5]
    inv_dt = 1.0 / dt
    base = np.uint64(interval) << _S32
    mus = np.empty(width)
    s2s = np.empty(width)
    js = np.empty(width, np.int64)
    ts = np.empty(width)
    rs = np.empty(width)
    on_w = np.empty(width, np.bool_)
    r_w = np.empty(width)
    t_w = np.empty(width)
    fast_w = np.empty(width, np.bool_)
    fire_w = np.empty(width, np.bool_)
    fired = np.empty(width, np.int64)
    for y in rows:
        _simulate_row(l0, l1, res_in, res_out, y, dt, inv_dt, k1, k2, k3, k4, k5, k6, log_drift,
                      key, base, cap, buf, counts, hist,
                      mus, s2s, js, ts, rs, on_w, r_w, t_w, fast_w, fire_w, fired)


@njit(cache=True, nogil=True)
def band_histogram(buf, counts, r0, r1, hist):
    """hist[b + 1] = number of events of rows r0..r1-1 at time offset b (hist zeroed)."""
    for y in range(r0, r1):
        for i in range(counts[y]):
            hist[(buf[y, i] >> _T_SHIFT) + 1] += 1


@njit(cache=True)
def band_starts(hist):
    """start[b, tr]: the first output index of band b's events at time offset tr (counted
    in hist[b, tr + 1]): all events at earlier offsets, then those of earlier bands at tr.
    Within one microsecond band b's events follow those of bands < b, so banded scatters
    give the order (time, row, buffer position) of one serial counting sort."""
    bands, size = hist.shape
    start = np.empty((bands, size - 1), np.int64)
    pos = 0
    for tr in range(size - 1):
        for b in range(bands):
            start[b, tr] = pos
            pos += hist[b, tr + 1]
    return start


@njit(cache=True, inline="always")
def _unpack_to(v, t0, y, j, out_t, out_x, out_y, out_p):
    out_t[j] = t0 + (v >> _T_SHIFT)
    out_x[j] = (v >> 1) & 0xFFFF
    out_y[j] = y
    out_p[j] = v & 1


@njit(cache=True, nogil=True)
def band_scatter(buf, counts, r0, r1, t0, start, out_t, out_x, out_y, out_p):
    """Stable scatter of rows r0..r1-1 into the output, start[b] being the first output
    index of their events at time offset b (advanced as it goes)."""
    for y in range(r0, r1):
        for i in range(counts[y]):
            v = buf[y, i]
            tr = v >> _T_SHIFT
            j = start[tr]
            start[tr] = j + 1
            _unpack_to(v, t0, y, j, out_t, out_x, out_y, out_p)


@njit(cache=True)
def gather_sorted(buf, counts, t0, dt, out_t, out_x, out_y, out_p):
    """Stable counting sort of the per-row buffers by time into the output fields.

    A tie keeps buffer order (row, then wave, then pixel), so the output is deterministic.
    (Serial: a parallel version writing the strided record fields ran slower.)
    """
    rows = counts.shape[0]
    hist = np.zeros(dt + 2, np.int64)
    band_histogram(buf, counts, 0, rows, hist)
    for b in range(1, dt + 2):
        hist[b] += hist[b - 1]
    band_scatter(buf, counts, 0, rows, t0, hist, out_t, out_x, out_y, out_p)


@njit(cache=True)
def gather_rows(buf, counts, t0, out_t, out_x, out_y, out_p):
    """Row-order gather (for intervals too long for a counting sort)."""
    pos = 0
    for y in range(counts.shape[0]):
        for i in range(counts[y]):
            _unpack_to(buf[y, i], t0, y, pos, out_t, out_x, out_y, out_p)
            pos += 1
