"""Texture sources: COCO through pycocotools on a tiny fixture, and the bundled set."""
import json

import cv2
import numpy as np
import pytest

from nfs_synth.scene import textures
from nfs_synth.scene.plan import sample_plan
from nfs_synth.scene.recipe import load_recipe


def make_coco(root, images=3, missing=0):
    """A tiny COCO-format folder: annotations/instances_val2017.json and val2017/*.jpg."""
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    cats = [{"id": 1, "name": "cat", "supercategory": "animal"},
            {"id": 2, "name": "bus", "supercategory": "vehicle"}]
    imgs, anns = [], []
    rng = np.random.default_rng(0)
    for i in range(images):
        name = f"{i + 1:012d}.jpg"
        imgs.append({"id": i + 1, "file_name": name, "height": 40, "width": 60})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1 + i % 2, "bbox": [1, 1, 10, 10],
                     "area": 100, "iscrowd": 0, "segmentation": [[1, 1, 11, 1, 11, 11]]})
        if i >= images - missing:
            continue
        cv2.imwrite(str(root / "val2017" / name), (rng.random((40, 60, 3)) * 255).astype(np.uint8))
    (root / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"images": imgs, "annotations": anns, "categories": cats}))
    return root


def cfg(root, **kw):
    return {"source": "coco", "coco_root": str(root), "coco_split": "val2017", "coco_categories": [],
            "procedural_fraction": 0.0, "max_size": 32} | kw


def test_coco_catalog_filter_and_pixels(tmp_path):
    root = make_coco(tmp_path / "coco")
    refs = textures.catalog(cfg(root))
    assert [r["image_id"] for r in refs] == [1, 2, 3]
    cats = textures.catalog(cfg(root, coco_categories=["bus"]))
    assert [r["image_id"] for r in cats] == [2]
    img = textures.load_texture(refs[0], cfg(root))
    assert img.dtype == np.float32 and img.shape == (21, 32, 3) and 0 <= img.min() and img.max() <= 1


@pytest.mark.parametrize("breakage,fragment", [
    ("no_root", "COCO root not found"),
    ("no_annotations", "COCO annotation file missing"),
    ("missing_image", "1 of 3 images named in instances_val2017.json are missing"),
    ("bad_category", "COCO categories not in instances_val2017.json: zebra"),
    ("malformed", "malformed"),
])
def test_coco_errors(tmp_path, breakage, fragment):
    root = tmp_path / "coco"
    extra = {}
    if breakage != "no_root":
        make_coco(root, missing=1 if breakage == "missing_image" else 0)
    if breakage == "no_annotations":
        (root / "annotations" / "instances_val2017.json").unlink()
    if breakage == "bad_category":
        extra = {"coco_categories": ["zebra"]}
    if breakage == "malformed":
        (root / "annotations" / "instances_val2017.json").write_text('{"images": 3}')
    textures.coco_catalog.cache_clear()
    with pytest.raises(textures.TextureError, match=fragment):
        textures.catalog(cfg(root, **extra))


def test_plan_with_coco_textures(tmp_path):
    root = make_coco(tmp_path / "coco", images=4)
    recipe = load_recipe(None, ["textures.source=coco", f"textures.coco_root={json.dumps(str(root))}"])
    plan = sample_plan(recipe, 0)
    assert all(ref["source"] == "coco" for ref in plan["textures"].values())


def test_bundled_and_procedural_textures():
    conf = {"source": "bundled", "procedural_fraction": 0.5, "max_size": 64}
    for ref in textures.catalog(conf):
        img = textures.load_texture(ref, conf)
        assert img.shape[2] == 3 and max(img.shape[:2]) <= 64 and img.dtype == np.float32
    for kind in textures.PROCEDURAL_KINDS:
        a = textures.procedural(kind, 5, 64)
        assert np.array_equal(a, textures.procedural(kind, 5, 64))      # seeded
        assert a.std() > 0.05                                            # has texture
    with pytest.raises(textures.TextureError, match="unknown bundled texture"):
        textures.load_texture({"source": "bundled", "name": "lena"}, conf)
