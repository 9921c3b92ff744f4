"""Scene-file storage: write/read speed and size of each filter choice on a real paper-resolution scene.

For each family of datasets (frames, events, spike bits, the small float maps) it rewrites the arrays of
one scene with schema 1's Blosc zstd settings (the reference) and with HDF5's built-in filters (deflate
with and without byte shuffle, deflated by zlib in h5py or by ISA-L in whole chunks as the frames are
written, and no filter), reads them back, and prints MB/s, the compression ratio,
the ratio to Blosc, and the seconds a paper scene (480 frames, 2 s) would spend writing them.
Run: .venv/bin/python benchmarks/hdf5_storage.py [--scene FILE.h5] (default: renders one 346x260 scene)
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from nfs_synth.corpus.deflate import write_chunk
from nfs_synth.corpus.schema import BY_PATH

REPO = Path(__file__).resolve().parents[1]
PAPER_FRAMES = 480

CANDIDATES = {   # name -> h5py create_dataset filter arguments
    "blosc zstd (schema 1)": None,   # per family, below: what schema 1 wrote
    "gzip1 + shuffle": dict(compression="gzip", compression_opts=1, shuffle=True),
    "gzip1 + shuffle, ISA-L": dict(compression="gzip", compression_opts=1, shuffle=True),  # `corpus.deflate`
    "gzip4 + shuffle": dict(compression="gzip", compression_opts=4, shuffle=True),
    "gzip6 + shuffle": dict(compression="gzip", compression_opts=6, shuffle=True),
    "gzip1": dict(compression="gzip", compression_opts=1),
    "none": {},
}
SCHEMA1 = {  # Blosc zstd as schema 1 stored each family
    "frames": hdf5plugin.Blosc(cname="zstd", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE),
    "events": hdf5plugin.Blosc(cname="zstd", clevel=5, shuffle=hdf5plugin.Blosc.BITSHUFFLE),
    "spikes": hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.NOSHUFFLE),
    "maps": hdf5plugin.Blosc(cname="zstd", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE),
}


def render_scene(folder: Path) -> Path:
    """One paper-resolution scene (layered engine, bundled textures, 48 frames over the paper's 2 s)."""
    sets = ['render.engine="layered"', 'textures.source="bundled"', "corpus.scenes=1", "sweep.frames=48",
            "render.samples=16", "render.denoise=false"]
    cmd = [sys.executable, str(REPO / "generate.py"), str(REPO / "recipes/paper.toml"), "--out", str(folder),
           "--no-progress"] + [a for s in sets for a in ("--set", s)]
    subprocess.run(cmd, check=True)
    return folder / "scenes" / "scene_00000.h5"


def load_families(path: Path) -> dict[str, list[tuple[str, np.ndarray, tuple | None]]]:
    """family -> [(dataset name, array, chunks)] as the scene file holds them."""
    with h5py.File(path, "r") as h5:
        get = lambda name: (name, h5[name][()], h5[name].chunks)
        return {"frames": [get("frames")],
                "events": [get(f"events/{f}") for f in "xytp"],
                "spikes": [get("spikes/packed")],
                "maps": [get("all_in_focus"), get("depth_m")]}


def _whole_chunks(data: np.ndarray, chunks) -> bool:
    return chunks is not None and chunks[1:] == data.shape[1:] and data.shape[0] % chunks[0] == 0


def measure(arrays, filters: dict, folder: Path, isal: bool = False) -> tuple[float, float, int]:
    """(write s, read s, bytes on disk) of `arrays` written with `filters`, fsync'd, then read back.
    `isal`: whole chunks deflated by ISA-L (`corpus.deflate`, as the frames are written), others by h5py."""
    path = folder / "bench.h5"
    t0 = time.perf_counter()
    with h5py.File(path, "w") as h5:
        for name, data, chunks in arrays:
            if isal and _whole_chunks(data, chunks):
                ds = h5.create_dataset(name, shape=data.shape, dtype=data.dtype, chunks=chunks, **filters)
                for i in range(0, data.shape[0], chunks[0]):
                    write_chunk(ds, (i,) + (0,) * (data.ndim - 1), data[i:i + chunks[0]])
            else:
                h5.create_dataset(name, data=data, chunks=chunks, **filters)
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    write = time.perf_counter() - t0
    t0 = time.perf_counter()
    with h5py.File(path, "r") as h5:
        for name, *_ in arrays:
            h5[name][()]
    read = time.perf_counter() - t0
    size = path.stat().st_size
    path.unlink()
    return write, read, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", type=Path, help="a scene file (default: render a 346x260 one)")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs (default 3)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scene = args.scene or render_scene(Path(tmp) / "corpus")
        families = load_families(scene)
        frames = families["frames"][0][1].shape[0]
        with h5py.File(scene, "r") as h5:
            duration_s = h5["timestamps_us"][-1] / 1e6
        print(f"scene {scene.name}: {families['frames'][0][1].shape} frames, {duration_s:g} s; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        # Frames scale with the frame count, events and spikes with the sweep's duration.
        scale = {"frames": PAPER_FRAMES / frames, "events": 2.0 / duration_s, "spikes": 2.0 / duration_s,
                 "maps": 1.0}
        for family, arrays in families.items():
            raw = sum(a.nbytes for _, a, _ in arrays)
            print(f"\n{family}: {raw / 1e6:.1f} MB raw ({', '.join(n for n, *_ in arrays)}); "
                  f"paper scene x{scale[family]:.0f}")
            print(f"  {'filter':24s} {'write MB/s':>10s} {'read MB/s':>10s} {'ratio':>6s} "
                  f"{'size/blosc':>10s} {'write/blosc':>11s} {'paper s':>8s}")
            ref = None
            for name, filters in CANDIDATES.items():
                filters = dict(SCHEMA1[family]) if filters is None else filters
                best = min((measure(arrays, filters, Path(tmp), "ISA-L" in name) for _ in range(args.repeat)),
                           key=lambda r: r[0])
                write, read, size = best
                ref = ref or best
                print(f"  {name:24s} {raw / write / 1e6:10.0f} {raw / read / 1e6:10.0f} {raw / size:6.2f} "
                      f"{size / ref[2]:10.2f} {write / ref[0]:11.2f} {write * scale[family]:8.2f}")
    print(f"\nschema 2 stores: frames {BY_PATH['frames'].filter}, spikes {BY_PATH['spikes/packed'].filter}, "
          f"events {BY_PATH['events/t'].filter} (corpus.event_compression)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
