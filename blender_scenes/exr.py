"""Read the uncompressed scanline OpenEXR files that Blender writes (single or multi-part).

Blender's Python API cannot hand back a multilayer EXR's passes, and the depth pass lives only in
a multilayer file, so the renderer writes EXRs with codec NONE and this reader slices them with numpy.
Only what that writer produces is supported: scanline parts, compression NONE, HALF/FLOAT channels.
"""
from __future__ import annotations

import struct

import numpy as np

_MAGIC = 20000630
_MULTIPART = 0x1000
_TILED = 0x200
_PIXEL_DTYPES = {1: np.dtype("<f2"), 2: np.dtype("<f4")}  # 0 (UINT) is never written for passes


class ExrFormatError(ValueError):
    """The file is not an EXR this reader understands."""


def _cstring(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(b"\0", pos)
    return buf[pos:end].decode(), end + 1


def _channels(value: bytes) -> list[tuple[str, np.dtype]]:
    out, pos = [], 0
    while value[pos] != 0:
        name, pos = _cstring(value, pos)
        pixel_type, _, xs, ys = struct.unpack_from("<iB3xii", value, pos)
        pos += 16
        if pixel_type not in _PIXEL_DTYPES or xs != 1 or ys != 1:
            raise ExrFormatError(f"channel {name!r}: unsupported pixel type or subsampling")
        out.append((name, _PIXEL_DTYPES[pixel_type]))
    return out


def _header(buf: bytes, pos: int) -> tuple[dict, int]:
    attrs = {}
    while buf[pos] != 0:
        name, pos = _cstring(buf, pos)
        _, pos = _cstring(buf, pos)  # attribute type name: implied by the attribute name here
        (size,) = struct.unpack_from("<i", buf, pos)
        attrs[name] = buf[pos + 4:pos + 4 + size]
        pos += 4 + size
    return attrs, pos + 1


def read_exr(path: str) -> dict[str, np.ndarray]:
    """All channels of an EXR as {full channel name: (H, W) float32}, rows top-down."""
    with open(path, "rb") as f:
        buf = f.read()
    magic, version = struct.unpack_from("<iI", buf, 0)
    if magic != _MAGIC or version & _TILED:
        raise ExrFormatError(f"{path}: not a scanline OpenEXR file")
    multipart = bool(version & _MULTIPART)
    pos, headers = 8, []
    while True:
        attrs, pos = _header(buf, pos)
        headers.append(attrs)
        if not multipart or buf[pos] == 0:
            break
    pos += int(multipart)  # the empty header that ends a multi-part header list

    out = {}
    for attrs in headers:
        if attrs["compression"][0] != 0:
            raise ExrFormatError(f"{path}: compressed EXR (write it with exr_codec='NONE')")
        x0, y0, x1, y1 = struct.unpack("<4i", attrs["dataWindow"])
        width, height = x1 - x0 + 1, y1 - y0 + 1
        offsets = np.frombuffer(buf, "<u8", count=height, offset=pos)
        pos += 8 * height
        channels = _channels(attrs["channels"])
        line = np.dtype([(name, dt, (width,)) for name, dt in channels])
        prefix = 12 if multipart else 8  # [part], y, byte count
        rows = np.empty(height, line)
        for off in offsets:
            y = struct.unpack_from("<i", buf, int(off) + prefix - 8)[0] - y0
            rows[y] = np.frombuffer(buf, line, count=1, offset=int(off) + prefix)[0]
        for name, _ in channels:
            out[name] = rows[name].astype(np.float32, copy=False)
    return out
