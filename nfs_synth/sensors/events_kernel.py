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

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_LO32 = np.uint64(0xFFFFFFFF)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_TWO_M32 = 2.0 ** -32


@njit(cache=True, inline="always")
def _mix(z):
    # SplitMix64 finaliser: a bijection on uint64, so distinct counters give distinct seeds.
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def _two_uniforms(h):
    # Two uniforms in the open interval (0, 1) from one 64-bit word.
    return ((h >> _S32) + 0.5) * _TWO_M32, ((h & _LO32) + 0.5) * _TWO_M32


def _ziggurat_tables(layers=256, r=3.6541528853610088, v=4.92867323399e-3):
    """Layer edges x, ratios x[i+1]/x[i] and densities exp(-x^2/2) of the Marsaglia-Tsang
    ziggurat for the normal density (Doornik's form; 256 layers: 98.5 % of draws take the fast path)."""
    x = np.empty(layers + 1)
    x[0] = v / math.exp(-0.5 * r * r)
    x[1] = r
    for i in range(2, layers):
        x[i] = math.sqrt(-2.0 * math.log(v / x[i - 1] + math.exp(-0.5 * x[i - 1] ** 2)))
    x[layers] = 0.0
    return x, x[1:] / x[:-1], np.exp(-0.5 * x * x)


_ZIG_X, _ZIG_RATIO, _ZIG_F = _ziggurat_tables()
_ZIG_R = _ZIG_X[1]
_S56 = np.uint64(56)
_LO24 = np.uint64(0xFFFFFF)


@njit(cache=True, inline="always")
def _abs_normal(state, j):
    """|Z| for Z ~ N(0, 1), exact (ziggurat), from draws j, j+1, ... of the stream.

    Returns (|Z|, next j).  The fast path (98.5 %) costs one hash and no transcendental.
    """
    while True:
        h = _mix(state + np.uint64(j) * _GAMMA)
        j += 1
        i = np.int64(h >> _S56)  # layer from the top 8 bits, value from the low 32
        u = ((h & _LO32) + 0.5) * _TWO_M32
        if u < _ZIG_RATIO[i]:
            return u * _ZIG_X[i], j
        if i == 0:  # the tail beyond R, by Marsaglia's exponential rejection
            while True:
                u1, u2 = _two_uniforms(_mix(state + np.uint64(j) * _GAMMA))
                j += 1
                tx = -math.log(u1) / _ZIG_R
                if -2.0 * math.log(u2) >= tx * tx:
                    return _ZIG_R + tx, j
        # the wedge: accept z under the density, a point uniform between its layer's edges
        z = u * _ZIG_X[i]
        u3 = ((h >> _S32 & _LO24) + 0.5) * 2.0 ** -24
        if _ZIG_F[i] + u3 * (_ZIG_F[i + 1] - _ZIG_F[i]) < math.exp(-0.5 * z * z):
            return z, j


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
def _inverse_passage(e, inv_e, c, s2, z2, u):
    """1 / (time for Brownian motion with drift c >= 0, variance s2, to first reach e > 0).

    Inverse Gaussian(mean e/c, shape e^2/s2) by Michael-Schucany-Haas, with the smaller
    root written as e/D, D = c + psi + sqrt(psi*(psi + 2c)), psi = s2*z2/(2e): no
    cancellation, c -> 0 gives the Levy law e^2/(s2*z2) and s2 -> 0 the deterministic e/c.
    Returned as a rate so that the common no-event case needs a single division.
    z2 is a chi-square(1) draw, u uniform.
    """
    psi = 0.5 * s2 * z2 * inv_e
    d = c + psi + math.sqrt(psi * (psi + 2.0 * c))
    # Keep root e/D with probability e/(e + c*e/D) = D/(D + c); else the other root,
    # e^2/(c^2 * e/D).  A select, not a branch: the condition is a coin flip.
    other = c * c * inv_e / d
    return other if u * (d + c) > d else d * inv_e


@njit(cache=True, inline="always")
def _attempt(state, j, mu, c, s2, r, p_reset):
    """One polarity draw and passage time from residual r, with c = |mu|.

    Conditioned on reaching its barrier, the passage time depends on the drift through
    |mu| only (Girsanov), so the same law serves drift towards or away from the barrier.
    Returns (ON?, barrier distance, 1/passage time, next draw index j).
    """
    u_pol, u_acc = _two_uniforms(_mix(state + np.uint64(j) * _GAMMA))
    z, j = _abs_normal(state, j + 1)
    z2 = z * z
    if r == 0.0:
        on = u_pol <= p_reset
        return on, 1.0, _inverse_passage(1.0, 1.0, c, s2, z2, u_acc), j
    on = u_pol <= _p_on(mu, s2, 1.0 - r, 1.0 + r)
    e = max(1.0 - r if on else 1.0 + r, 1e-300)  # rounding can put r on a barrier
    return on, e, _inverse_passage(e, 1.0 / e, c, s2, z2, u_acc), j


@njit(cache=True, error_model="numpy")
def _attempts(row_seed, mus, s2s, js, rs, ts, dt, n, on_w, r_w, t_w, j_w, fast_w, fire_w):
    """`_attempt` for n pixels (drift mus, variance s2s, draw index js, residual rs, time
    ts) as straight-line code over contiguous arrays, which the compiler vectorises.

    fast_w is False where a rare slow path is needed (a ziggurat rejection, or a polarity
    probability that is not 0, 1 or B/(A+B)): the caller redoes those with `_attempt`;
    elsewhere the results are bit-identical to it.  For each pixel: polarity on_w, the
    residual r_w carried if no event comes before the next frame, the event time t_w, the
    next draw index j_w and whether it fires (fire_w).
    """
    for k in range(n):
        mu = mus[k]
        s2 = s2s[k]
        r = rs[k]
        j = np.uint64(js[k])
        u_pol, u_acc = _two_uniforms(_mix(row_seed + j * _GAMMA))
        h = _mix(row_seed + (j + np.uint64(1)) * _GAMMA)
        i = np.int64(h >> _S56)
        u = ((h & _LO32) + 0.5) * _TWO_M32
        z = u * _ZIG_X[i]
        a_dist = 1.0 - r
        b_dist = 1.0 + r
        certain_on = mu > 0.0 and 2.0 * mu * b_dist > 40.0 * s2
        certain_off = mu < 0.0 and -2.0 * mu * a_dist > 40.0 * s2
        p = 1.0 if certain_on else (0.0 if certain_off else b_dist / (a_dist + b_dist))
        on = u_pol <= p
        e = max(a_dist if on else b_dist, 1e-300)
        rate = _inverse_passage(e, 1.0 / e, abs(mu), s2, z * z, u_acc)
        left = dt - ts[k]
        step = e * left * rate  # the reference's carry, see _simulate_row
        on_w[k] = on
        r_w[k] = r + step if on else r - step
        t_w[k] = ts[k] + 1.0 / rate
        j_w[k] = js[k] + 2
        fast_w[k] = u < _ZIG_RATIO[i] and (certain_on or certain_off or mu == 0.0)
        fire_w[k] = left * rate > 1.0


@njit(cache=True, error_model="numpy")
def _simulate_row(l0, l1, res_in, res_out, y, dt, inv_dt, k1, k2, k3, k4, k5, k6, log_drift,
                  key, base, cap, buf_t, buf_x, buf_p, counts, hist,
                  mus, s2s, xs, js, ts, rs, on_w, r_w, t_w, j_w, fast_w, fire_w):
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
        xs[x] = x
        js[x] = (x << 32) + 1  # pixel x draws from counters x * 2^32 + 1, 2, ...
        ts[x] = 0.0
        rs[x] = res_in[y, x]
    row_seed = _mix(key ^ _mix(base | np.uint64(y)))
    res_row = res_out[y]
    bt = buf_t[y]
    bx = buf_x[y]
    bp = buf_p[y]
    # Pixels still stepping, in waves: every pixel, then those that fired, and so on;
    # the survivors of a wave are compacted to the front of xs, js, ts, rs, mus, s2s.
    n_act = width
    n = 0
    first = True
    while n_act > 0:
        _attempts(row_seed, mus, s2s, js, rs, ts, dt, n_act, on_w, r_w, t_w, j_w,
                  fast_w, fire_w)
        for a in range(n_act):  # the rare slow paths, redone exactly
            if not fast_w[a]:
                mu = mus[a]
                # P(ON) from the reset level, only needed (and only computed) when r == 0.
                p_reset = _p_on(mu, s2s[a], 1.0, 1.0) if rs[a] == 0.0 else 0.5
                on, e, rate, j = _attempt(row_seed, js[a], mu, abs(mu), s2s[a], rs[a], p_reset)
                left = dt - ts[a]
                step = e * left * rate
                on_w[a] = on
                r_w[a] = rs[a] + step if on else rs[a] - step
                t_w[a] = ts[a] + 1.0 / rate
                j_w[a] = j
                fire_w[a] = left * rate > 1.0
        # Every pixel writes the residual it would carry (one that fired writes it again at
        # its last step); then the pixels that fired record an event and move to the front.
        n_fire = 0
        if first:
            for a in range(n_act):  # xs[a] == a: a vectorised copy
                res_row[a] = r_w[a]
                n_fire += fire_w[a]
        else:
            for a in range(n_act):
                res_row[xs[a]] = r_w[a]
                n_fire += fire_w[a]
        m = 0
        if 8 * n_fire < n_act:
            # Few fire (the first wave of a quiet row): branch, the branch predicts well.
            for a in range(n_act):
                if fire_w[a]:
                    t = t_w[a]
                    tr = np.int64(np.rint(t))
                    if with_hist:
                        hist[tr + 1] += 1
                    if n < cap:
                        bt[n] = tr
                        bx[n] = xs[a]
                        bp[n] = 1 if on_w[a] else 0
                    n += 1
                    xs[m] = xs[a]
                    js[m] = j_w[a]
                    ts[m] = t
                    rs[m] = 0.0
                    mus[m] = mus[a]
                    s2s[m] = s2s[a]
                    m += 1
        else:
            # Otherwise without branches (the outcome is a coin flip): every pixel writes an
            # event into the next buffer slot, which only a firing pixel keeps; the slot
            # index stops at cap, a spare column, when the row overflows (it is re-run then).
            for a in range(n_act):
                x = xs[a]
                fire = fire_w[a]
                t = t_w[a]
                slot = min(n, cap)
                tr = np.int64(np.rint(t if fire else 0.0))
                if with_hist:
                    hist[tr + 1] += fire
                bt[slot] = tr
                bx[slot] = x
                bp[slot] = 1 if on_w[a] else 0
                n += fire
                xs[m] = x
                js[m] = j_w[a]
                ts[m] = t
                rs[m] = 0.0
                mus[m] = mus[a]
                s2s[m] = s2s[a]
                m += fire
        n_act = m
        first = False
    counts[y] = n


@njit(cache=True, nogil=True, error_model="numpy")
def simulate_interval(l0, l1, res_in, res_out, dt, k, log_drift, key, interval,
                      rows, cap, buf_t, buf_x, buf_p, counts, hist):
    """Events of one frame interval for the given rows (releases the GIL: callers run
    disjoint row sets in threads).

    Writes per-row events (time offset rounded to integer us, x, polarity) to
    buf_*[row, :cap] and the exact per-row count to counts[row] (counts > cap means the
    row overflowed and must be re-run with a larger cap; nothing else changes).  The
    buffers need cap + 1 columns: column cap is scratch.  Unless it is empty, hist[b + 1]
    counts the events at time offset b (of all rows, stored or not).
    res_out receives the residual carried into the next interval.
    """
    width = l0.shape[1]
    k1, k2, k3, k4, k5, k6 = k[0], k[1], k[2], k[3], k[4], k[5]
    inv_dt = 1.0 / dt
    base = np.uint64(interval) << _S32
    mus = np.empty(width)
    s2s = np.empty(width)
    xs = np.empty(width, np.int64)
    js = np.empty(width, np.int64)
    ts = np.empty(width)
    rs = np.empty(width)
    on_w = np.empty(width, np.bool_)
    r_w = np.empty(width)
    t_w = np.empty(width)
    j_w = np.empty(width, np.int64)
    fast_w = np.empty(width, np.bool_)
    fire_w = np.empty(width, np.bool_)
    for y in rows:
        _simulate_row(l0, l1, res_in, res_out, y, dt, inv_dt, k1, k2, k3, k4, k5, k6, log_drift,
                      key, base, cap, buf_t, buf_x, buf_p, counts, hist,
                      mus, s2s, xs, js, ts, rs, on_w, r_w, t_w, j_w, fast_w, fire_w)


@njit(cache=True, nogil=True)
def band_histogram(buf_t, counts, r0, r1, hist):
    """hist[b + 1] = number of events of rows r0..r1-1 at time offset b (hist zeroed)."""
    for y in range(r0, r1):
        for i in range(counts[y]):
            hist[buf_t[y, i] + 1] += 1


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


@njit(cache=True, nogil=True)
def band_scatter(buf_t, buf_x, buf_p, counts, r0, r1, t0, start, out_t, out_x, out_y, out_p):
    """Stable scatter of rows r0..r1-1 into the output, start[b] being the first output
    index of their events at time offset b (advanced as it goes)."""
    for y in range(r0, r1):
        for i in range(counts[y]):
            tr = buf_t[y, i]
            j = start[tr]
            start[tr] = j + 1
            out_t[j] = t0 + tr
            out_x[j] = buf_x[y, i]
            out_y[j] = y
            out_p[j] = buf_p[y, i]


@njit(cache=True)
def gather_sorted(buf_t, buf_x, buf_p, counts, t0, dt, out_t, out_x, out_y, out_p):
    """Stable counting sort of the per-row buffers by time into the output fields.

    A tie keeps buffer order (row, then wave, then pixel), so the output is deterministic.
    (Serial: a parallel version writing the strided record fields ran slower.)
    """
    rows = counts.shape[0]
    hist = np.zeros(dt + 2, np.int64)
    band_histogram(buf_t, counts, 0, rows, hist)
    for b in range(1, dt + 2):
        hist[b] += hist[b - 1]
    band_scatter(buf_t, buf_x, buf_p, counts, 0, rows, t0, hist, out_t, out_x, out_y, out_p)


@njit(cache=True)
def gather_rows(buf_t, buf_x, buf_p, counts, t0, out_t, out_x, out_y, out_p):
    """Row-order gather (for intervals too long for a counting sort)."""
    pos = 0
    for y in range(counts.shape[0]):
        for i in range(counts[y]):
            out_t[pos] = t0 + buf_t[y, i]
            out_x[pos] = buf_x[y, i]
            out_y[pos] = y
            out_p[pos] = buf_p[y, i]
            pos += 1
