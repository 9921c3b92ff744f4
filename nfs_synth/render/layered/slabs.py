"""Where the depth slabs go: how many uniform-in-diopter slabs a blur tolerance needs, their edges, which
slabs an object can reach, and a traced slab cut into one piece per object."""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.ndimage import distance_transform_edt

from blender_scenes.plan_format import PRIMITIVE_HALF_EXTENTS
from nfs_synth.errors import LayeredSettingsError
from nfs_synth.scene.optics import euler_matrix

FILTER_MARGIN_PX = 2  # the pixel filter reaches a little past the blur radius


def slab_count(diopter_span: float, px_per_diopter: float, tolerance_px: float) -> int:
    """Fewest uniform-in-diopter slabs whose blur-diameter error stays within `tolerance_px`.

    A slab of width w diopters blurred with its centre's diameter misplaces the blur of its nearest or
    farthest surface by px_per_diopter * w / 2 pixels, whatever the focus distance.
    """
    if not tolerance_px > 0:
        raise LayeredSettingsError(f"layered_tolerance_px must be > 0, got {tolerance_px!r}")
    if diopter_span < 0 or px_per_diopter <= 0:
        raise LayeredSettingsError("diopter span must be >= 0 and px_per_diopter > 0")
    return max(1, math.ceil(diopter_span * px_per_diopter / (2.0 * tolerance_px) - 1e-9))


def slab_edges(near_m: float, far_m: float, count: int) -> np.ndarray:
    """count + 1 slab boundaries in diopters, uniform from 1/near_m down to 1/far_m."""
    if not (0 < near_m <= far_m) or count < 1:
        raise LayeredSettingsError(f"need 0 < near ({near_m}) <= far ({far_m}) and count ({count}) >= 1")
    return np.linspace(1.0 / near_m, 1.0 / far_m, count + 1)


def object_corners(spec: Mapping) -> np.ndarray:
    """The 8 corners (x, y, z) in metres of an object's oriented bounding box, camera at the origin
    looking down -z (planar depth = -z)."""
    half = np.array(PRIMITIVE_HALF_EXTENTS[spec["primitive"]]) * np.abs(spec["scale"])
    corners = half * np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)])
    return corners @ euler_matrix(spec["rotation_euler_rad"]).T + spec["location_m"]


def _pixel_box(points: np.ndarray, cam: Mapping, size: tuple[int, int]) -> tuple:
    """The pixel box (x0, y0, x1, y1, rows down) on the canvas of points in front of the camera, widened
    by the pixel filter's reach; None when it lies off the canvas (Blender refuses an empty border)."""
    depth = -points[:, 2]
    fpx = cam["focal_length_mm"] / cam["sensor_width_mm"] * cam["width"]
    u = size[0] / 2 + fpx * points[:, 0] / depth
    v = size[1] / 2 - fpx * points[:, 1] / depth
    box = (math.floor(u.min()) - FILTER_MARGIN_PX, math.floor(v.min()) - FILTER_MARGIN_PX,
           math.ceil(u.max()) + FILTER_MARGIN_PX, math.ceil(v.max()) + FILTER_MARGIN_PX)
    x0, y0, x1, y1 = (int(np.clip(c, 0, size[i % 2])) for i, c in enumerate(box))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


# the 12 edges of a box whose corners are numbered as in `object_corners` (one index bit per axis)
_BOX_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]


def box_within_depths(corners: np.ndarray, near_m: float, far_m: float, cam: Mapping,
                      size: tuple[int, int]) -> tuple | None:
    """The pixel box of the part of a bounding box (`object_corners`) between planar depths near_m and
    far_m (> 0), or None when none of it is. That part is convex, so its image lies within the box of
    its projected vertices: the corners between the planes and the edges' crossings of them. A slab
    holds only the object's surface within its depths, so this is all it needs to trace; None too when
    that part projects off the canvas."""
    depth = -corners[:, 2]
    points = [corners[(depth >= near_m) & (depth <= far_m)]]
    for a, b in _BOX_EDGES:
        for plane in (near_m, far_m):
            if (depth[a] - plane) * (depth[b] - plane) < 0:
                t = (plane - depth[a]) / (depth[b] - depth[a])
                points.append((corners[a] + t * (corners[b] - corners[a]))[None])
    points = np.concatenate(points)
    return _pixel_box(points, cam, size) if len(points) else None


def split_by_object(rgba: np.ndarray, depth: np.ndarray, ids: np.ndarray,
                     clip: tuple[float, float]) -> list[tuple[np.ndarray, float, int]]:
    """A slab cut into one piece per object: (RGBA, diopter to blur it for, object index).

    Pieces of one object composite additively (they tile its surface), different objects with
    "over" (see `stack.SlabStack`). Covered pixels without an index (the first sample, which writes
    it, missed an antialiased edge or seam) join the nearest indexed pixel.
    """
    covered = rgba[..., 3] > 0
    surface = covered & (depth >= clip[0]) & (depth <= clip[1])
    labelled = covered & (ids > 0)
    if labelled.any() and (covered & ~labelled).any():
        nearest = distance_transform_edt(~labelled, return_distances=False, return_indices=True)
        ids = ids[nearest[0], nearest[1]]
    ids = np.where(covered, ids, 0)  # a slab with no index at all stays one piece (index 0)
    pieces = []
    for obj in np.unique(ids[covered]):
        mask = ids == obj
        inside = mask & surface & (rgba[..., 3] > 0.5)
        # blurred for the mean depth of what it holds: a plane is then blurred exactly, and the
        # slab's width only bounds the error
        diopter = float(np.mean(1.0 / depth[inside])) if inside.any() else 2.0 / sum(clip)
        pieces.append((rgba * mask[..., None], diopter, int(obj)))
    return pieces
