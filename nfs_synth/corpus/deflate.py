"""Chunks for HDF5's shuffle + gzip filters, deflated by ISA-L (python-isal) instead of zlib.

h5py compresses each chunk with zlib in the writing thread; at a paper scene's 480 frames of 346x260
float16 that is 4.0 CPU-s, and ISA-L's level 1 does the same in 0.74 CPU-s with 0.1 % more bytes
(measured on paper scene 0 with `benchmarks/hdf5_storage.py`). The chunk written is exactly what
the two filters would store (byte shuffle, then a zlib stream), so any HDF5 build reads it with its
stock filters and the data, and hence the content hash, are unchanged.
"""
from __future__ import annotations

import h5py
import numpy as np
from isal import isal_zlib

from nfs_synth.errors import SceneFileError

LEVEL = 1   # ISA-L's levels are 0..3; 1 matches zlib level 1's ratio on frames


def shuffled(chunk: np.ndarray) -> bytes:
    """HDF5's shuffle filter: byte k of every element, for k = 0 .. itemsize-1, one run after another."""
    data = np.ascontiguousarray(chunk)
    size = data.dtype.itemsize
    return data.tobytes() if size == 1 else np.ascontiguousarray(data.view(np.uint8).reshape(-1, size).T).tobytes()


def write_chunk(dataset: h5py.Dataset, offset: tuple[int, ...], chunk: np.ndarray) -> None:
    """Store one whole chunk of a shuffle + gzip dataset at `offset` (its first element)."""
    if chunk.shape != dataset.chunks or chunk.dtype != dataset.dtype:
        raise SceneFileError(f"a {dataset.name} chunk is {dataset.chunks} {dataset.dtype}, got {chunk.shape} {chunk.dtype}")
    dataset.id.write_direct_chunk(offset, isal_zlib.compress(shuffled(chunk), LEVEL))
