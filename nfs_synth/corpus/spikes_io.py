"""The `spikes/` group of a scene file: streaming writer, time-windowed reader, .dat / .npz export.

Layout (nfs_synth.corpus.schema has the details): `spikes/packed` (N, H, ceil(W/8)), row bits
little-endian, chunked `CHUNK_STEPS` steps along time; `spikes/t_us` (N,), end time of each readout
step; group attributes carry the simulator parameters, seed and sensor size (`height`, `width`).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from nfs_synth.corpus.atomic import atomic_path
from nfs_synth.corpus.scene_file import open_scene
from nfs_synth.corpus.schema import BY_PATH
from nfs_synth.corpus.spike_dat import pack_dat_frames
from nfs_synth.sensors.spikes import SpikeStream
from nfs_synth.errors import SpikeError

_PACKED, _T_US = BY_PATH["spikes/packed"], BY_PATH["spikes/t_us"]
CHUNK_STEPS = _PACKED.chunks[0]
COMPRESSION = _PACKED.filter.kwargs()


class SpikeWriter:
    """Append SpikeStream chunks to `spikes/` of an open HDF5 file; buffers to whole time chunks."""

    def __init__(self, h5file: h5py.File, height: int, width: int, attrs: dict, compression=COMPRESSION):
        """`compression`: h5py filter arguments of the packed bits (benchmarks compare choices)."""
        if "spikes" in h5file:
            raise SpikeError(f"{h5file.filename} already has a spikes group")
        self.height, self.width = int(height), int(width)
        row_bytes = (self.width + 7) // 8
        group = h5file.create_group("spikes")
        self._packed = group.create_dataset(
            "packed", shape=(0, self.height, row_bytes), maxshape=(None, self.height, row_bytes),
            dtype=_PACKED.dtype, chunks=_PACKED.chunks_for(H=self.height, W=self.width), **compression)
        self._t_us = group.create_dataset("t_us", shape=(0,), maxshape=(None,), dtype=_T_US.dtype,
                                          chunks=_T_US.chunks, **_T_US.filter.kwargs())
        try:
            group.attrs.update({"height": self.height, "width": self.width, "bit_order": "little",
                                "chunk_steps": CHUNK_STEPS, **attrs})
        except (TypeError, ValueError) as exc:  # an attribute HDF5 cannot store: leave no group behind
            del h5file["spikes"]
            raise SpikeError(f"spike attributes cannot be stored in HDF5: {exc}") from exc
        self._buf = np.zeros((CHUNK_STEPS, self.height, row_bytes), np.uint8)
        self._buf_t = np.zeros(CHUNK_STEPS, np.int64)
        self._fill = 0
        self._last_t = None
        self.steps = 0

    def append(self, chunk: SpikeStream) -> None:
        if not isinstance(chunk, SpikeStream) or (chunk.height, chunk.width) != (self.height, self.width):
            raise SpikeError(f"expected a SpikeStream of {self.height}x{self.width}")
        if len(chunk) == 0:
            return
        t = chunk.t_us
        if np.any(np.diff(t) <= 0) or (self._last_t is not None and t[0] <= self._last_t):
            raise SpikeError("spike step times must increase across appended chunks")
        self._last_t = int(t[-1])
        i = 0
        while i < len(chunk):
            take = min(CHUNK_STEPS - self._fill, len(chunk) - i)
            self._buf[self._fill:self._fill + take] = chunk.packed[i:i + take]
            self._buf_t[self._fill:self._fill + take] = t[i:i + take]
            self._fill += take
            i += take
            if self._fill == CHUNK_STEPS:
                self._flush()

    def _flush(self) -> None:
        if self._fill == 0:
            return
        n = self.steps + self._fill
        self._packed.resize(n, axis=0)
        self._t_us.resize(n, axis=0)
        self._packed[self.steps:n] = self._buf[:self._fill]
        self._t_us[self.steps:n] = self._buf_t[:self._fill]
        self.steps, self._fill = n, 0

    def close(self) -> int:
        """Write the last partial chunk; returns the number of steps written."""
        self._flush()
        return self.steps

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _spikes_group(h5: h5py.File) -> h5py.Group:
    if "spikes" not in h5 or "packed" not in h5["spikes"]:
        raise SpikeError(f"{h5.filename} has no spikes (group spikes/ missing)")
    return h5["spikes"]


def read_spikes(path_or_h5file, t_start_us: int | None = None, t_end_us: int | None = None) -> SpikeStream:
    """Steps with t_start_us <= t_us < t_end_us (None = open end); reads only the chunks needed."""
    if isinstance(path_or_h5file, h5py.File):
        return _read(path_or_h5file, t_start_us, t_end_us)
    with h5py.File(path_or_h5file, "r") as h5:
        return _read(h5, t_start_us, t_end_us)


def _read(h5, t_start_us, t_end_us):
    group = _spikes_group(h5)
    t_us = group["t_us"][:]
    lo = 0 if t_start_us is None else int(np.searchsorted(t_us, t_start_us, side="left"))
    hi = len(t_us) if t_end_us is None else int(np.searchsorted(t_us, t_end_us, side="left"))
    hi = max(lo, hi)
    return SpikeStream(group["packed"][lo:hi], t_us[lo:hi], int(group.attrs["height"]),
                       int(group.attrs["width"]))


def export_spikes(scene_path: str | os.PathLike, fmt: str, out_path: str | os.PathLike,
                  flip: bool = True) -> Path:
    """Export a scene's spikes as a camera .dat file (rows bottom-up when flip) or an .npz
    (packed, t_us, height, width, readout_hz). Written to a temporary name, then renamed."""
    if fmt not in ("dat", "npz"):
        raise SpikeError(f"export format must be 'dat' or 'npz', got {fmt!r}")
    out_path = Path(out_path)
    with open_scene(scene_path) as h5:
        group = _spikes_group(h5)
        packed, width = group["packed"], int(group.attrs["width"])
        with atomic_path(out_path) as tmp, open(tmp, "wb") as fh:
            if fmt == "dat":
                for i in range(0, packed.shape[0], CHUNK_STEPS):
                    fh.write(pack_dat_frames(packed[i:i + CHUNK_STEPS], width, flip).tobytes())
            else:
                np.savez_compressed(fh, packed=packed[:], t_us=group["t_us"][:],
                                    height=int(group.attrs["height"]), width=width,
                                    readout_hz=float(group.attrs.get("readout_hz", np.nan)))
    return out_path
