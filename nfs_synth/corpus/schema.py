"""The scene-file schema, defined once: every dataset (shape, dtype, meaning, storage) and root attribute.

The writers take dtypes, chunks and filters from here, `nfs-synth validate` checks files against it,
and README.md's "Scene file format" table is its print-out: `python -m nfs_synth.corpus.schema`
(tests/test_readme.py keeps the two equal).
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

import hdf5plugin

from nfs_synth.scene.motion import enabled as motion_enabled

# 2: frames, maps, timestamps, events and spikes in HDF5's built-in filters (schema 1: Blosc zstd
# everywhere, which only readers that load hdf5plugin could open). The datasets are the same.
SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)

_SHUFFLES = {"byte shuffle": hdf5plugin.Blosc.SHUFFLE, "bitshuffle": hdf5plugin.Blosc.BITSHUFFLE,
             None: hdf5plugin.Blosc.NOSHUFFLE}


@dataclass(frozen=True)
class Blosc:
    """A Blosc zstd filter (hdf5plugin: readers `import hdf5plugin` first), as DSEC stores its events."""

    level: int
    shuffle: str | None                 # "byte shuffle", "bitshuffle" or None
    builtin = False                     # not in a stock HDF5 build

    def kwargs(self) -> dict:
        """h5py's create_dataset arguments."""
        return dict(hdf5plugin.Blosc(cname="zstd", clevel=self.level, shuffle=_SHUFFLES[self.shuffle]))

    def __str__(self) -> str:
        return f"Blosc zstd{self.level}" + (f" + {self.shuffle}" if self.shuffle else "")


@dataclass(frozen=True)
class Deflate:
    """gzip (deflate) with HDF5's byte shuffle: in every HDF5 build (h5dump, HDFView, MATLAB, Julia)."""

    level: int
    builtin = True

    def kwargs(self) -> dict:
        return dict(compression="gzip", compression_opts=self.level, shuffle=True)

    def __str__(self) -> str:
        return f"gzip{self.level} + shuffle"


@dataclass(frozen=True)
class Uncompressed:
    """Chunked, no filter."""

    builtin = True

    def kwargs(self) -> dict:
        return {}

    def __str__(self) -> str:
        return "no filter"


# Measured in benchmarks/hdf5_storage.py on a 346x260 scene: gzip level 1 + shuffle writes frames at
# 0.7x Blosc zstd5's speed and 8 % more bytes (about 5 s of a paper scene's 480 frames); levels 4 and 6
# save 3-5 % more bytes at 1.3-1.4x the time. Packed spike bits are near incompressible (Blosc saved 6 %,
# gzip 4 % at 15x Blosc's write time): stored unfiltered, 3.5x faster to write than Blosc.
STORED = Deflate(1)
SPIKE_BITS = Uncompressed()
# corpus.event_compression: gzip is readable everywhere and costs 0.1 s per paper scene more than Blosc,
# which stays available for byte-for-byte DSEC storage.
EVENT_FILTERS = {"gzip": STORED, "blosc": Blosc(5, "bitshuffle")}
DEFAULT_EVENT_COMPRESSION = "gzip"

EVENT_CHUNK = 1 << 17                   # events per chunk (DSEC-like; 2^16..2^17)
SPIKE_CHUNK_STEPS = 256                 # readout steps per chunk


@dataclass(frozen=True)
class Dataset:
    """One row of the table: datasets alike in shape, dtype and storage.

    Shapes and chunks hold sizes or dimension names: T frames, H x W pixels, N events, M milliseconds,
    S spike readout steps, ceil(W/8) bytes per row of spike bits.
    """

    paths: tuple[str, ...]
    shape: tuple
    dtype: str
    meaning: str
    part: str                   # sweep: every scene file; camera: rendered scenes; events, spikes, rgb: that sensor
    chunks: tuple | None = None  # None: h5py's choice (none for scalars)
    filter: Blosc | Deflate | Uncompressed | None = None  # None: unfiltered (scalars, tiny arrays)
    storage: str = ""            # how the README describes chunks and filter

    def shape_for(self, **sizes) -> tuple | None:
        return _resolve(self.shape, sizes)

    def chunks_for(self, **sizes) -> tuple | None:
        return _resolve(self.chunks, sizes) if self.chunks else None


def _resolve(dims: tuple, sizes: dict) -> tuple | None:
    """`dims` with each name replaced by its size in `sizes` (T=, H=, W=, ...); None if one is not given."""
    if "W" in sizes:
        sizes = sizes | {"ceil(W/8)": (sizes["W"] + 7) // 8}
    if "s" in sizes:
        sizes = sizes | {"sH": sizes["s"] * sizes["H"], "sW": sizes["s"] * sizes["W"]}
    out = tuple(d if isinstance(d, int) else sizes.get(d) for d in dims)
    return None if None in out else out


DATASETS = (
    Dataset(("frames",), ("T", "H", "W", 3), "float16",
            "focal-sweep frames, linear scene-referred RGB (Rec.709 primaries)", "sweep",
            chunks=(1, "H", "W", 3), filter=STORED, storage=f"one chunk per frame, {STORED}"),
    Dataset(("timestamps_us",), ("T",), "int64",
            "time of each frame (first at 0, last at `sweep.duration_s`)", "sweep", filter=STORED),
    Dataset(("focus_distance_m",), ("T",), "float64", "planar focus distance of each frame", "sweep",
            filter=STORED),
    Dataset(("all_in_focus",), ("H", "W", 3), "float32",
            "ground truth, linear RGB (pinhole render by default), rounded to float16 precision like the "
            "frames", "sweep", filter=STORED),
    Dataset(("depth_m",), ("H", "W"), "float32",
            "planar depth (along the optical axis) from the all-in-focus render; 1e10 where no surface", "sweep",
            filter=STORED),
    Dataset(("camera/K",), (3, 3), "float64",
            "pinhole intrinsics in pixels; group attrs: width, height, focal_length_mm, f_number, "
            "sensor_width_mm, aperture_blades, aperture_rotation_deg", "camera"),
    Dataset(("events/x", "events/y"), ("N",), "uint16", "DSEC layout", "events", chunks=(EVENT_CHUNK,),
            filter=STORED, storage=f"chunks of 2^{EVENT_CHUNK.bit_length() - 1} events, {STORED} "
                                   f"(`corpus.event_compression = \"blosc\"`: {EVENT_FILTERS['blosc']}, as DSEC)"),
    Dataset(("events/t",), ("N",), "int64", "us relative to `t_offset`, sorted", "events",
            chunks=(EVENT_CHUNK,), filter=STORED),
    Dataset(("events/p",), ("N",), "uint8", "1 = ON, 0 = OFF", "events", chunks=(EVENT_CHUNK,), filter=STORED),
    Dataset(("events/height", "events/width"), (), "int64", "sensor size", "events"),
    Dataset(("ms_to_idx",), ("M",), "uint64",
            "for each millisecond m, index of the first event with t >= 1000*m", "events", filter=STORED),
    Dataset(("t_offset",), (), "int64", "0", "events"),
    Dataset(("spikes/packed",), ("S", "H", "ceil(W/8)"), "uint8",
            "one readout step per row of bits, pixel x is bit x%8 of byte x//8 (LSB first), rows top-down",
            "spikes", chunks=(SPIKE_CHUNK_STEPS, "H", "ceil(W/8)"), filter=SPIKE_BITS,
            storage=f"{SPIKE_CHUNK_STEPS} steps per chunk, {SPIKE_BITS} (packed bits barely compress)"),
    Dataset(("spikes/t_us",), ("S",), "int64", "end time of each readout step", "spikes",
            chunks=(16 * SPIKE_CHUNK_STEPS,), filter=STORED),
    Dataset(("rgb/captures",), ("C", "sH", "sW", 3), "uint8",
            "RGB camera (`rgb_camera.enabled`): capture i integrates frames i .. i+n-1, Poisson-Gaussian noise, "
            "8-bit sRGB; s = `rgb_camera.scale`, C = T - n + 1; group attrs: every value used", "rgb",
            chunks=(1, "sH", "sW", 3), filter=STORED, storage=f"one chunk per capture, {STORED}"),
    Dataset(("rgb/all_in_focus",), ("sH", "sW", 3), "float32",
            "ground truth in the RGB camera's frame, linear RGB (`all_in_focus` is its s x s block mean)", "rgb",
            filter=STORED),
    Dataset(("rgb/to_sensor",), (3, 3), "float64",
            "homography from RGB pixel to neuromorphic-sensor pixel coordinates (pixel centres at integers)",
            "rgb"),
    Dataset(("motion/camera_rotation_euler_rad",), ("T", 3), "float64",
            "motion (`[motion]`): the camera's Blender XYZ Euler rotation at each frame; the rest pose (0) "
            "renders all_in_focus and depth_m; group attrs: the recipe's motion keys, `rest_time_us`, "
            "`object_velocity_json` (m/s per moving object, at its planned place at `rest_time_us`)", "motion",
            filter=STORED),
    Dataset(("motion/camera_location_m",), ("T", 3), "float64", "the camera's location at each frame", "motion",
            filter=STORED),
    Dataset(("motion/rest_to_frame",), ("T", 3, 3), "float64",
            "homography from the rest pose's pixels to frame i's (pixel centres at integers): the camera's "
            "rotation, exact where neither the camera's location nor an object moves", "motion", filter=STORED),
)


@dataclass(frozen=True)
class Attribute:
    name: str
    meaning: str = ""
    wall_clock: bool = False    # differs between otherwise identical runs: excluded from content hashes
    study: bool = False         # only in sensor-study variant files


ROOT_ATTRS = (
    Attribute("schema_version"), Attribute("nfs_synth_version"), Attribute("blender_version"),
    Attribute("scene_index"), Attribute("seed", "corpus seed"),
    Attribute("recipe_json", "the fully resolved recipe, less corpus.scenes"),
    Attribute("plan_json", "the scene plan: objects, textures and their provenance, lights, camera, focus schedule"),
    Attribute("render_json", "engine and its settings"), Attribute("intensity"),
    Attribute("created_utc", wall_clock=True), Attribute("host", wall_clock=True),
    Attribute("wall_seconds", wall_clock=True), Attribute("timings_json", wall_clock=True),
    Attribute("study_params_json", "the grid point", study=True),
    Attribute("source_file", "the link target", study=True),
    Attribute("source_sha256", "the source's content hash in its manifest", study=True),
)
ROOT_ATTR_NAMES = frozenset(a.name for a in ROOT_ATTRS)
WALL_CLOCK_ATTRS = frozenset(a.name for a in ROOT_ATTRS if a.wall_clock)


def datasets(*parts: str):
    """(path, Dataset) of every dataset in `parts` (all parts when none is given), in table order."""
    for spec in DATASETS:
        if not parts or spec.part in parts:
            for path in spec.paths:
                yield path, spec


def parts_written(recipe: dict) -> list[str]:
    """The dataset parts a scene file made from `recipe` holds: the sensors and the RGB camera are optional."""
    sensors = [s for s in ("events", "spikes") if recipe["sensors"][s]["enabled"]]
    rgb = ["rgb"] if recipe.get("rgb_camera", {}).get("enabled") else []
    moving = ["motion"] if "motion" in recipe and motion_enabled(recipe["motion"]) else []
    return ["sweep", "camera", *sensors, *rgb, *moving]


BY_PATH = dict(datasets())


def reference_markdown() -> str:
    """README.md's dataset table and root-attribute paragraph."""
    def shape(dims):
        return "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"

    rows = ["| path | shape | dtype | meaning |", "|---|---|---|---|"]
    for spec in DATASETS:
        meaning = f"{spec.meaning}; {spec.storage}" if spec.storage else spec.meaning
        rows.append(f"| {', '.join(f'`{p}`' for p in spec.paths)} | {shape(spec.shape)} | {spec.dtype} | {meaning} |")

    def names(attrs):
        return ", ".join(f"`{a.name}`" + (f" ({a.meaning})" if a.meaning else "") for a in attrs)

    kept = [a for a in ROOT_ATTRS if not (a.wall_clock or a.study)]
    text = (f"Root attributes: {names(kept)}; wall-clock only (excluded from content hashes): "
            f"{names(a for a in ROOT_ATTRS if a.wall_clock)}. Sensor-study variant files add "
            f"{names(a for a in ROOT_ATTRS if a.study)}.")
    return "\n".join(rows) + "\n\n" + textwrap.fill(text, 104, break_long_words=False, break_on_hyphens=False) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
