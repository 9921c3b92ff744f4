"""One HDF5 file per scene: written under a temporary name, renamed only when complete.

The schema is nfs_synth.corpus.schema (printed in the README, "Scene file format"). Frames are float16
linear RGB, one chunk per frame, gzip with byte shuffle (deflated by ISA-L, `deflate`): 11 bits of
mantissa keep later simulators far from any 8-bit staircase at half the bytes of float32, and any HDF5
build reads them.
"""
from __future__ import annotations

import hashlib
import json
import socket
import time
from contextlib import ExitStack
from pathlib import Path

import h5py
import numpy as np

from nfs_synth import __version__
from nfs_synth.corpus.atomic import atomic_path
from nfs_synth.corpus.deflate import write_chunk
from nfs_synth.corpus.schema import (BY_PATH, ROOT_ATTR_NAMES, SCHEMA_VERSION, WALL_CLOCK_ATTRS,
                                     datasets)
from nfs_synth.errors import SceneFileError

_FRAMES = BY_PATH["frames"]
_UNFILTERED_MAX = 16        # arrays of at most this many values are stored without a filter


def scene_name(index: int) -> str:
    return f"scene_{index:05d}.h5"


def provenance_attrs() -> dict:
    """The wall-clock attributes of a file made now, here."""
    return {"created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": socket.gethostname()}


class SceneWriter:
    """Context manager: `with SceneWriter(path, T, H, W) as w: ...`; the file appears only on success.

    Dataset and root-attribute names must be the schema's, so that no file carries an undocumented one.
    """

    def __init__(self, path: str | Path, frames: int, height: int, width: int):
        self.path = Path(path)
        self.shape = (frames, height, width)
        self.h5: h5py.File | None = None

    def __enter__(self) -> "SceneWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        t, h, w = self.shape
        with ExitStack() as stack:           # h5 closes before the rename; on error both unwind
            tmp = stack.enter_context(atomic_path(self.path))
            self.h5 = stack.enter_context(h5py.File(tmp, "w"))
            self.set_attrs(schema_version=SCHEMA_VERSION, nfs_synth_version=__version__, **provenance_attrs())
            self.frames = self.h5.create_dataset("frames", shape=_FRAMES.shape_for(T=t, H=h, W=w),
                                                 dtype=_FRAMES.dtype, chunks=_FRAMES.chunks_for(H=h, W=w),
                                                 **_FRAMES.filter.kwargs())
            self.frames.attrs["units"] = "linear scene-referred RGB (Rec.709 primaries), 1.0 = diffuse white"
            self._stack = stack.pop_all()
        return self

    def write_frame(self, index: int, rgb: np.ndarray) -> None:
        if not 0 <= index < self.shape[0]:
            raise SceneFileError(f"frame {index} of a {self.shape[0]}-frame sweep")
        write_chunk(self.frames, (index, 0, 0, 0), np.asarray(rgb, np.float16)[None])

    def write_array(self, name: str, data, units: str | None = None) -> None:
        """One whole dataset, stored with the schema's filter."""
        if name not in BY_PATH:
            raise SceneFileError(f"dataset {name!r} is not in the scene-file schema")
        data = np.asarray(data)
        spec = BY_PATH[name]
        filtered = spec.filter is not None and data.ndim >= 1 and data.size > _UNFILTERED_MAX
        opts = spec.filter.kwargs() if filtered else {}
        ds = self.h5.create_dataset(name, data=data, **opts)
        if units:
            ds.attrs["units"] = units

    def create_dataset(self, name: str, **sizes) -> h5py.Dataset:
        """An empty dataset of the schema, filled piece by piece (`sizes`: its dimension names)."""
        spec = BY_PATH[name]
        return self.h5.create_dataset(name, shape=spec.shape_for(**sizes), dtype=spec.dtype,
                                      chunks=spec.chunks_for(**sizes), **spec.filter.kwargs())

    def set_attrs(self, **attrs) -> None:
        if unknown := sorted(set(attrs) - ROOT_ATTR_NAMES):
            raise SceneFileError(f"root attributes {unknown} are not in the scene-file schema")
        for key, value in attrs.items():
            self.h5.attrs[key] = value

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stack.__exit__(exc_type, exc, tb)


def set_wall_clock_attrs(path: str | Path, **attrs) -> None:
    """Add wall-clock attributes to a complete file: they are outside the content hash, so timings that
    include closing and hashing the file can be stored after both."""
    if unknown := sorted(set(attrs) - WALL_CLOCK_ATTRS):
        raise SceneFileError(f"{unknown} are not wall-clock attributes of the scene-file schema")
    with h5py.File(path, "r+") as h5:
        h5.attrs.update(attrs)


def open_scene(path: str | Path) -> h5py.File:
    """The file open for reading; SceneFileError naming it, as h5py's own messages do not."""
    if not Path(path).is_file():
        raise SceneFileError(f"scene file not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise SceneFileError(f"{path}: not a readable HDF5 file ({err})") from None


class SceneReader:
    """Read access to a scene file; datasets are read lazily (`frame(i)` touches one chunk)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.h5 = open_scene(self.path)
        for name, _ in datasets("sweep"):
            if name not in self.h5:
                self.h5.close()
                raise SceneFileError(f"{self.path}: missing dataset '{name}'")

    def __enter__(self) -> "SceneReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.h5.close()

    @property
    def num_frames(self) -> int:
        return self.h5["frames"].shape[0]

    @property
    def size(self) -> tuple[int, int]:
        _, h, w, _ = self.h5["frames"].shape
        return h, w

    def frame(self, index: int) -> np.ndarray:
        return self.h5["frames"][index].astype(np.float32)

    def iter_frames(self):
        for i in range(self.num_frames):
            yield self.frame(i)

    @property
    def timestamps_us(self) -> np.ndarray:
        return self.h5["timestamps_us"][:]

    @property
    def focus_distance_m(self) -> np.ndarray:
        return self.h5["focus_distance_m"][:]

    @property
    def all_in_focus(self) -> np.ndarray:
        return self.h5["all_in_focus"][:]

    @property
    def depth_m(self) -> np.ndarray:
        return self.h5["depth_m"][:]

    @property
    def plan(self) -> dict:
        return json.loads(self.h5.attrs["plan_json"])

    @property
    def recipe(self) -> dict:
        return json.loads(self.h5.attrs["recipe_json"])

    @property
    def has_events(self) -> bool:
        return "events" in self.h5

    @property
    def has_spikes(self) -> bool:
        return "spikes" in self.h5


def content_hash(path: str | Path) -> str:
    """SHA-256 over every dataset's dtype, shape and bytes and every non-volatile attribute.

    Independent of HDF5 chunk layout and compression details, so it identifies the data, not the file.
    """
    digest = hashlib.sha256()

    def add_attrs(name: str, obj) -> None:
        for key in sorted(obj.attrs):
            if key in WALL_CLOCK_ATTRS:
                continue
            value = obj.attrs[key]
            digest.update(f"@{name}:{key}=".encode())
            digest.update(np.asarray(value).tobytes() if not isinstance(value, str) else value.encode())

    try:
        with h5py.File(path, "r") as h5:
            add_attrs("/", h5)
            names: list[str] = []
            h5.visit(names.append)
            for name in sorted(names):
                obj = h5[name]
                add_attrs(name, obj)
                if isinstance(obj, h5py.Dataset):
                    digest.update(f"#{name}:{obj.dtype.str}:{obj.shape}".encode())
                    if obj.shape == ():
                        digest.update(np.asarray(obj[()]).tobytes())
                    elif obj.chunks:
                        for sl in _chunk_slices(obj):
                            digest.update(np.ascontiguousarray(obj[sl]).tobytes())
                    else:
                        digest.update(np.ascontiguousarray(obj[()]).tobytes())
    except OSError as err:
        raise SceneFileError(f"{path}: unreadable HDF5 ({err})") from None
    return digest.hexdigest()


def _chunk_slices(ds: h5py.Dataset, target_bytes: int = 32 << 20):
    """Slabs along axis 0 of about `target_bytes`, whole chunks each."""
    rows = ds.chunks[0]
    row_bytes = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
    step = max(rows, (target_bytes // row_bytes) // rows * rows)
    for start in range(0, ds.shape[0], step):
        yield slice(start, min(start + step, ds.shape[0]))
