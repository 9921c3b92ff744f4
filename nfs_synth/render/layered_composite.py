"""Depth-of-field frames from depth slabs: blur each slab with the lens's aperture, composite the slabs.

A slab is a premultiplied RGBA image of the surfaces between two depths, rendered with a pinhole camera
(docs/layered.md). A point at planar depth z seen with focus distance S spreads into the image of the
aperture scaled to diameter A*f*|1/z - 1/S| on the sensor (Cycles' thin-lens model, see `optics`), so in
pixels the diameter is `px_per_diopter * |1/z - 1/S|`. Each slab is blurred with the diameter of one
depth (the mean depth of what it holds); the blurred slabs then combine with the premultiplied "over"
operator, nearest on top, except that pieces of one object add up (see `SlabStack`). Where blurred
objects overlap, "over" of blurred layers misjudges what hides what; an optional correction composites
per point of the aperture instead (`_visibility_correction`).

Each slab is cropped to its content (padded by the largest blur it will get) and its spectrum is
computed once and shared by every frame; a frame costs one pointwise product and one inverse FFT per
non-empty slab, on a coarser grid for wide blurs. Kernels come from the aperture's analytic Fourier
transform, i.e. the band-limited continuous disk (or polygon), with no extra pixel-box blur.
"""
from __future__ import annotations

import math
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from threading import Lock
from typing import Iterable, Iterator

import cv2
import numpy as np
import scipy.fft as sfft
from numba import njit
from scipy.special import j1

# Below this diameter (px) the aperture's image is far smaller than the pixel filter: no blur.
SHARP_PX = 0.05
# Blurs wider than 2 * COARSE_PX are computed on a grid 2**level coarser (level <= MAX_LEVEL), keeping
# at least COARSE_PX coarse pixels across the disk: the disk's spectrum beyond that grid's band is
# below ~4 % of its peak, and a frame then costs a fraction of the full-resolution FFTs.
COARSE_PX = 12.0
MAX_LEVEL = 3
# 2 J1(x) / x is tabulated at this step: linear interpolation errs by at most step^2 / 32 (|f''| <= 1/4),
# 2e-6 of the DC term, and costs a fraction of evaluating J1 at every frequency of every slab and frame.
_AIRY_STEP = 1.0 / 128
_airy_table = np.ones(1, np.float32)
# Seam filling (SlabStack._seam_gains) acts only where an object's pieces already cover this much, and
# by at most this factor: below, a blurred piece's alpha is mostly band-limiting ringing, and dividing
# by it would amplify noise rather than fill a seam.
SEAM_MIN_COVER = 0.05
SEAM_MAX_GAIN = 1.5
# Visibility correction (SlabStack, visibility_samples > 0): computed on a grid 2**level coarser, with
# about this many coarse pixels of blur per diopter of defocus (it varies on the scale of the blur),
# on tiles of VISIBILITY_TILE coarse pixels where two pieces blurred by VISIBILITY_MIN_PX or more meet.
VISIBILITY_PX_PER_DIOPTER = 30.0
# In a sweep it is computed at focus distances this many coarse pixels of blur apart and interpolated.
VISIBILITY_KEY_PX = 1.0
VISIBILITY_TILE = 16
VISIBILITY_MIN_PX = 1.0


class LayeredSettingsError(ValueError):
    """Settings or inputs the layered compositor cannot use."""


def slab_count(diopter_span: float, px_per_diopter: float, tolerance_px: float) -> int:
    """Fewest uniform-in-diopter slabs whose blur-diameter error stays within `tolerance_px`.

    A slab of width w diopters blurred with its centre's diameter misplaces the blur of its nearest or
    farthest surface by px_per_diopter * w / 2 pixels, whatever the focus distance.
    """
    if not tolerance_px > 0:
        raise LayeredSettingsError(f"layered_tolerance_px must be > 0, got {tolerance_px!r}")
    if diopter_span < 0 or px_per_diopter <= 0:
        raise LayeredSettingsError("diopter span must be >= 0 and px_per_diopter > 0")
    return max(1, math.ceil(diopter_span * px_per_diopter / (2.0 * tolerance_px) - 1e-9))


def slab_edges(near_m: float, far_m: float, count: int) -> np.ndarray:
    """count + 1 slab boundaries in diopters, uniform from 1/near_m down to 1/far_m."""
    if not (0 < near_m <= far_m) or count < 1:
        raise LayeredSettingsError(f"need 0 < near ({near_m}) <= far ({far_m}) and count ({count}) >= 1")
    return np.linspace(1.0 / near_m, 1.0 / far_m, count + 1)


def disk_spectrum(diameter_px: float, radial_freq: np.ndarray) -> np.ndarray:
    """Fourier transform (unit DC, real) of a uniform disk of the given diameter at radial frequencies
    in cycles per pixel: 2 J1(x) / x with x = pi * diameter * radial_freq, from a table. float32."""
    global _airy_table
    if diameter_px < SHARP_PX:
        return np.ones(np.shape(radial_freq), np.float32)
    radial_freq = np.asarray(radial_freq, np.float32)
    scale = np.float32(np.pi * diameter_px / _AIRY_STEP)  # radial frequency -> table index
    needed = int(scale * radial_freq.max()) + 2
    table = _airy_table  # one reference per call: frame threads may grow the global meanwhile
    if needed > len(table):  # grow (doubling), once per new widest blur
        arg = np.arange(max(needed, 2 * len(table))) * _AIRY_STEP
        safe = np.where(arg > 0, arg, 1.0)
        table = _airy_table = np.where(arg > 0, 2.0 * j1(safe) / safe, 1.0).astype(np.float32)
    return _lookup(radial_freq, scale, table)


@njit(cache=True, nogil=True)
def _lookup(radial, scale, table):
    out = np.empty_like(radial)
    flat, res = radial.ravel(), out.ravel()
    for i in range(flat.size):
        x = flat[i] * scale
        k = int(x)
        res[i] = table[k] + (x - k) * (table[k + 1] - table[k])
    return out


def aperture_spectrum(diameter_px: float, fy: np.ndarray, fx: np.ndarray, blades: int = 0,
                      rotation_rad: float = 0.0, flipped: bool = False) -> np.ndarray:
    """Fourier transform (unit DC) of the aperture's image, at frequencies fy, fx in cycles per pixel.

    blades 0: a uniform disk of the given diameter (2 J1(x)/x). blades >= 3: Cycles' regular polygon
    inscribed in that circle, its first vertex at rotation + pi/blades from +x (y up). Points nearer
    than the focus plane see the aperture rotated by 180 degrees (`flipped`); that matters for odd blades.
    fy runs down the image rows, as numpy's axis 0 does.
    """
    radius = 0.5 * diameter_px
    kx, ky = 2.0 * np.pi * fx, 2.0 * np.pi * fy
    if radius < 0.5 * SHARP_PX:
        return np.ones(np.broadcast_shapes(np.shape(kx), np.shape(ky)), np.complex128)
    if blades == 0:
        return disk_spectrum(diameter_px, np.hypot(fy, fx)).astype(np.complex128)
    angles = rotation_rad + np.pi / blades + 2.0 * np.pi * np.arange(blades) / blades
    sign = -1.0 if flipped else 1.0
    # (x, y) with y up -> image (col, row) with rows down.
    verts = sign * radius * np.stack([np.cos(angles), -np.sin(angles)], axis=1)
    a, b = verts, np.roll(verts, -1, axis=0)
    mid, edge = 0.5 * (a + b), b - a
    normal = np.stack([edge[:, 1], -edge[:, 0]], axis=1)
    normal *= np.sign(np.sum(normal * mid, axis=1, keepdims=True))  # outward: the centre is at 0
    area = 0.5 * blades * radius ** 2 * math.sin(2.0 * np.pi / blades)
    k2 = kx ** 2 + ky ** 2
    total = np.zeros(np.broadcast_shapes(np.shape(kx), np.shape(ky)), np.complex128)
    for (nx, ny), (mx, my), (ex, ey) in zip(normal, mid, edge):
        # Divergence theorem: F(k) = i/|k|^2 * sum over edges of (k.n) * integral of exp(-i k.x) ds,
        # with |n| = edge length; the edge integral is exp(-i k.mid) * sinc(k.edge / 2).
        total += (kx * nx + ky * ny) * np.exp(-1j * (kx * mx + ky * my)) \
            * np.sinc((kx * ex + ky * ey) / (2.0 * np.pi))
    safe = np.where(k2 > 0, k2, 1.0)
    return np.where(k2 > 0, 1j * total / (safe * area), 1.0)


def aperture_samples(n: int, blades: int = 0, rotation_rad: float = 0.0) -> np.ndarray:
    """n points spread evenly over the aperture (unit circumradius), as (row, col) offsets with rows
    down, in the orientation of `aperture_spectrum` (unflipped). Disk: Vogel's golden-angle spiral;
    polygon: its triangles from the centre, each filled with a share of the points by an
    area-preserving map of a 2-D low-discrepancy sequence. Deterministic."""
    if n < 1:
        raise LayeredSettingsError(f"need at least one aperture sample, got {n}")
    golden = math.pi * (3.0 - math.sqrt(5.0))
    if blades == 0:
        i = np.arange(n) + 0.5
        r, theta = np.sqrt(i / n), i * golden
        return np.stack([-r * np.sin(theta), r * np.cos(theta)], axis=1)
    angles = rotation_rad + np.pi / blades + 2.0 * np.pi * np.arange(blades + 1) / blades
    verts = np.stack([-np.sin(angles), np.cos(angles)], axis=1)  # (row, col), rows down
    out = []
    for t in range(blades):
        m = n // blades + (t < n % blades)
        a = np.sqrt((np.arange(m) + 0.5) / max(m, 1))
        b = (np.arange(m) * golden / (2.0 * np.pi) + 0.5 / max(m, 1)) % 1.0
        out.append(a[:, None] * ((1.0 - b)[:, None] * verts[t] + b[:, None] * verts[t + 1]))
    return np.concatenate(out)


def _fft_size(n: int) -> int:
    """Smallest fast FFT length >= n that the coarsest level divides."""
    step = 1 << MAX_LEVEL
    n = step * -(-n // step)
    while sfft.next_fast_len(n, real=True) != n:
        n += step
    return n


def _level(diameter_px: float) -> int:
    """Resolution level (downsampling 2**level) at which a blur of this diameter is computed."""
    if diameter_px < 2 * COARSE_PX:
        return 0
    return min(MAX_LEVEL, int(math.log2(diameter_px / COARSE_PX)))


class _Slab:
    """One slab's crop: position on the canvas and the spectrum of its channels (premultiplied RGBA,
    then, for an object in several pieces, the object's whole silhouette)."""

    def __init__(self, rgba: np.ndarray, diopter: float, group: int, pad: int,
                 box: tuple[int, int, int, int]):
        y0, y1, x0, x1 = box
        hc, wc = rgba.shape[1:]
        self.diopter, self.group, self.pieced, self.box = diopter, group, len(rgba) > 4, box
        self.y0, self.x0 = y0 - pad, x0 - pad
        self.shape = (_fft_size(y1 - y0 + 2 * pad), _fft_size(x1 - x0 + 2 * pad))
        # Zeros beyond the canvas as well: the FFT buffer holds the whole blurred footprint, so the
        # circular convolution never wraps light from one side onto the other.
        buf = np.zeros((len(rgba), *self.shape), np.float32)
        cy0, cx0 = max(self.y0, 0), max(self.x0, 0)
        cy1, cx1 = min(self.y0 + self.shape[0], hc), min(self.x0 + self.shape[1], wc)
        buf[:, cy0 - self.y0:cy1 - self.y0, cx0 - self.x0:cx1 - self.x0] = rgba[:, cy0:cy1, cx0:cx1]
        self.sharp = buf
        self.spectrum = sfft.rfft2(buf)
        self.levels: dict[int, tuple] = {}
        # canvas window and the matching window of the buffer
        self.canvas = (slice(cy0, cy1), slice(cx0, cx1))
        self.local = (slice(cy0 - self.y0, cy1 - self.y0), slice(cx0 - self.x0, cx1 - self.x0))

    def level(self, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Spectrum cut to the band of a 2**m coarser grid (exact band-limited downsampling), with its
        frequencies (fy, fx and radial) in cycles per full-resolution pixel."""
        if m not in self.levels:
            h, w = self.shape[0] >> m, self.shape[1] >> m
            fy, fx = sfft.fftfreq(self.shape[0]), sfft.rfftfreq(self.shape[1])
            rows = np.r_[0:h // 2, self.shape[0] - h // 2:self.shape[0]] if m else slice(None)
            cols = slice(0, w // 2 + 1)
            spectrum = self.spectrum[:, rows, cols] / np.float32(4 ** m)
            fy, fx = fy[rows][:, None], fx[cols][None, :]
            self.levels[m] = (spectrum, fy, fx, np.hypot(fy, fx).astype(np.float32))
        return self.levels[m]

    def blurred(self, kernel_of, diameter: float) -> np.ndarray:
        """The slab's window blurred by the aperture spectrum `kernel_of(fy, fx, radial)`, (channels, h, w)."""
        if diameter < SHARP_PX:
            return self.sharp[(slice(None), *self.local)]
        m = _level(diameter)
        spectrum, fy, fx, radial = self.level(m)
        coarse = sfft.irfft2(spectrum * kernel_of(fy, fx, radial), s=(self.shape[0] >> m, self.shape[1] >> m))
        if m:
            # sample i of the coarse grid sits on full-resolution pixel i * 2**m
            up = 1 << m
            coarse = cv2.warpAffine(coarse.transpose(1, 2, 0), np.float32([[1 / up, 0, 0], [0, 1 / up, 0]]),
                                    (self.shape[1], self.shape[0]),
                                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REPLICATE).transpose(2, 0, 1)
        return coarse[(slice(None), *self.local)]


class _KeyCorrections:
    """The visibility correction of a sweep at key focus distances, spaced so that every blur changes by
    VISIBILITY_KEY_PX coarse pixels from one to the next, and linearly interpolated between them: it
    varies smoothly with focus, and a sweep's frames are far closer together (480 frames: 0.15 px).
    Each key is computed once, by the first frame thread that needs it; the latest few are kept."""

    def __init__(self, stack: SlabStack, scale: float, keep: int = 8) -> None:
        self.stack, self.scale, self.keep = stack, scale, keep
        step = stack._visibility_data[0]["step"]
        self.lo, self.hi = stack.focus_diopters
        self.spacing = VISIBILITY_KEY_PX * step / (stack.px_per_diopter * scale)
        self.lock, self.keys = Lock(), {}

    def at(self, focus: float) -> np.ndarray:
        x = (focus - self.lo) / self.spacing
        j = min(max(int(math.floor(x)), 0), max(int(math.ceil((self.hi - self.lo) / self.spacing)) - 1, 0))
        t = np.float32(min(max(x - j, 0.0), 1.0))
        return self._key(j) if t == 0 else (1 - t) * self._key(j) + t * self._key(j + 1)

    def _key(self, j: int) -> np.ndarray:
        with self.lock:
            future = self.keys.get(j)
            mine = future is None
            if mine:
                future = self.keys[j] = Future()
                while len(self.keys) > self.keep:  # drop the farthest: a sweep moves on
                    del self.keys[max(self.keys, key=lambda k: abs(k - j))]
        if mine:
            try:
                future.set_result(self.stack._correction(min(self.lo + j * self.spacing, self.hi), self.scale))
            except BaseException as err:  # the threads waiting for this key fail too, rather than hang
                future.set_exception(err)
                raise
        return future.result()


class SlabStack:
    """Premultiplied RGBA slabs, nearest first, ready to be blurred and composited for any focus.

    slabs: K arrays (H, W, 4) float32 premultiplied linear RGBA (or one (K, H, W, 4) array); what
    none covers stays transparent in the frames. diopters: (K,) the depth (1/m) each slab is blurred
    for. px_per_diopter: blur-disk diameter in pixels per diopter of defocus
    (optics.blur_diameter_px(1, inf, ...)). focus_diopters: the (min, max) focus the stack will be
    asked for, which bounds the padding. groups: (K,) ints; slabs of one group are pieces of one
    object and add up, different groups occlude each other with "over" (default: all different).
    workers: frames `frames` computes at once, in threads. visibility_samples > 0: correct "over" where
    blurred pieces overlap by compositing per point of the aperture, with that many points
    (`_visibility_correction`); 0 leaves it out.
    """

    def __init__(self, slabs, diopters, px_per_diopter: float, focus_diopters: tuple[float, float], *,
                 groups=None, blades: int = 0, rotation_rad: float = 0.0, workers: int = 1,
                 visibility_samples: int = 0) -> None:
        diopters = np.asarray(diopters, np.float64)
        groups = np.arange(len(diopters)) if groups is None else np.asarray(groups)
        if len(slabs) != len(diopters) or groups.shape != diopters.shape or not len(slabs):
            raise LayeredSettingsError(f"need one diopter and group per slab; got {len(slabs)} slabs, "
                                       f"{diopters.shape} diopters, {groups.shape} groups")
        if not (np.all(np.isfinite(diopters)) and np.all(diopters >= 0)):
            raise LayeredSettingsError("diopters must be finite and >= 0")
        if np.any(np.diff(diopters) > 0):
            raise LayeredSettingsError("slabs must be ordered nearest first (diopters decreasing)")
        if not px_per_diopter > 0:
            raise LayeredSettingsError(f"px_per_diopter must be > 0, got {px_per_diopter!r}")
        if int(workers) < 1:
            raise LayeredSettingsError(f"workers must be >= 1, got {workers}")
        if int(visibility_samples) < 0:
            raise LayeredSettingsError(f"visibility_samples must be >= 0, got {visibility_samples}")
        if blades in (1, 2) or blades < 0:
            raise LayeredSettingsError(f"blades must be 0 (round) or >= 3, got {blades}")
        self.px_per_diopter = float(px_per_diopter)
        self.focus_diopters = (float(min(focus_diopters)), float(max(focus_diopters)))
        self.blades, self.rotation, self.workers = int(blades), float(rotation_rad), int(workers)
        self.height, self.width = np.shape(slabs[0])[:2]
        self._unit_gain = np.ones((self.height, self.width), np.float32)
        kept = []
        for slab, diopter, group in zip(slabs, diopters, groups):
            slab = np.asarray(slab, np.float32)
            if slab.shape != (self.height, self.width, 4) or not np.all(np.isfinite(slab)):
                raise LayeredSettingsError(f"each slab must be a finite (H, W, 4) array like the first "
                                           f"({self.height}, {self.width}, 4), got {slab.shape}")
            rgba = np.ascontiguousarray(slab.transpose(2, 0, 1))
            if np.any(rgba[3] > 0):  # an empty slab costs nothing in any frame
                kept.append((rgba, float(diopter), int(group)))
        # Objects in several pieces also blur their whole silhouette with each piece's kernel (see frame)
        silhouettes: dict[int, np.ndarray] = {}
        for rgba, _, group in kept:
            silhouettes[group] = silhouettes.get(group, 0.0) + rgba[3]
        pieces = Counter(group for _, _, group in kept)
        self.slabs: list[_Slab] = []
        for rgba, diopter, group in kept:
            rows, cols = np.nonzero(rgba[3] > 0)
            defocus = max(abs(diopter - d) for d in self.focus_diopters)
            pad = int(math.ceil(0.5 * self.px_per_diopter * defocus)) + 2
            box = (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
            if pieces[group] > 1:
                # the silhouette within one blur radius (+2) of the piece, and twice the padding, so
                # that its blur reaches wherever the piece's does without wrapping around the buffer
                near = np.zeros_like(rgba[3])
                near[max(box[0] - pad, 0):box[1] + pad, max(box[2] - pad, 0):box[3] + pad] = 1.0
                rgba = np.concatenate([rgba, (np.minimum(silhouettes[group], 1.0) * near)[None]])
                pad *= 2
            self.slabs.append(_Slab(rgba, diopter, group, pad, box))
        self._visibility_data = self._visibility_pieces(int(visibility_samples))

    def frames(self, focus_m: Iterable[float], f_number_scale: float = 1.0) -> Iterator[np.ndarray]:
        """`frame` for each focus distance, in order, `workers` frames at a time in threads (the FFTs
        and the compositing loop release the GIL; measured: one single-threaded FFT per frame thread
        is 2-3x faster than threaded FFTs of these small pieces)."""
        keys = _KeyCorrections(self, f_number_scale) if self._visibility_data and f_number_scale > 0 else None
        if self.workers == 1:
            yield from (self._frame(f, f_number_scale, keys) for f in focus_m)
            return
        with ThreadPoolExecutor(self.workers) as pool:
            pending = deque()
            for f in focus_m:
                pending.append(pool.submit(self._frame, f, f_number_scale, keys))
                if len(pending) > self.workers:  # bounded look-ahead: memory stays a few frames
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def frame(self, focus_m: float, f_number_scale: float = 1.0) -> np.ndarray:
        """(H, W, 4) premultiplied RGBA focused at planar distance focus_m (inf: at infinity).

        f_number_scale = N_stack / N_wanted blurs as a different aperture would (<= 1 keeps within
        the padding); 0 gives the pinhole composite. (`frames` interpolates the visibility correction
        between focus distances a fraction of a pixel of blur apart; this computes it.)
        """
        return self._frame(focus_m, f_number_scale, None)

    def _frame(self, focus_m: float, f_number_scale: float, keys: _KeyCorrections | None) -> np.ndarray:
        focus = 0.0 if math.isinf(focus_m) else 1.0 / focus_m
        lo, hi = self.focus_diopters
        if not (lo - 1e-9 <= focus <= hi + 1e-9) or not 0.0 <= f_number_scale <= 1.0:
            raise LayeredSettingsError(f"focus {focus_m} m (or aperture scale {f_number_scale}) is outside "
                                       f"the range this stack was padded for ({1 / hi:.4g}..{1 / lo:.4g} m)")
        layers = [self._blurred(slab, focus, f_number_scale) for slab in self.slabs]
        gains = self._seam_gains(layers)
        out = np.zeros((4, self.height, self.width), np.float32)
        transmit = np.ones((self.height, self.width), np.float32)  # through everything in front
        cover: dict[int, np.ndarray] = {}  # coverage of each group so far
        for slab, layer in zip(self.slabs, layers):  # front to back
            if slab.group not in cover:
                cover[slab.group] = np.zeros_like(transmit)
            ys, xs = slab.canvas
            _add_piece(layer, ys.start, xs.start, out, transmit, cover[slab.group],
                       gains.get(slab.group, self._unit_gain))
        out[3] = 1.0 - transmit
        if self._visibility_data is not None and f_number_scale > 0:
            coarse = keys.at(focus) if keys else self._correction(focus, f_number_scale)
            step = self._visibility_data[0]["step"]
            if step > 1:  # coarse pixel i covers pixels i * step .. (i + 1) * step - 1: resize's convention
                size = (coarse.shape[2] * step, coarse.shape[1] * step)
                coarse = cv2.resize(coarse.transpose(1, 2, 0), size, interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
            out += coarse[:, :self.height, :self.width]
            np.minimum(out[3], 1.0, out=out[3])
        np.maximum(out, 0.0, out=out)  # ringing of the band-limited disk never makes light negative
        return out.transpose(1, 2, 0)

    def _visibility_pieces(self, samples: int):
        """The sharp pieces, averaged onto the correction's coarser grid and packed for
        `_visibility_correction`, with the aperture samples; None if samples is 0."""
        if samples == 0:
            return None
        level = max(0, round(math.log2(self.px_per_diopter / VISIBILITY_PX_PER_DIOPTER)))
        step = 1 << level
        flats, sizes, origins, boxes = [], [], [], []
        for slab in self.slabs:
            # pad the buffer in front so that its canvas origin falls on the coarse grid
            py, px = slab.y0 % step, slab.x0 % step
            h, w = slab.sharp.shape[1] + py, slab.sharp.shape[2] + px
            buf = np.zeros((4, -(-h // step) * step, -(-w // step) * step), np.float32)
            buf[:, py:h, px:w] = slab.sharp[:4]
            coarse = buf.reshape(4, buf.shape[1] // step, step, buf.shape[2] // step, step).mean(axis=(2, 4))
            flats.append(np.ascontiguousarray(coarse, np.float32).ravel())
            sizes.append(coarse.shape[1:])
            origins.append(((slab.y0 - py) // step, (slab.x0 - px) // step))
            y0, y1, x0, x1 = slab.box
            boxes.append((y0 // step, -(-y1 // step), x0 // step, -(-x1 // step)))
        sizes = np.array(sizes, np.int64).reshape(-1, 2)
        ids = {g: i for i, g in enumerate(dict.fromkeys(slab.group for slab in self.slabs))}
        pieces = {
            "step": step,
            "flat": np.concatenate(flats) if flats else np.zeros(0, np.float32),
            "offset": np.concatenate([[0], np.cumsum(sizes[:, 0] * sizes[:, 1] * 4)[:-1]]).astype(np.int64),
            "size": sizes,
            "origin": np.array(origins, np.int64).reshape(-1, 2),
            "box": np.array(boxes, np.int64).reshape(-1, 4),
            "group": np.array([ids[slab.group] for slab in self.slabs], np.int64),
            "groups": max(len(ids), 1),
            "diopter": np.array([slab.diopter for slab in self.slabs], np.float64),
        }
        return pieces, aperture_samples(samples, self.blades, self.rotation)

    def _correction(self, focus: float, scale: float) -> np.ndarray:
        """The visibility correction at focus (diopters) on its coarse grid, (4, h, w)."""
        pieces, samples = self._visibility_data
        step = pieces["step"]
        coarse = np.zeros((4, -(-self.height // step), -(-self.width // step)), np.float32)
        diameter = scale * self.px_per_diopter / step * (pieces["diopter"] - focus)
        _visibility_correction(pieces["flat"], pieces["offset"], pieces["size"], pieces["origin"], pieces["box"],
                               pieces["group"], pieces["groups"], diameter, samples, VISIBILITY_TILE,
                               VISIBILITY_MIN_PX, coarse)
        return coarse

    def _seam_gains(self, layers: list[np.ndarray]) -> dict[int, np.ndarray]:
        """Per object in several pieces, the factor (>= 1) that fills the coverage its pieces lose at
        their seams. Pieces blurred by different amounts do not add up to the blurred object: a seam
        between a sharper and a blurrier piece lets what is behind show through, by an amount that
        changes with focus. The coverage the object should have is estimated per pixel as the whole
        silhouette blurred with each piece's kernel, weighted by that piece's share of the coverage
        there: 1 inside the object, the piece's own edge at the object's outline. Only deficits are
        filled (where pieces overlap, nearer ones already occlude the others in `_add_piece`).
        """
        sums: dict[int, np.ndarray] = {}  # per group: summed coverage, coverage-weighted silhouette blur
        for slab, layer in zip(self.slabs, layers):
            if slab.pieced:
                if slab.group not in sums:
                    sums[slab.group] = np.zeros((2, self.height, self.width), np.float32)
                ys, xs = slab.canvas
                _accumulate_seam(layer, ys.start, xs.start, sums[slab.group])
        return {g: _seam_gain(acc, SEAM_MIN_COVER, SEAM_MAX_GAIN) for g, acc in sums.items()}

    def _blurred(self, slab: _Slab, focus: float, scale: float) -> np.ndarray:
        defocus = slab.diopter - focus
        diameter = scale * self.px_per_diopter * abs(defocus)

        def kernel_of(fy, fx, radial):
            if self.blades == 0:  # a round aperture's spectrum is real: half the multiply work
                return disk_spectrum(diameter, radial)
            return aperture_spectrum(diameter, fy, fx, self.blades, self.rotation,
                                     flipped=defocus > 0).astype(np.complex64)

        return slab.blurred(kernel_of, diameter)


@njit(cache=True, nogil=True)
def _accumulate_seam(layer, y0, x0, sums):
    """Add a blurred piece's coverage and its coverage-weighted silhouette blur (channels 3 and 4)."""
    for i in range(layer.shape[1]):
        for j in range(layer.shape[2]):
            alpha = max(layer[3, i, j], np.float32(0.0))
            sums[0, y0 + i, x0 + j] += alpha
            sums[1, y0 + i, x0 + j] += alpha * min(max(layer[4, i, j], np.float32(0.0)), np.float32(1.0))


@njit(cache=True, nogil=True)
def _seam_gain(sums, min_cover, max_gain):
    """Per pixel: target / total^2 (the coverage-weighted silhouette blur over the summed coverage),
    within [1, max_gain]; 1 where the pieces cover less than min_cover."""
    gain = np.ones(sums.shape[1:], np.float32)
    for y in range(gain.shape[0]):
        for x in range(gain.shape[1]):
            total = sums[0, y, x]
            if total > min_cover:
                gain[y, x] = min(max(sums[1, y, x] / (total * total), np.float32(1.0)), np.float32(max_gain))
    return gain


@njit(cache=True, inline="always")
def _add_px(r, g, b, alpha, out, y, x, transmit, cover):
    """Composite one premultiplied pixel (alpha >= 0) at (y, x) behind what is there; cover is its
    group's coverage so far (see `_add_piece`). Of its alpha, only the room its group has left
    counts (all of it scaled down if it would overfill): transmit / room is the transmittance of the
    other groups in front, and the group's new room is room - alpha or 0."""
    room = max(np.float32(1.0) - cover[y, x], np.float32(0.0))
    # Branch-free (a select), so that loops over pixels vectorise; 0 once the group covers the pixel.
    weight = transmit[y, x] / max(room, alpha) if room > np.float32(1e-6) else np.float32(0.0)
    out[0, y, x] += r * weight
    out[1, y, x] += g * weight
    out[2, y, x] += b * weight
    transmit[y, x] = max(transmit[y, x] - alpha * weight, np.float32(0.0))  # 0 once overfilled
    cover[y, x] += min(alpha, room)


@njit(cache=True, nogil=True)
def _add_piece(layer, y0, x0, out, transmit, cover, gain):
    """Composite one blurred piece (4 or more, h, w), at (y0, x0) of the canvas, behind what is there,
    its premultiplied RGBA scaled by `gain` (canvas-sized).

    Pieces of one group (one object, sharing `cover`) add up until its coverage is full; other groups
    in front attenuate the piece multiplicatively ("over"), transmit / room being exactly the
    transmittance of the other groups.
    """
    for i in range(layer.shape[1]):
        for j in range(layer.shape[2]):
            y, x = y0 + i, x0 + j
            g = gain[y, x]
            alpha = max(layer[3, i, j] * g, np.float32(0.0))
            _add_px(layer[0, i, j] * g, layer[1, i, j] * g, layer[2, i, j] * g, alpha, out, y, x, transmit, cover)


@njit(cache=True, nogil=True)
def _visibility_correction(flat, offset, size, origin, box, group, groups, diameter, samples, tile, min_px, out):
    """Add to the composite `out` (4, H, W) the difference between compositing per aperture sample
    and compositing blurred pieces, on the tiles where two pieces blurred by min_px or more can meet.

    Piece k: sharp premultiplied RGBA in flat[offset[k]:], (4, size[k, 0], size[k, 1]), its pixel
    (0, 0) on canvas pixel origin[k]; content within box[k] (y0, y1, x0, x1); group[k] in 0..groups-1;
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
    for ty in range(tiles_y):
        for tx in range(tiles_x):
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
                    # tile pixels whose four taps lie in the buffer (its zero padding covers the rest)
                    for i in range(max(0, -iy), min(th, h - 1 - iy)):
                        for jj in range(max(0, -ix), min(tw, w - 1 - ix)):
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
