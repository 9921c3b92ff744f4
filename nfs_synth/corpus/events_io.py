"""Events in the DSEC HDF5 layout: streaming writer, windowed reader, exports.

Layout (what DSEC's tools, tonic and RVT open unchanged; nfs_synth.corpus.schema has the details):
`events/{x,y,t,p}` 1-D chunked datasets, `events/height`, `events/width`, `ms_to_idx` (first event
index with t >= 1000*m) and `t_offset` at the root.
"""
from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np

from nfs_synth.corpus.atomic import atomic_path
from nfs_synth.corpus.scene_file import open_scene
from nfs_synth.sensors.dvs import EVENT_DTYPE
from nfs_synth.errors import EventsError
from nfs_synth.corpus.schema import BY_PATH, DEFAULT_EVENT_COMPRESSION, EVENT_FILTERS


_FIELDS = ("x", "y", "t", "p")
_SPECS = {f: BY_PATH[f"events/{f}"] for f in _FIELDS}
_MS_TO_IDX = BY_PATH["ms_to_idx"]
CHUNK = _SPECS["t"].chunks[0]   # events per chunk (a module name: tests shrink it)
_READ_BLOCK = 1 << 20
EXPORT_FORMATS = ("txt", "npz", "dsec-h5")


def _check_attrs(attrs):
    if not isinstance(attrs, dict):
        raise EventsError(f"attrs must be a dict, got {type(attrs).__name__}")
    for key, value in attrs.items():
        if not isinstance(key, str):
            raise EventsError(f"attribute names must be strings, got {key!r}")
        if not isinstance(value, (str, bool, int, float, np.bool_, np.integer, np.floating)):
            raise EventsError(f"attribute {key!r} must be a str, bool or number, got {type(value).__name__}")


class EventWriter:
    """Append sorted event batches to an open HDF5 file; `close(t_end_us)` finishes it.

    Nothing is written for a batch that fails validation.  Writes are chunk-aligned: a
    partial chunk stays in memory until it fills or the writer is closed.
    """

    def __init__(self, h5file: h5py.File, height: int, width: int, attrs: dict,
                 compression: str = DEFAULT_EVENT_COMPRESSION):
        if not isinstance(h5file, h5py.File) or h5file.mode != "r+":
            raise EventsError("EventWriter needs an h5py.File open for writing")
        for name, v in (("height", height), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 < v <= 65536:
                raise EventsError(f"{name} must be an integer in 1..65536, got {v!r}")
        _check_attrs(attrs)
        if compression not in EVENT_FILTERS:
            raise EventsError(f"compression must be one of {sorted(EVENT_FILTERS)}, got {compression!r}")
        self._filter = EVENT_FILTERS[compression].kwargs()
        taken = [k for k in ("events", "ms_to_idx", "t_offset") if k in h5file]
        if taken:
            raise EventsError(f"{h5file.filename} already has {taken}")
        self.height, self.width = int(height), int(width)
        self._file = h5file
        group = h5file.create_group("events")
        self._ds = {f: group.create_dataset(f, shape=(0,), maxshape=(None,), dtype=_SPECS[f].dtype,
                                            chunks=(CHUNK,), **self._filter) for f in _FIELDS}
        group.create_dataset("height", data=np.int64(self.height))
        group.create_dataset("width", data=np.int64(self.width))
        group.attrs.update(attrs)
        self._pending = []
        self._n_pending = 0
        self._n_written = 0
        self._t_last = 0
        self._ms_parts = []  # ms_to_idx entries known so far
        self._n_ms = 0
        self._closed = False

    @property
    def count(self) -> int:
        return self._n_written + self._n_pending

    def append(self, events: np.ndarray) -> None:
        """Add a batch sorted by t whose first event is not earlier than the last one."""
        if self._closed:
            raise EventsError("EventWriter is closed")
        ev = np.asarray(events)
        if ev.dtype.names is None or not set(_FIELDS) <= set(ev.dtype.names) or ev.ndim != 1:
            raise EventsError(f"events must be a 1-D structured array with fields t, x, y, p; got {ev.dtype}")
        if any(ev.dtype[f].kind not in "iu" for f in _FIELDS):
            raise EventsError(f"event fields must be integers, got {ev.dtype}")
        if ev.size == 0:
            return
        t = ev["t"].astype(np.int64, copy=False)
        if t[0] < self._t_last:
            raise EventsError(f"events start at t={t[0]} us, before the previous batch's "
                              f"last t={self._t_last} us")
        if np.any(t[1:] < t[:-1]):
            raise EventsError("events must be sorted by t")
        if t[0] < 0:
            raise EventsError(f"negative timestamp {t[0]} us")
        for f, limit in (("x", self.width), ("y", self.height), ("p", 2)):
            v = ev[f]
            if v.min() < 0 or v.max() >= limit:
                raise EventsError(f"event {f} outside 0..{limit - 1}")
        batch = {"t": t, "x": ev["x"].astype(np.uint16), "y": ev["y"].astype(np.uint16),
                 "p": ev["p"].astype(np.uint8)}
        # ms boundaries up to the last t are final: later events cannot fall before them.
        bounds = 1000 * np.arange(self._n_ms, t[-1] // 1000 + 1, dtype=np.int64)
        self._ms_parts.append((self.count + np.searchsorted(t, bounds, "left")).astype(np.uint64))
        self._n_ms += bounds.size
        self._pending.append(batch)
        self._n_pending += t.size
        self._t_last = int(t[-1])
        if self._n_pending >= CHUNK:
            self._flush(final=False)

    def _flush(self, final):
        joined = {f: np.concatenate([b[f] for b in self._pending]) for f in _FIELDS}
        n = joined["t"].size if final else (joined["t"].size // CHUNK) * CHUNK
        start = self._n_written
        for f in _FIELDS:
            ds = self._ds[f]
            ds.resize((start + n,))
            ds[start:start + n] = joined[f][:n]
        self._pending = [{f: joined[f][n:] for f in _FIELDS}]
        self._n_pending -= n
        self._n_written += n

    def close(self, t_end_us: int) -> None:
        """Write the rest, `ms_to_idx` covering 0..ceil(t_end_us/1000) ms, and `t_offset` = 0."""
        if self._closed:
            raise EventsError("EventWriter is already closed")
        if isinstance(t_end_us, bool) or not isinstance(t_end_us, (int, np.integer)):
            raise EventsError(f"t_end_us must be integer microseconds, got {t_end_us!r}")
        if t_end_us < self._t_last:
            raise EventsError(f"t_end_us={t_end_us} is before the last event (t={self._t_last} us)")
        if self._pending:
            self._flush(final=True)
        n_ms = math.ceil(int(t_end_us) / 1000) + 1
        ms = np.full(n_ms, self.count, dtype=_MS_TO_IDX.dtype)
        if self._ms_parts:
            known = np.concatenate(self._ms_parts)[:n_ms]
            ms[:known.size] = known
        self._file.create_dataset("ms_to_idx", data=ms, **self._filter)
        self._file.create_dataset("t_offset", data=np.int64(0))
        self._closed = True


def _events_group(f: h5py.File):
    group = f.get("events")
    if not isinstance(group, h5py.Group) or not all(k in group for k in _FIELDS):
        raise EventsError(f"{f.filename} has no events (events/x, y, t, p)")
    return group


def _read(f: h5py.File, t_start_us, t_end_us) -> np.ndarray:
    return EventWindows(f).read(t_start_us, t_end_us)


class EventWindows:
    """`read_events` windows of one open file, its datasets looked up once (a training worker reads
    thousands of windows of each file)."""

    def __init__(self, f: h5py.File):
        group = _events_group(f)
        self.filename = f.filename
        self.fields = {name: group[name] for name in _FIELDS}
        self.t_off = int(f["t_offset"][()]) if "t_offset" in f else 0
        self.ms = f["ms_to_idx"] if "ms_to_idx" in f else None

    def read(self, t_start_us, t_end_us) -> np.ndarray:
        t_ds, t_off, ms = self.fields["t"], self.t_off, self.ms
        lo, hi = 0, t_ds.shape[0]
        if t_start_us is None and t_end_us is None:
            window = None
        else:
            if ms is None:
                raise EventsError(f"{self.filename} has no ms_to_idx; a time window needs it")
            rs = -math.inf if t_start_us is None else t_start_us - t_off
            re = math.inf if t_end_us is None else t_end_us - t_off
            if rs > re:
                raise EventsError(f"t_start_us={t_start_us} is after t_end_us={t_end_us}")
            # Narrow to whole milliseconds through the index, then to the exact microsecond.
            if rs > 0:
                m = math.floor(rs / 1000)
                lo = int(ms[m]) if m < ms.shape[0] else hi
            if re < math.inf:
                m = max(math.ceil(re / 1000), 0)
                hi = int(ms[m]) if m < ms.shape[0] else hi
            window = (rs, re)
        t = t_ds[lo:hi] if hi > lo else np.empty(0, np.int64)
        a, b = lo, hi
        if window is not None:
            a = lo + int(np.searchsorted(t, window[0], "left"))
            b = lo + int(np.searchsorted(t, window[1], "left"))
            t = t[a - lo:b - lo]
        out = np.empty(b - a, EVENT_DTYPE)
        out["t"] = t + t_off
        for fld in ("x", "y", "p"):
            out[fld] = self.fields[fld][a:b] if b > a else 0
        return out


def read_events(path_or_h5file, t_start_us=None, t_end_us=None) -> np.ndarray:
    """Events with t_start_us <= t < t_end_us (None: unbounded) as an EVENT_DTYPE array.

    Times include `t_offset`.  A window reads only the chunks it needs, via `ms_to_idx`.
    """
    for name, v in (("t_start_us", t_start_us), ("t_end_us", t_end_us)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
            raise EventsError(f"{name} must be integer microseconds or None, got {v!r}")
    if isinstance(path_or_h5file, (h5py.File, h5py.Group)):
        return _read(path_or_h5file.file, t_start_us, t_end_us)
    with h5py.File(path_or_h5file, "r") as f:
        return _read(f, t_start_us, t_end_us)


def _blocks(group):
    n = group["t"].shape[0]
    for a in range(0, n, _READ_BLOCK):
        b = min(n, a + _READ_BLOCK)
        block = np.empty(b - a, EVENT_DTYPE)
        for fld in _FIELDS:
            block[fld] = group[fld][a:b]
        yield block


def _write_txt(group, t_off, tmp):
    with open(tmp, "w") as fh:
        for block in _blocks(group):
            cols = np.stack([block["t"] + t_off, block["x"], block["y"], block["p"]], axis=1)
            np.savetxt(fh, cols, fmt="%d")


def _write_npz(src, group, tmp):
    ev = _read(src, None, None)
    with open(tmp, "wb") as fh:
        np.savez(fh, t=ev["t"], x=ev["x"], y=ev["y"], p=ev["p"],
                 height=np.int64(group["height"][()]), width=np.int64(group["width"][()]))


def _write_dsec(src, group, tmp):
    n_ms = src["ms_to_idx"].shape[0] if "ms_to_idx" in src else None
    t_last = int(group["t"][-1]) if group["t"].shape[0] else 0
    t_end = max(t_last, (n_ms - 1) * 1000) if n_ms else t_last
    attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in group.attrs.items()
             if isinstance(v, (bytes, str, bool, int, float, np.generic))}  # scalars only
    with h5py.File(tmp, "w") as dst:
        writer = EventWriter(dst, int(group["height"][()]), int(group["width"][()]), attrs, "blosc")  # as DSEC
        for block in _blocks(group):
            writer.append(block)
        writer.close(t_end)
        dst["t_offset"][()] = np.int64(src["t_offset"][()]) if "t_offset" in src else 0


def export_events(scene_path, fmt: str, out_path) -> Path:
    """Export a scene file's events as `txt` (t x y p, integer us), `npz` or `dsec-h5`.

    Written under a temporary name and renamed when complete; nothing is created on error.
    """
    if fmt not in EXPORT_FORMATS:
        raise EventsError(f"unknown export format {fmt!r}; known: {list(EXPORT_FORMATS)}")
    out_path = Path(out_path)
    with open_scene(scene_path) as src:
        group = _events_group(src)
        if not ("height" in group and "width" in group):
            raise EventsError(f"{scene_path} has no events/height, events/width")
        t_off = int(src["t_offset"][()]) if "t_offset" in src else 0
        with atomic_path(out_path) as tmp:
            if fmt == "txt":
                _write_txt(group, t_off, tmp)
            elif fmt == "npz":
                _write_npz(src, group, tmp)
            else:
                _write_dsec(src, group, tmp)
    return out_path
