"""Texture sources: MS-COCO images through pycocotools, or a bundled set that needs no download.

A texture is referenced in the scene plan by a small JSON-able dict (its provenance) and loaded to
pixels only when a scene is rendered: (h, w, 3) float32, sRGB-encoded, in [0, 1], rows top-down.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from nfs_synth.errors import TextureError

# Photographs and scans that ship inside scikit-image (no pooch download needed).
BUNDLED_PHOTOS = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket",
    "stereo_motorcycle",
)
PROCEDURAL_KINDS = ("fractal_noise", "stripes", "checker")


# ---------------------------------------------------------------- catalogues

def catalog(textures_cfg: dict) -> list[dict]:
    """All texture references available for a recipe's `[textures]` table (deterministic order)."""
    if textures_cfg["source"] == "coco":
        return coco_catalog(textures_cfg["coco_root"], textures_cfg["coco_split"],
                            tuple(textures_cfg["coco_categories"]))
    return [{"source": "bundled", "name": n} for n in BUNDLED_PHOTOS]


def pick(textures_cfg: dict, refs: list[dict], rng: np.random.Generator) -> dict:
    """Draw one texture reference; bundled recipes mix in procedural textures."""
    if textures_cfg["source"] == "bundled" and rng.random() < textures_cfg["procedural_fraction"]:
        kind = PROCEDURAL_KINDS[rng.integers(len(PROCEDURAL_KINDS))]
        return {"source": "procedural", "kind": kind, "seed": int(rng.integers(2**31))}
    return dict(refs[rng.integers(len(refs))])


@lru_cache(maxsize=4)
def coco_catalog(root: str, split: str = "val2017", categories: tuple[str, ...] = ()) -> list[dict]:
    """Images of a COCO split, optionally only those showing any of `categories` (by name)."""
    from pycocotools.coco import COCO

    root_path = Path(root)
    if not root_path.is_dir():
        raise TextureError(f"COCO root not found: {root_path} (set textures.coco_root to the folder "
                           f"that holds annotations/ and {split}/)")
    ann = root_path / "annotations" / f"instances_{split}.json"
    if not ann.is_file():
        raise TextureError(f"COCO annotation file missing: {ann}")
    image_dir = root_path / split
    if not image_dir.is_dir():
        raise TextureError(f"COCO image folder missing: {image_dir}")
    coco = _quiet_coco(COCO, str(ann))
    if categories:
        cat_ids = coco.getCatIds(catNms=list(categories))
        known = {c["name"] for c in coco.loadCats(cat_ids)}
        unknown = sorted(set(categories) - known)
        if unknown:
            raise TextureError(f"COCO categories not in {ann.name}: {', '.join(unknown)}")
        ids = sorted({i for c in cat_ids for i in coco.getImgIds(catIds=[c])})
    else:
        ids = sorted(coco.getImgIds())
    if not ids:
        raise TextureError(f"no COCO images match categories {list(categories)} in {ann}")
    infos = coco.loadImgs(ids)
    missing = [info["file_name"] for info in infos if not (image_dir / info["file_name"]).is_file()]
    if missing:
        raise TextureError(f"{len(missing)} of {len(infos)} images named in {ann.name} are missing from "
                           f"{image_dir}, e.g. {', '.join(missing[:3])}")
    return [{"source": "coco", "image_id": int(i["id"]), "file": f"{split}/{i['file_name']}"}
            for i in infos]


def _quiet_coco(cls, path: str):
    """pycocotools prints progress to stdout; keep the generator's output clean."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return cls(path)
        except (ValueError, KeyError, TypeError) as err:
            raise TextureError(f"COCO annotation file {path} is malformed: {err}") from None


# ---------------------------------------------------------------- pixels

def load_texture(ref: dict, textures_cfg: dict) -> np.ndarray:
    """Pixels of a texture reference: (h, w, 3) float32 sRGB in [0, 1], longest side <= max_size."""
    source = ref["source"]
    if source == "bundled":
        img = _bundled_photo(ref["name"])
    elif source == "procedural":
        img = procedural(ref["kind"], ref["seed"], size=min(512, textures_cfg["max_size"]))
    elif source == "coco":
        path = Path(textures_cfg["coco_root"]) / ref["file"]
        raw = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if raw is None:
            raise TextureError(f"cannot read COCO image {path}")
        img = cv2.cvtColor(raw, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    else:
        raise TextureError(f"unknown texture source {source!r}")
    return _limit_size(img, textures_cfg["max_size"])


def _bundled_photo(name: str) -> np.ndarray:
    import skimage.data

    if name not in BUNDLED_PHOTOS:
        raise TextureError(f"unknown bundled texture {name!r}; known: {', '.join(BUNDLED_PHOTOS)}")
    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):           # stereo pairs: take the left view
        img = img[0]
    img = np.asarray(img, dtype=np.float32) / 255.0
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def _limit_size(img: np.ndarray, max_size: int) -> np.ndarray:
    h, w = img.shape[:2]
    scale = max_size / max(h, w)
    if scale >= 1.0:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def procedural(kind: str, seed: int, size: int = 512) -> np.ndarray:
    """Seeded synthetic textures with detail at many scales (edges give events at every depth)."""
    rng = np.random.default_rng(seed)
    if kind == "fractal_noise":
        img = np.zeros((size, size, 3), np.float32)
        for octave in range(1, 7):
            cells = 2 ** octave
            coarse = rng.random((cells, cells, 3)).astype(np.float32)
            img += cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC) / (1.6 ** octave)
        img -= img.min()
        img /= max(img.max(), 1e-6)
    elif kind == "stripes":
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        angle, freq = rng.uniform(0, np.pi), rng.uniform(4, 24)
        phase = np.cos(angle) * xx + np.sin(angle) * yy
        wave = (np.sin(2 * np.pi * freq * phase) > 0).astype(np.float32)
        a, b = rng.random(3), rng.random(3)
        img = wave[..., None] * a + (1 - wave[..., None]) * b
    elif kind == "checker":
        cells = int(rng.integers(4, 16))
        yy, xx = np.mgrid[0:size, 0:size] * cells // size
        mask = ((yy + xx) % 2).astype(np.float32)[..., None]
        img = mask * rng.random(3) + (1 - mask) * rng.random(3)
    else:
        raise TextureError(f"unknown procedural texture {kind!r}; known: {', '.join(PROCEDURAL_KINDS)}")
    return np.clip(img, 0.0, 1.0).astype(np.float32)
