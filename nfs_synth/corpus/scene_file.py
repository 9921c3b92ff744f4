"""One HDF5 file per scene: written under a temporary name, renamed only when complete.

The schema is in the README, "Scene file format". Frames are float16 linear RGB, one chunk per frame, Blosc zstd
with byte shuffle: 11 bits of mantissa keep later simulators far from any 8-bit staircase at half the
bytes of float32.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from nfs_synth import __version__

SCHEMA_VERSION = 1
TMP_MARK = ".tmp-"
# Attributes that legitimately differ between otherwise identical runs: excluded from content hashes.
VOLATILE_ATTRS = frozenset({"created_utc", "host", "wall_seconds", "timings_json"})


class SceneFileError(ValueError):
    """A scene file that is missing, truncated, or does not follow the schema."""


def compression(kind: str = "float") -> dict:
    """h5py filter arguments: byte shuffle suits floats, bit shuffle suits small integers."""
    shuffle = hdf5plugin.Blosc.SHUFFLE if kind == "float" else hdf5plugin.Blosc.BITSHUFFLE
    return dict(hdf5plugin.Blosc(cname="zstd", clevel=5, shuffle=shuffle))


def scene_name(index: int) -> str:
    return f"scene_{index:05d}.h5"


class SceneWriter:
    """Context manager: `with SceneWriter(path, T, H, W) as w: ...`; the file appears only on success."""

    def __init__(self, path: str | Path, frames: int, height: int, width: int):
        self.path = Path(path)
        self.tmp = self.path.with_name(f"{self.path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self.shape = (frames, height, width)
        self.h5: h5py.File | None = None

    def __enter__(self) -> "SceneWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.h5 = h5py.File(self.tmp, "w")
        t, h, w = self.shape
        self.h5.attrs["schema_version"] = SCHEMA_VERSION
        self.h5.attrs["nfs_synth_version"] = __version__
        self.h5.attrs["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.h5.attrs["host"] = socket.gethostname()
        self.frames = self.h5.create_dataset("frames", shape=(t, h, w, 3), dtype=np.float16,
                                             chunks=(1, h, w, 3), **compression("float"))
        self.frames.attrs["units"] = "linear scene-referred RGB (Rec.709 primaries), 1.0 = diffuse white"
        return self

    def write_frame(self, index: int, rgb: np.ndarray) -> None:
        self.frames[index] = rgb.astype(np.float16)

    def write_array(self, name: str, data, units: str | None = None, kind: str = "float") -> None:
        data = np.asarray(data)
        opts = compression(kind) if data.ndim >= 1 and data.size > 16 else {}
        ds = self.h5.create_dataset(name, data=data, **opts)
        if units:
            ds.attrs["units"] = units

    def set_attrs(self, **attrs) -> None:
        for key, value in attrs.items():
            self.h5.attrs[key] = value

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.h5.close()
        finally:
            if exc_type is None:
                os.replace(self.tmp, self.path)       # atomic on one file system
            else:
                self.tmp.unlink(missing_ok=True)


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
        for name in ("frames", "timestamps_us", "focus_distance_m", "all_in_focus", "depth_m"):
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
            if key in VOLATILE_ATTRS:
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
