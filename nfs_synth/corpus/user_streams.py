"""Event and spike streams from other tools' files, for `nfs-synth aif`: times come back in integer
microseconds from the stream's own origin (DSEC's t_offset, t = 0 of a text or .npz file, the start of a
.dat's first readout step), events sorted as the file holds them (an unsorted file is refused).

Text events: one `t x y p` per line (# comments and blank lines allowed), an optional `width height`
first line (the rpg/ESIM convention), t in integer microseconds or in float seconds (ESIM, v2e, rpg):
`time_unit` "us", "s", or "auto" (seconds when any time has a fractional part). Polarity 1 = ON and 0 or
-1 = OFF. Every refusal names the file and the line.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nfs_synth.errors import StreamFileError, UsageError
from nfs_synth.sensors.dvs import EVENT_DTYPE
from nfs_synth.sensors.spikes import SpikeStream

TIME_UNITS = ("auto", "us", "s")
EVENT_SUFFIXES = (".h5", ".hdf5", ".txt", ".npz")


def read_user_events(path: str | os.PathLike, time_unit: str = "auto") -> tuple[np.ndarray, tuple[int, int] | None]:
    """(events with t in us from the origin, (height, width) of the sensor when the file records it)."""
    path = Path(path)
    if time_unit not in TIME_UNITS:
        raise UsageError(f"time unit must be one of {', '.join(TIME_UNITS)}, got {time_unit!r}")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return _read_dsec(path)
    if suffix == ".npz":
        with np.load(path) as z:
            missing = {"t", "x", "y", "p"} - set(z.files)
            if missing:
                raise StreamFileError(f"{path}: .npz lacks arrays {sorted(missing)}")
            cols = [z[k] for k in "txyp"]
            sensor = (int(z["height"]), int(z["width"])) if {"height", "width"} <= set(z.files) else None
        return _events(path, cols, time_unit, lambda i: f"event {i}"), sensor
    if suffix == ".txt":
        return _read_text(path, time_unit)
    raise UsageError(f"{path}: unknown event format {suffix!r} (use {', '.join(EVENT_SUFFIXES)})")


def _read_dsec(path: Path) -> tuple[np.ndarray, tuple[int, int] | None]:
    import h5py

    from nfs_synth.corpus.events_io import read_events

    ev = read_events(path)
    with h5py.File(path, "r") as f:       # read_events adds t_offset; time zero is the origin itself
        ev["t"] -= int(f["t_offset"][()]) if "t_offset" in f else 0
        group = f["events"]
        sensor = (int(group["height"][()]), int(group["width"][()])) if "height" in group and "width" in group \
            else None
    return ev, sensor


def _data_lines(path: Path):
    """(line number, fields) of every line that holds data."""
    with open(path, errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            fields = line.split("#")[0].split()
            if fields:
                yield n, fields


def _read_text(path: Path, time_unit: str) -> tuple[np.ndarray, tuple[int, int] | None]:
    lines = _data_lines(path)
    first = next(lines, None)
    if first is None:
        raise StreamFileError(f"{path}: no events")
    sensor, skip = None, 0
    if len(first[1]) == 2:                                         # `width height`
        try:
            width, height = (int(v) for v in first[1])
        except ValueError:
            raise StreamFileError(f"{path}: line {first[0]}: a two-field first line must be `width height` "
                                  f"in pixels, got {' '.join(first[1])!r}") from None
        sensor, skip = (height, width), first[0]
    try:
        table = np.loadtxt(path, ndmin=2, skiprows=skip, comments="#")
    except ValueError:  # numpy's message names neither the file nor the line
        raise StreamFileError(f"{path}: {_bad_line(path, skip)}") from None
    if table.shape[1] < 4:
        raise StreamFileError(f"{path}: expected 4 columns `t x y p`, found {table.shape[1]}")
    return _events(path, list(table[:, :4].T), time_unit, lambda i: f"line {_line_of(path, skip, i)}"), sensor


def _line_of(path: Path, skip: int, row: int) -> int:
    """The file line of data row `row` (read again only for a message: comments shift the rows)."""
    rows = (n for n, _ in _data_lines(path) if n > skip)
    return next(n for k, n in enumerate(rows) if k == row)


def _bad_line(path: Path, skip: int) -> str:
    """Where and why a text event file is not a table of numbers."""
    columns = None
    for n, fields in _data_lines(path):
        if n <= skip:
            continue
        try:
            [float(v) for v in fields]
        except ValueError:
            return f"line {n} is not numbers `t x y p`: {' '.join(fields)[:80]!r}"
        if columns is not None and len(fields) != columns:
            return f"line {n} has {len(fields)} columns, the lines before it {columns} (expected `t x y p`)"
        columns = len(fields)
    return "not a table of numbers `t x y p`"


def _events(path: Path, cols: list[np.ndarray], time_unit: str, where) -> np.ndarray:
    """Checked EVENT_DTYPE events from t, x, y, p columns; `where(i)` names row i in messages."""
    t, x, y, p = (np.asarray(c, np.float64) for c in cols)
    if t.size == 0:
        raise StreamFileError(f"{path}: no events")
    fractional = t != np.round(t)
    seconds = time_unit == "s" or (time_unit == "auto" and fractional.any())
    if not seconds and fractional.any():
        i = int(np.argmax(fractional))
        raise StreamFileError(f"{path}: {where(i)}: time {t[i]!r} is not integer microseconds (float seconds: "
                              "--time-unit s)")
    t_us = np.round(t * 1e6).astype(np.int64) if seconds else t.astype(np.int64)
    for name, v in (("x", x), ("y", y)):
        bad = (v < 0) | (v != np.round(v)) | (v > 65535)
        if bad.any():
            i = int(np.argmax(bad))
            raise StreamFileError(f"{path}: {where(i)}: {name} = {v[i]!r} is not a pixel index (0 to 65535)")
    bad = ~np.isin(p, (0, 1, -1))
    if bad.any():
        i = int(np.argmax(bad))
        raise StreamFileError(f"{path}: {where(i)}: polarity {p[i]!r} is not 1 (ON), 0 or -1 (OFF)")
    back = np.diff(t_us) < 0
    if back.any():
        i = int(np.argmax(back)) + 1
        raise StreamFileError(f"{path}: {where(i)}: time {t[i]!r} comes before {t[i - 1]!r} on the row "
                              "before it; events must be sorted by time")
    ev = np.empty(t.size, EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = t_us, x, y, p > 0
    return ev


def read_user_spikes(path: str | os.PathLike, height: int, width: int, *, flip: bool = True,
                     readout_hz: float = 20000.0) -> tuple[SpikeStream, float]:
    """(stream, readout rate) of a headerless .dat of height x width at `readout_hz` (rows bottom-up when
    flip), or of the .npz that `nfs-synth export spikes --format npz` writes (its own size and rate)."""
    path = Path(path)
    if path.suffix.lower() == ".dat":
        from nfs_synth.corpus.spike_dat import read_dat

        return read_dat(path, height, width, flip=flip, readout_hz=readout_hz), readout_hz
    if path.suffix.lower() != ".npz":
        raise UsageError(f"--spikes {path}: expected a .dat or .npz file")
    with np.load(path) as z:
        missing = {"packed", "t_us", "height", "width"} - set(z.files)
        if missing:
            raise StreamFileError(f"{path}: .npz lacks arrays {sorted(missing)} (as `nfs-synth export spikes "
                                  "--format npz` writes them)")
        size = (int(z["height"]), int(z["width"]))
        if size != (height, width):
            raise UsageError(f"the image is {width}x{height} but {path} is from a {size[1]}x{size[0]} sensor: "
                             "the sizes must match")
        stream = SpikeStream(z["packed"], z["t_us"].astype(np.int64), height, width)
        rate = float(z["readout_hz"]) if "readout_hz" in z.files else float("nan")
    if not np.isfinite(rate):           # an export of a file without the attribute: from the step times
        rate = 1e6 / float(np.median(np.diff(stream.t_us))) if len(stream) > 1 else readout_hz
    return stream, rate
