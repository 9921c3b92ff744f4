"""Depth-of-field frames from depth slabs: blur each slab with the lens's aperture, composite the slabs.

A slab is a premultiplied RGBA image of the surfaces between two depths, rendered with a pinhole camera
(docs/layered.md). A point at planar depth z seen with focus distance S spreads into the image of the
aperture scaled to diameter A*f*|1/z - 1/S| on the sensor (Cycles' thin-lens model, see `optics`), so in
pixels the diameter is `px_per_diopter * |1/z - 1/S|`. Each slab is blurred with the diameter of one
depth (the mean depth of what it holds); the blurred slabs then combine with the premultiplied "over"
operator, nearest on top, except that pieces of one object add up (see `SlabStack`). Where blurred
objects overlap, "over" of blurred layers misjudges what hides what; an optional correction composites
per point of the aperture instead (`kernels.visibility_correction`).

Each slab is cropped to its content, padded for blurs up to 6 px, 12 px, ... up to the largest it will
get (one window each), and the spectra are computed once and shared by every frame; a frame costs one
pointwise product and one inverse FFT per non-empty slab, in the tightest window that holds its blur and
on a coarser grid for wide blurs. Kernels come from the aperture's analytic Fourier
transform, i.e. the band-limited continuous disk (or polygon), with no extra pixel-box blur.
"""
from __future__ import annotations

import bisect
import math
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
import threading
import time
from threading import Lock
from typing import Iterable, Iterator

import cv2
import numpy as np
import scipy.fft as sfft

from nfs_synth.errors import LayeredSettingsError
from nfs_synth.render.layered.aperture import SHARP_PX, aperture_samples, aperture_spectrum, disk_spectrum
from nfs_synth.render.layered.kernels import accumulate_seam, add_piece, seam_gain, visibility_correction

# Blurs wider than 2 * COARSE_PX are computed on a grid 2**level coarser (level <= MAX_LEVEL), keeping
# at least COARSE_PX coarse pixels across the disk: the disk's spectrum beyond that grid's band is
# below ~4 % of its peak, and a frame then costs a fraction of the full-resolution FFTs.
COARSE_PX = 12.0
MAX_LEVEL = 3
# Each piece keeps windows padded for blurs up to WINDOW_PX, 2 x WINDOW_PX, ... (see _Slab). In a sweep,
# blurs at least WINDOW_PX wide are interpolated between key blurs KEYS_PER_OCTAVE per doubling of the
# diameter (4.4 % apart), BLUR_KEYS_KEPT of them kept per piece at a time.
WINDOW_PX = 6.0
KEYS_PER_OCTAVE = 16
BLUR_KEYS_KEPT = 4
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
VISIBILITY_KEY_PX = 2.0
VISIBILITY_TILE = 16
VISIBILITY_MIN_PX = 1.0


def _fft_size(n: int) -> int:
    """Smallest fast FFT length >= n that the coarsest level divides."""
    step = 1 << MAX_LEVEL
    n = step * -(-n // step)
    while sfft.next_fast_len(n, real=True) != n:
        n += step
    return n


def _row_spans(nonzero: np.ndarray) -> np.ndarray:
    """Per row of a (h, w) mask, the columns [start, stop) outside which it is False; (w, 0) if none."""
    any_ = nonzero.any(axis=1)
    start = np.where(any_, nonzero.argmax(axis=1), nonzero.shape[1])
    stop = np.where(any_, nonzero.shape[1] - nonzero[:, ::-1].argmax(axis=1), 0)
    return np.stack([start, stop], axis=1).astype(np.int64)


def _level(diameter_px: float) -> int:
    """Resolution level (downsampling 2**level) at which a blur of this diameter is computed."""
    if diameter_px < 2 * COARSE_PX:
        return 0
    return min(MAX_LEVEL, int(math.log2(diameter_px / COARSE_PX)))


class _Window:
    """A piece's channels zero-padded around its content box, and their spectrum (premultiplied RGBA,
    then, for an object in several pieces, the object's silhouette within one blur radius of the piece)."""

    def __init__(self, rgba: np.ndarray, silhouette: np.ndarray | None, pad: int,
                 box: tuple[int, int, int, int], keep_sharp: bool):
        y0, y1, x0, x1 = box
        hc, wc = rgba.shape[1:]
        if silhouette is not None:
            # the silhouette within one blur radius (+2) of the piece, and twice the padding, so that its
            # blur reaches wherever the piece's does without wrapping around the buffer
            near = np.zeros_like(silhouette)
            near[max(y0 - pad, 0):y1 + pad, max(x0 - pad, 0):x1 + pad] = silhouette[
                max(y0 - pad, 0):y1 + pad, max(x0 - pad, 0):x1 + pad]
            rgba = np.concatenate([rgba, near[None]])
            pad *= 2
        self.y0, self.x0 = y0 - pad, x0 - pad
        self.shape = (_fft_size(y1 - y0 + 2 * pad), _fft_size(x1 - x0 + 2 * pad))
        # Zeros beyond the canvas as well: the FFT buffer holds the whole blurred footprint, so the
        # circular convolution never wraps light from one side onto the other.
        buf = np.zeros((len(rgba), *self.shape), np.float32)
        cy0, cx0 = max(self.y0, 0), max(self.x0, 0)
        cy1, cx1 = min(self.y0 + self.shape[0], hc), min(self.x0 + self.shape[1], wc)
        buf[:, cy0 - self.y0:cy1 - self.y0, cx0 - self.x0:cx1 - self.x0] = rgba[:, cy0:cy1, cx0:cx1]
        self.sharp = buf if keep_sharp else None
        self.spectrum = sfft.rfft2(buf)
        self.origin = (cy0, cx0)  # canvas position of the window's first pixel
        self.local = (slice(cy0 - self.y0, cy1 - self.y0), slice(cx0 - self.x0, cx1 - self.x0))
        self.bands: dict[int, tuple] = {}

    def band(self, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Spectrum cut to the band of a 2**m coarser grid (exact band-limited downsampling), with its
        frequencies (fy, fx and radial) in cycles per full-resolution pixel."""
        if m not in self.bands:
            h, w = self.shape[0] >> m, self.shape[1] >> m
            fy, fx = sfft.fftfreq(self.shape[0]), sfft.rfftfreq(self.shape[1])
            rows = np.r_[0:(h + 1) // 2, self.shape[0] - h // 2:self.shape[0]] if m else slice(None)
            cols = slice(0, w // 2 + 1)
            fy, fx = fy[rows][:, None], fx[cols][None, :]
            # Shifted by (2**m - 1) / 2 pixels, so that coarse sample i lands on the centre of the 2**m
            # pixels it stands for: resize's convention, far cheaper than warping to sample i * 2**m.
            spectrum = self.spectrum
            if m:
                spectrum = spectrum[:, rows, cols] * (np.exp(1j * np.pi * ((1 << m) - 1) * (fy + fx))
                                                      / 4 ** m).astype(np.complex64)
            self.bands[m] = (spectrum, fy, fx, np.hypot(fy, fx).astype(np.float32))
        return self.bands[m]

    def blurred(self, kernel_of, m: int) -> np.ndarray:
        """The window blurred by the aperture spectrum `kernel_of(fy, fx, radial)` on the 2**m coarser grid
        and upsampled, cut to the canvas, (channels, h, w)."""
        spectrum, fy, fx, radial = self.band(m)
        coarse = sfft.irfft2(spectrum * kernel_of(fy, fx, radial), s=(self.shape[0] >> m, self.shape[1] >> m))
        if m:
            coarse = cv2.resize(coarse.transpose(1, 2, 0), (self.shape[1], self.shape[0]),
                                interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
        return coarse[(slice(None), *self.local)]


# A blurred piece: (lo, hi, t, (y, x)): lo mixed with hi by t (kernels._at), its first pixel at canvas (y, x)
_Blurred = tuple[np.ndarray, np.ndarray, np.float32, tuple[int, int]]


class _Slab:
    """One piece: its depth, group and content box, and padded windows for blurs up to WINDOW_PX, twice
    that, and so on up to the widest blur the sweep gives it. Each blur uses the tightest window that
    holds it, so a piece near focus is blurred and composited over its content plus a few pixels, not
    over the sweep's widest footprint."""

    def __init__(self, rgba: np.ndarray, silhouette: np.ndarray | None, diopter: float, group: int,
                 max_diameter: float):
        rows, cols = np.nonzero(rgba[3] > 0)
        self.box = (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
        self.diopter, self.group, self.pieced = diopter, group, silhouette is not None
        # (the widest a little wider: a sweep's blur keys can lie one key step beyond the widest blur)
        self.limits = [WINDOW_PX * 2 ** c for c in range(64) if WINDOW_PX * 2 ** c < max_diameter]
        self.limits.append(max_diameter * 2 ** (1 / KEYS_PER_OCTAVE))
        # the tightest also keeps its unblurred buffer (for blurs below SHARP_PX and the visibility correction)
        self.windows = [_Window(rgba, silhouette, int(math.ceil(0.5 * widest)) + 2, self.box, keep_sharp=not c)
                        for c, widest in enumerate(self.limits)]

    def blurred(self, spectrum_of, diameter: float) -> _Blurred:
        """The piece blurred for this diameter by the aperture spectrum `spectrum_of(diameter, fy, fx,
        radial)`."""
        window = self.windows[min(bisect.bisect_left(self.limits, diameter), len(self.windows) - 1)]
        if diameter < SHARP_PX:
            layer = window.sharp[(slice(None), *window.local)]
        else:
            layer = window.blurred(partial(spectrum_of, diameter), _level(diameter))
        return layer, layer, np.float32(0.0), window.origin

    def interpolated(self, spectrum_of, diameter: float, keys: _KeyCache) -> _Blurred:
        """`blurred`, interpolated linearly between blurs at key diameters WINDOW_PX * 2**(j / KEYS_PER_OCTAVE)
        (computed once per sweep, in `keys`) where the blur is at least WINDOW_PX wide; exact below."""
        if diameter < WINDOW_PX:
            return self.blurred(spectrum_of, diameter)
        x = KEYS_PER_OCTAVE * math.log2(diameter / WINDOW_PX)
        j = int(x)
        c = min(j // KEYS_PER_OCTAVE + 1, len(self.windows) - 1)  # the window that holds keys j and j + 1
        lo, hi = (WINDOW_PX * 2 ** (k / KEYS_PER_OCTAVE) for k in (j, j + 1))
        return (keys.get((j, c), x), keys.get((j + 1, c), x), np.float32((diameter - lo) / (hi - lo)),
                self.windows[c].origin)

    def key(self, spectrum_of, j: int, c: int) -> np.ndarray:
        """The blur at key diameter j in window c (see `interpolated`)."""
        diameter = WINDOW_PX * 2 ** (j / KEYS_PER_OCTAVE)
        # contiguous: every frame between this key and the next reads all of it
        return np.ascontiguousarray(self.windows[c].blurred(partial(spectrum_of, diameter), _level(diameter)))


class _KeyCache:
    """Values computed once per key, by the first frame thread that asks for one; the `keep` nearest to
    the latest request are kept (a sweep moves on). `compute(key)` makes a value."""

    def __init__(self, compute, keep: int) -> None:
        self.compute, self.keep, self.lock, self.values = compute, keep, Lock(), {}

    def get(self, key, position: float):
        with self.lock:
            entry = self.values.get(key)
            mine = entry is None
            if mine:
                entry = self.values[key] = (position, Future())
                while len(self.values) > self.keep:  # drop the farthest
                    del self.values[max(self.values, key=lambda k: abs(self.values[k][0] - position))]
        future = entry[1]
        if mine:
            try:
                future.set_result(self.compute(key))
            except BaseException as err:  # the threads waiting for this key fail too, rather than hang
                future.set_exception(err)
                raise
        return future.result()


class _KeyCorrections:
    """The visibility correction of a sweep at key focus distances, spaced so that every blur changes by
    VISIBILITY_KEY_PX coarse pixels from one to the next, and linearly interpolated between them: it
    varies smoothly with focus, and a sweep's frames are far closer together (480 frames: 0.15 px)."""

    def __init__(self, stack: SlabStack, scale: float, keep: int = 8) -> None:
        step = stack._visibility_data[0]["step"]
        self.lo, self.hi = stack.focus_diopters
        self.spacing = VISIBILITY_KEY_PX * step / (stack.px_per_diopter * scale)
        self.cache = _KeyCache(lambda j: stack._correction(min(self.lo + j * self.spacing, self.hi), scale), keep)

    def at(self, focus: float) -> np.ndarray:
        x = (focus - self.lo) / self.spacing
        j = min(max(int(math.floor(x)), 0), max(int(math.ceil((self.hi - self.lo) / self.spacing)) - 1, 0))
        t = np.float32(min(max(x - j, 0.0), 1.0))
        return self.cache.get(j, j) if t == 0 else (1 - t) * self.cache.get(j, j) + t * self.cache.get(j + 1, j)


class PoolCPU:
    """CPU seconds of a thread pool's threads, readable from another thread while they run: `frames`
    composites ahead in threads while the caller writes, so the caller's stage clock can move this CPU
    to compositing (`run.stages.StageClock.count_background`)."""

    def __init__(self):
        self._clocks: list[int] = []
        self._retired = 0.0
        self._lock = Lock()

    def register(self) -> None:
        """A pool's initializer: runs in each new thread."""
        with self._lock:
            self._clocks.append(time.pthread_getcpuclockid(threading.get_ident()))

    def seconds(self) -> float:
        with self._lock:
            return self._retired + sum(time.clock_gettime(c) for c in self._clocks)

    def retire(self) -> None:
        """Keep the threads' totals before they exit (their clocks go with them)."""
        with self._lock:
            self._retired += sum(time.clock_gettime(c) for c in self._clocks)
            self._clocks = []


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
    (`kernels.visibility_correction`); 0 leaves it out. view: (y0, y1, x0, x1), the part of the canvas
    the frames cover (default: all of it); the slabs around it blur into it, and nothing is
    composited outside it (an overscanned canvas's margin is there for its blur only).
    """

    def __init__(self, slabs, diopters, px_per_diopter: float, focus_diopters: tuple[float, float], *,
                 groups=None, blades: int = 0, rotation_rad: float = 0.0, workers: int = 1,
                 visibility_samples: int = 0, view: tuple[int, int, int, int] | None = None) -> None:
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
        self.pool_cpu = PoolCPU()
        self.height, self.width = np.shape(slabs[0])[:2]
        self.view = (0, self.height, 0, self.width) if view is None else tuple(int(v) for v in view)
        y0, y1, x0, x1 = self.view
        if not (0 <= y0 < y1 <= self.height and 0 <= x0 < x1 <= self.width):
            raise LayeredSettingsError(f"view {self.view} must be a non-empty (y0, y1, x0, x1) within the "
                                       f"{self.height} x {self.width} canvas")
        self._unit_gain = np.ones((y1 - y0, x1 - x0), np.float32)
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
            silhouette = np.minimum(silhouettes[group], 1.0) if pieces[group] > 1 else None
            widest = self.px_per_diopter * max(abs(diopter - d) for d in self.focus_diopters)
            self.slabs.append(_Slab(rgba, silhouette, diopter, group, widest))
        self._visibility_data = self._visibility_pieces(int(visibility_samples))
        self._spectra = (self._spectrum_of(False), self._spectrum_of(True))  # farther, nearer than the focus

    def frames(self, focus_m: Iterable[float], f_number_scale: float = 1.0) -> Iterator[np.ndarray]:
        """`frame` for each focus distance, in order, `workers` frames at a time in threads (the FFTs
        and the compositing loop release the GIL; measured: one single-threaded FFT per frame thread
        is 2-3x faster than threaded FFTs of these small pieces)."""
        keys = _KeyCorrections(self, f_number_scale) if self._visibility_data and f_number_scale > 0 else None
        blur_keys = self._blur_keys(f_number_scale)
        if self.workers == 1:
            yield from (self._frame(f, f_number_scale, keys, blur_keys) for f in focus_m)
            return
        with ThreadPoolExecutor(self.workers, initializer=self.pool_cpu.register) as pool:
            try:
                pending = deque()
                for f in focus_m:
                    pending.append(pool.submit(self._frame, f, f_number_scale, keys, blur_keys))
                    if len(pending) > self.workers:  # bounded look-ahead: memory stays a few frames
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:   # also when the sweep stops early: never read the clock of a thread that has exited
                self.pool_cpu.retire()

    def frame(self, focus_m: float, f_number_scale: float = 1.0) -> np.ndarray:
        """(h, w, 4) premultiplied RGBA of the view focused at planar distance focus_m (inf: at infinity).

        f_number_scale = N_stack / N_wanted blurs as a different aperture would (<= 1 keeps within
        the padding); 0 gives the pinhole composite. (`frames` interpolates the visibility correction
        between focus distances a fraction of a pixel of blur apart; this computes it.)
        """
        return self._frame(focus_m, f_number_scale, None, None)

    def _frame(self, focus_m: float, f_number_scale: float, keys: _KeyCorrections | None,
               blur_keys: list | None) -> np.ndarray:
        focus = 0.0 if math.isinf(focus_m) else 1.0 / focus_m
        lo, hi = self.focus_diopters
        if not (lo - 1e-9 <= focus <= hi + 1e-9) or not 0.0 <= f_number_scale <= 1.0:
            raise LayeredSettingsError(f"focus {focus_m} m (or aperture scale {f_number_scale}) is outside "
                                       f"the range this stack was padded for ({1 / hi:.4g}..{1 / lo:.4g} m)")
        layers = [self._blurred(k, focus, f_number_scale, blur_keys) for k in range(len(self.slabs))]
        gains = self._seam_gains(layers)
        vy0, vy1, vx0, vx1 = self.view
        out = np.zeros((4, vy1 - vy0, vx1 - vx0), np.float32)
        transmit = np.ones(out.shape[1:], np.float32)  # through everything in front
        cover: dict[int, np.ndarray] = {}  # coverage of each group so far
        for slab, (lo, hi, t, (y, x)) in zip(self.slabs, layers):  # front to back
            if slab.group not in cover:
                cover[slab.group] = np.zeros_like(transmit)
            add_piece(lo, hi, t, y - vy0, x - vx0, out, transmit, cover[slab.group],
                      gains.get(slab.group, self._unit_gain))
        out[3] = 1.0 - transmit
        if self._visibility_data is not None and f_number_scale > 0:
            coarse = keys.at(focus) if keys else self._correction(focus, f_number_scale)
            step = self._visibility_data[0]["step"]
            if step > 1:  # coarse pixel i covers pixels i * step .. (i + 1) * step - 1: resize's convention
                size = (coarse.shape[2] * step, coarse.shape[1] * step)
                coarse = cv2.resize(coarse.transpose(1, 2, 0), size, interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
            out += coarse[:, vy0:vy1, vx0:vx1]
            np.minimum(out[3], 1.0, out=out[3])
        np.maximum(out, 0.0, out=out)  # ringing of the band-limited disk never makes light negative
        return out.transpose(1, 2, 0)

    def _visibility_pieces(self, samples: int):
        """The sharp pieces, averaged onto the correction's coarser grid and packed for
        `kernels.visibility_correction`, with the aperture samples; None if samples is 0."""
        if samples == 0:
            return None
        level = max(0, round(math.log2(self.px_per_diopter / VISIBILITY_PX_PER_DIOPTER)))
        step = 1 << level
        flats, sizes, origins, boxes, spans = [], [], [], [], []
        for slab in self.slabs:
            window = slab.windows[0]  # the tightest: content and a zero border
            # pad the buffer in front so that its canvas origin falls on the coarse grid
            py, px = window.y0 % step, window.x0 % step
            h, w = window.sharp.shape[1] + py, window.sharp.shape[2] + px
            buf = np.zeros((4, -(-h // step) * step, -(-w // step) * step), np.float32)
            buf[:, py:h, px:w] = window.sharp[:4]
            coarse = buf.reshape(4, buf.shape[1] // step, step, buf.shape[2] // step, step).mean(axis=(2, 4))
            flats.append(np.ascontiguousarray(coarse, np.float32).ravel())
            spans.append(_row_spans(np.any(coarse != 0, axis=0)))
            sizes.append(coarse.shape[1:])
            origins.append(((window.y0 - py) // step, (window.x0 - px) // step))
            y0, y1, x0, x1 = slab.box
            boxes.append((y0 // step, -(-y1 // step), x0 // step, -(-x1 // step)))
        sizes = np.array(sizes, np.int64).reshape(-1, 2)
        ids = {g: i for i, g in enumerate(dict.fromkeys(slab.group for slab in self.slabs))}
        # the tiles that hold the view's coarse pixels and the next ones out, which its upsampling reads
        y0, y1, x0, x1 = self.view
        cy0, cy1, cx0, cx1 = max(y0 // step - 1, 0), -(-y1 // step) + 1, max(x0 // step - 1, 0), -(-x1 // step) + 1
        tile = VISIBILITY_TILE
        pieces = {
            "step": step,
            "tiles": np.array([cy0 // tile, -(-cy1 // tile), cx0 // tile, -(-cx1 // tile)], np.int64),
            "flat": np.concatenate(flats) if flats else np.zeros(0, np.float32),
            "offset": np.concatenate([[0], np.cumsum(sizes[:, 0] * sizes[:, 1] * 4)[:-1]]).astype(np.int64),
            "size": sizes,
            "origin": np.array(origins, np.int64).reshape(-1, 2),
            "box": np.array(boxes, np.int64).reshape(-1, 4),
            "spans": np.concatenate(spans) if spans else np.zeros((0, 2), np.int64),
            "span_row": np.concatenate([[0], np.cumsum(sizes[:, 0])[:-1]]).astype(np.int64),
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
        visibility_correction(pieces["flat"], pieces["offset"], pieces["size"], pieces["origin"], pieces["box"],
                              pieces["spans"], pieces["span_row"], pieces["group"], pieces["groups"], diameter,
                              samples, VISIBILITY_TILE, VISIBILITY_MIN_PX, pieces["tiles"], coarse)
        return coarse

    def _seam_gains(self, layers: list[_Blurred]) -> dict[int, np.ndarray]:
        """Per object in several pieces, the factor (>= 1) that fills the coverage its pieces lose at
        their seams. Pieces blurred by different amounts do not add up to the blurred object: a seam
        between a sharper and a blurrier piece lets what is behind show through, by an amount that
        changes with focus. The coverage the object should have is estimated per pixel as the whole
        silhouette blurred with each piece's kernel, weighted by that piece's share of the coverage
        there: 1 inside the object, the piece's own edge at the object's outline. Only deficits are
        filled (where pieces overlap, nearer ones already occlude the others in `kernels.add_piece`).
        """
        sums: dict[int, np.ndarray] = {}  # per group: summed coverage, coverage-weighted silhouette blur
        vy0, _, vx0, _ = self.view
        for slab, (lo, hi, t, (y, x)) in zip(self.slabs, layers):
            if slab.pieced:
                if slab.group not in sums:
                    sums[slab.group] = np.zeros((2, *self._unit_gain.shape), np.float32)
                accumulate_seam(lo, hi, t, y - vy0, x - vx0, sums[slab.group])
        return {g: seam_gain(acc, SEAM_MIN_COVER, SEAM_MAX_GAIN) for g, acc in sums.items()}

    def _spectrum_of(self, flipped: bool):
        """The aperture's spectrum as a function of (diameter, fy, fx, radial), for points nearer than the
        focus (flipped) or farther."""
        def spectrum_of(diameter, fy, fx, radial):
            if self.blades == 0:  # a round aperture's spectrum is real: half the multiply work
                return disk_spectrum(diameter, radial)
            return aperture_spectrum(diameter, fy, fx, self.blades, self.rotation,
                                     flipped=flipped).astype(np.complex64)
        return spectrum_of

    def _blurred(self, k: int, focus: float, scale: float, blur_keys) -> _Blurred:
        """Piece k blurred for this focus (diopters): exactly, or from the sweep's `blur_keys`."""
        slab = self.slabs[k]
        defocus = slab.diopter - focus
        diameter = scale * self.px_per_diopter * abs(defocus)
        flipped = self.blades > 0 and defocus > 0  # a round aperture looks the same either way
        if blur_keys is None:
            return slab.blurred(self._spectra[flipped], diameter)
        return slab.interpolated(self._spectra[flipped], diameter, blur_keys[k][flipped])

    def _blur_keys(self, scale: float) -> list[tuple[_KeyCache, _KeyCache]]:
        """Per piece, the key blurs of a sweep (farther than the focus, nearer), a few kept at a time."""
        def cache(slab, flipped):
            return _KeyCache(lambda key: slab.key(self._spectra[flipped], *key), BLUR_KEYS_KEPT)
        return [(cache(slab, False), cache(slab, True)) for slab in self.slabs]
