"""The headerless `.dat` spike format of the PKU spike cameras (SpikeCV and the Vidar tools read it): one
frame of H*W bits per readout step, no header, so readers are told the size and the readout rate."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nfs_synth.corpus.atomic import atomic_path
from nfs_synth.sensors.spikes import SpikeStream
from nfs_synth.errors import SpikeError


def pack_dat_frames(packed: np.ndarray, width: int, flip: bool = True) -> np.ndarray:
    """Row-packed bits (n, H, ceil(W/8)) -> .dat frames (n, ceil(H*W/8)): pixels row-major over the whole
    frame, pixel k in bit k % 8 of byte k // 8, rows bottom-up when flip, each frame padded to a byte."""
    n, height, _ = packed.shape
    rows = packed[:, ::-1] if flip else packed
    if width % 8 == 0:  # rows are byte-aligned: the frame is the rows' bytes back to back
        return np.ascontiguousarray(rows).reshape(n, -1)
    bits = np.unpackbits(rows, axis=2, bitorder="little")[:, :, :width]
    return np.packbits(bits.reshape(n, height * width), axis=1, bitorder="little")


def _unpack_dat_frames(frames: np.ndarray, height: int, width: int, flip: bool) -> np.ndarray:
    bits = np.unpackbits(frames, axis=1, bitorder="little")[:, :height * width]
    rows = np.packbits(bits.reshape(-1, height, width), axis=2, bitorder="little")
    return rows[:, ::-1] if flip else rows


def write_dat(path: str | os.PathLike, stream: SpikeStream, flip: bool = True,
              steps_per_write: int = 1024) -> Path:
    """Write a stream as a headerless .dat file (written to a temporary name, then renamed)."""
    if not isinstance(stream, SpikeStream):
        raise SpikeError(f"write_dat needs a SpikeStream, got {type(stream).__name__}")
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        for i in range(0, len(stream), steps_per_write):
            fh.write(pack_dat_frames(stream.packed[i:i + steps_per_write], stream.width, flip).tobytes())
    return path


def read_dat(path: str | os.PathLike, height: int, width: int, flip: bool = True,
             readout_hz: float = 20000.0, steps_per_read: int = 1024) -> SpikeStream:
    """Read a headerless .dat file; step n (from 0) is stamped round((n + 1) * 1e6 / readout_hz) us."""
    if height <= 0 or width <= 0:
        raise SpikeError(f"height and width must be positive, got {height}, {width}")
    frame_bytes = (height * width + 7) // 8
    size = os.path.getsize(path)
    if size % frame_bytes:
        raise SpikeError(f"{path}: {size} bytes is not a whole number of {height}x{width} frames "
                         f"({frame_bytes} bytes each)")
    n = size // frame_bytes
    raw = np.fromfile(path, np.uint8).reshape(n, frame_bytes)
    packed = np.empty((n, height, (width + 7) // 8), np.uint8)
    for i in range(0, n, steps_per_read):
        packed[i:i + steps_per_read] = _unpack_dat_frames(raw[i:i + steps_per_read], height, width, flip)
    t_us = np.round(np.arange(1, n + 1) * (1e6 / readout_hz)).astype(np.int64)
    return SpikeStream(packed, t_us, height, width)
