"""The compositor's numba loops: premultiplied "over" with pieces of one object adding up, seam filling,
and the per-aperture-point visibility correction.

A blurred piece is given as lo, hi and t: lo + t * (hi - lo) (blurs at two key diameters mixed; lo is hi
for an exact blur), (channels, h, w), its pixel (0, 0) at (y0, x0) of the canvas; what lies off the
canvas is cut.
"""
import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def accumulate_seam(lo, hi, t, y0, x0, sums):
    """Add a blurred piece's coverage and its coverage-weighted silhouette blur (channels 3 and 4) at
    (y0, x0) of `sums`."""
    j0 = max(0, -x0)
    j1 = max(min(lo.shape[2], sums.shape[2] - x0), j0)  # (as in `add_piece`)
    for i in range(max(0, -y0), min(lo.shape[1], sums.shape[1] - y0)):
        cover, silhouette = sums[0, y0 + i, x0 + j0:x0 + j1], sums[1, y0 + i, x0 + j0:x0 + j1]
        l3, l4, h3, h4 = lo[3, i, j0:j1], lo[4, i, j0:j1], hi[3, i, j0:j1], hi[4, i, j0:j1]
        for j in range(j1 - j0):  # 1-D views, as in `add_piece`
            alpha = max(l3[j] + t * (h3[j] - l3[j]), np.float32(0.0))
            cover[j] += alpha
            silhouette[j] += alpha * min(max(l4[j] + t * (h4[j] - l4[j]), np.float32(0.0)), np.float32(1.0))


@njit(cache=True, nogil=True)
def seam_gain(sums, min_cover, max_gain):
    """Per pixel: target / total^2 (the coverage-weighted silhouette blur over the summed coverage),
    within [1, max_gain]; 1 where the pieces cover less than min_cover."""
    gain = np.ones(sums.shape[1:], np.float32)
    for y in range(gain.shape[0]):
        for x in range(gain.shape[1]):
            total = sums[0, y, x]
            if total > min_cover:
                gain[y, x] = min(max(sums[1, y, x] / (total * total), np.float32(1.0)), np.float32(max_gain))
    return gain


@njit(cache=True, inline="always", error_model="numpy")
def _over(alpha, transmit, cover):
    """Composite one premultiplied pixel of coverage alpha >= 0 behind what is there, given the
    transmittance and its group's coverage so far there (see `add_piece`): the weight of its colour,
    and the new transmittance and coverage. Of its alpha, only the room its group has left counts
    (all of it scaled down if it would overfill): transmit / room is the transmittance of the other
    groups in front, and the group's new room is room - alpha or 0."""
    room = max(np.float32(1.0) - cover, np.float32(0.0))
    # Branch-free (a select), so that loops over pixels vectorise; 0 once the group covers the pixel.
    weight = transmit / max(room, alpha) if room > np.float32(1e-6) else np.float32(0.0)
    return weight, max(transmit - alpha * weight, np.float32(0.0)), cover + min(alpha, room)  # 0 once overfilled


@njit(cache=True, inline="always", error_model="numpy")
def _add_px(r, g, b, alpha, out, y, x, transmit, cover):
    """`_over` at (y, x) of (4, h, w) `out` and (h, w) `transmit` and `cover`."""
    weight, transmit[y, x], cover[y, x] = _over(alpha, transmit[y, x], cover[y, x])
    out[0, y, x] += r * weight
    out[1, y, x] += g * weight
    out[2, y, x] += b * weight


# error_model="numpy": no zero-division check, so that the loop over a row vectorises (the division
# it guards against is never selected)
@njit(cache=True, nogil=True, error_model="numpy")
def add_piece(lo, hi, t, y0, x0, out, transmit, cover, gain):
    """Composite one blurred piece (4 or more channels) behind what is there, its premultiplied RGBA
    scaled by `gain` (canvas-sized).

    Pieces of one group (one object, sharing `cover`) add up until its coverage is full; other groups
    in front attenuate the piece multiplicatively ("over"), transmit / room being exactly the
    transmittance of the other groups.
    """
    j0 = max(0, -x0)
    j1 = max(min(lo.shape[2], out.shape[2] - x0), j0)  # (a negative bound would count from the end)
    for i in range(max(0, -y0), min(lo.shape[1], out.shape[1] - y0)):
        y, a, b = y0 + i, x0 + j0, x0 + j1
        # one canvas row at a time, as 1-D views: the loop over its pixels vectorises
        _add_row(lo[0, i, j0:j1], lo[1, i, j0:j1], lo[2, i, j0:j1], lo[3, i, j0:j1],
                 hi[0, i, j0:j1], hi[1, i, j0:j1], hi[2, i, j0:j1], hi[3, i, j0:j1], t,
                 gain[y, a:b], out[0, y, a:b], out[1, y, a:b], out[2, y, a:b], transmit[y, a:b], cover[y, a:b])


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _add_row(l0, l1, l2, l3, h0, h1, h2, h3, t, gain, r, g, b, transmit, cover):
    """`_over` along a row, the piece's channels mixed by t and scaled by gain."""
    for j in range(l0.shape[0]):
        k = gain[j]
        alpha = max((l3[j] + t * (h3[j] - l3[j])) * k, np.float32(0.0))
        weight, transmit[j], cover[j] = _over(alpha, transmit[j], cover[j])
        r[j] += (l0[j] + t * (h0[j] - l0[j])) * k * weight
        g[j] += (l1[j] + t * (h1[j] - l1[j])) * k * weight
        b[j] += (l2[j] + t * (h2[j] - l2[j])) * k * weight


@njit(cache=True, nogil=True)
def visibility_correction(flat, offset, size, origin, box, spans, span_row, group, groups, diameter, samples, tile,
                          min_px, tiles, out):
    """Add to the composite `out` (4, H, W) the difference between compositing per aperture sample
    and compositing blurred pieces, on the tiles where two pieces blurred by min_px or more can meet,
    of the tile rows tiles[0]..tiles[1] - 1 and columns tiles[2]..tiles[3] - 1.

    Piece k: sharp premultiplied RGBA in flat[offset[k]:], (4, size[k, 0], size[k, 1]), its pixel
    (0, 0) on canvas pixel origin[k]; content within box[k] (y0, y1, x0, x1); spans[span_row[k] + r]
    holds the columns [start, stop) of its buffer's row r outside which that row is zero; group[k] in 0..groups-1;
    signed blur diameter[k]; pieces nearest first. Sample n moves piece k by -diameter[k]/2 times
    samples[n] (bilinear): the same point of the aperture seen from every depth, so the pieces occlude
    each other as the rays through that point see them. The mean over samples of those composites,
    minus the composite of the pieces' sample means, is the visibility error of "over" on blurred
    layers: it cancels the pieces' sampled (not smooth) blur and keeps their occlusion.
    """
    height, width = out.shape[1], out.shape[2]
    n_pieces, n_samples = diameter.shape[0], samples.shape[0]
    inv_n = np.float32(1.0 / n_samples)
    reach = np.empty((n_pieces, 4), np.int64)
    for k in range(n_pieces):
        r = int(math.ceil(0.5 * abs(diameter[k]))) + 1
        reach[k, 0], reach[k, 1] = max(box[k, 0] - r, 0), min(box[k, 1] + r, height)
        reach[k, 2], reach[k, 3] = max(box[k, 2] - r, 0), min(box[k, 3] + r, width)
    tiles_y, tiles_x = (height + tile - 1) // tile, (width + tile - 1) // tile
    blurred = np.zeros((tiles_y, tiles_x), np.int64)
    for k in range(n_pieces):
        if abs(diameter[k]) >= min_px and reach[k, 1] > reach[k, 0] and reach[k, 3] > reach[k, 2]:
            for ty in range(reach[k, 0] // tile, (reach[k, 1] - 1) // tile + 1):
                for tx in range(reach[k, 2] // tile, (reach[k, 3] - 1) // tile + 1):
                    blurred[ty, tx] += 1
    local = np.empty(n_pieces, np.int64)
    means = np.empty((n_pieces, 4, tile, tile), np.float32)
    acc = np.empty((4, tile, tile), np.float32)
    total = np.empty((4, tile, tile), np.float32)
    transmit = np.empty((tile, tile), np.float32)
    cover = np.empty((groups, tile, tile), np.float32)
    for ty in range(max(tiles[0], 0), min(tiles[1], tiles_y)):
        for tx in range(max(tiles[2], 0), min(tiles[3], tiles_x)):
            if blurred[ty, tx] < 2:
                continue
            y0, x0 = ty * tile, tx * tile
            th, tw = min(tile, height - y0), min(tile, width - x0)
            m = 0
            for k in range(n_pieces):
                if reach[k, 0] < y0 + th and reach[k, 1] > y0 and reach[k, 2] < x0 + tw and reach[k, 3] > x0:
                    local[m] = k
                    m += 1
            means[:m] = 0.0
            total[:] = 0.0
            for n in range(n_samples):
                acc[:] = 0.0
                transmit[:] = 1.0
                cover[:] = 0.0
                for j in range(m):
                    k = local[j]
                    h, w, base = size[k, 0], size[k, 1], offset[k]
                    cov = cover[group[k]]
                    # source position of tile pixel (0, 0) in the piece's buffer, split for bilinear
                    fy = y0 + 0.5 * diameter[k] * samples[n, 0] - origin[k, 0]
                    fx = x0 + 0.5 * diameter[k] * samples[n, 1] - origin[k, 1]
                    iy, ix = int(math.floor(fy)), int(math.floor(fx))
                    wy, wx = np.float32(fy - iy), np.float32(fx - ix)
                    one = np.float32(1.0)
                    w00 = (one - wy) * (one - wx)
                    w01 = (one - wy) * wx
                    w10 = wy * (one - wx)
                    w11 = wy * wx
                    plane = h * w
                    r = span_row[k] + iy
                    # tile pixels whose four taps lie in the buffer and not all in its zeros: a pixel
                    # of zeros adds nothing to the composite (`_add_px` with alpha 0) nor to the means
                    for i in range(max(0, -iy), min(th, h - 1 - iy)):
                        start = min(spans[r + i, 0], spans[r + i + 1, 0]) - 1 - ix
                        stop = max(spans[r + i, 1], spans[r + i + 1, 1]) - ix
                        for jj in range(max(0, -ix, start), min(tw, w - 1 - ix, stop)):
                            p = base + (iy + i) * w + ix + jj
                            q = p + w
                            v0 = w00 * flat[p] + w01 * flat[p + 1] + w10 * flat[q] + w11 * flat[q + 1]
                            p, q = p + plane, q + plane
                            v1 = w00 * flat[p] + w01 * flat[p + 1] + w10 * flat[q] + w11 * flat[q + 1]
                            p, q = p + plane, q + plane
                            v2 = w00 * flat[p] + w01 * flat[p + 1] + w10 * flat[q] + w11 * flat[q + 1]
                            p, q = p + plane, q + plane
                            v3 = w00 * flat[p] + w01 * flat[p + 1] + w10 * flat[q] + w11 * flat[q + 1]
                            means[j, 0, i, jj] += v0 * inv_n
                            means[j, 1, i, jj] += v1 * inv_n
                            means[j, 2, i, jj] += v2 * inv_n
                            means[j, 3, i, jj] += v3 * inv_n
                            _add_px(v0, v1, v2, max(v3, np.float32(0.0)), acc, i, jj, transmit, cov)
                for i in range(th):
                    for jj in range(tw):
                        total[0, i, jj] += acc[0, i, jj]
                        total[1, i, jj] += acc[1, i, jj]
                        total[2, i, jj] += acc[2, i, jj]
                        total[3, i, jj] += np.float32(1.0) - transmit[i, jj]
            acc[:] = 0.0
            transmit[:] = 1.0
            cover[:] = 0.0
            for j in range(m):
                cov = cover[group[local[j]]]
                for i in range(th):
                    for jj in range(tw):
                        _add_px(means[j, 0, i, jj], means[j, 1, i, jj], means[j, 2, i, jj],
                                max(means[j, 3, i, jj], np.float32(0.0)), acc, i, jj, transmit, cov)
            for i in range(th):
                for jj in range(tw):
                    for c in range(3):
                        out[c, y0 + i, x0 + jj] += total[c, i, jj] * inv_n - acc[c, i, jj]
                    out[3, y0 + i, x0 + jj] += total[3, i, jj] * inv_n - (1 - transmit[i, jj])
