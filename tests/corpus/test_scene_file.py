"""Scene files appear only when complete; content hashes identify data, not files; the manifest splits."""
import h5py
import numpy as np
import pytest

from nfs_synth.corpus.manifest import read_manifest, scenes_in_split, split_of, write_manifest
from nfs_synth.corpus.atomic import TMP_MARK
from nfs_synth.corpus.scene_file import SceneFileError, SceneReader, SceneWriter, content_hash
from nfs_synth.scene.recipe import load_recipe


def write_scene(path, t=3, h=8, w=10, seed=0):
    rng = np.random.default_rng(seed)
    with SceneWriter(path, t, h, w) as out:
        for i in range(t):
            out.write_frame(i, rng.random((h, w, 3)))
        out.write_array("timestamps_us", np.arange(t, dtype=np.int64) * 1000, "us")
        out.write_array("focus_distance_m", np.linspace(0.5, 2, t), "m")
        out.write_array("all_in_focus", rng.random((h, w, 3)).astype(np.float32))
        out.write_array("depth_m", rng.random((h, w)).astype(np.float32))
        out.set_attrs(plan_json="{}", recipe_json="{}")


def test_file_appears_only_on_success(tmp_path):
    path = tmp_path / "scene_00000.h5"
    with pytest.raises(RuntimeError):
        with SceneWriter(path, 2, 4, 4) as out:
            out.write_frame(0, np.zeros((4, 4, 3)))
            assert list(tmp_path.glob(f"*{TMP_MARK}*"))          # only the temporary exists
            raise RuntimeError("render crashed")
    assert list(tmp_path.iterdir()) == []
    write_scene(path)
    assert [p.name for p in tmp_path.iterdir()] == ["scene_00000.h5"]


def test_frames_keep_float16_precision(tmp_path):
    path = tmp_path / "scene_00000.h5"
    write_scene(path)
    with SceneReader(path) as scene:
        assert scene.num_frames == 3 and scene.size == (8, 10)
        assert scene.h5["frames"].chunks == (1, 8, 10, 3)
        ramp = np.linspace(0.0, 1.0, 4096, dtype=np.float32)
    # float16 keeps ~11 significant bits: no 8-bit staircase in a smooth gradient
    assert len(np.unique(ramp.astype(np.float16))) > 2000


def test_content_hash_ignores_wall_clock_and_sees_data(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    write_scene(a)
    write_scene(b)                         # same data, different created_utc
    assert content_hash(a) == content_hash(b)
    with h5py.File(b, "r+") as h5:
        h5["depth_m"][0, 0] += 1.0
    assert content_hash(a) != content_hash(b)


def test_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(SceneFileError, match="not found"):
        SceneReader(tmp_path / "none.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(SceneFileError, match="not a readable HDF5"):
        SceneReader(junk)
    partial = tmp_path / "partial.h5"
    with h5py.File(partial, "w") as h5:
        h5["frames"] = np.zeros((1, 2, 2, 3))
    with pytest.raises(SceneFileError, match="missing dataset 'timestamps_us'"):
        SceneReader(partial)


def test_splits_are_fixed_by_the_recipe(tmp_path):
    recipe = load_recipe(None, ["corpus.scenes=20"])
    labels = split_of(recipe)
    assert labels == split_of(recipe) and len(labels) == 20
    assert (labels.count("train"), labels.count("val"), labels.count("test")) == (10, 5, 5)  # quick.toml
    entries = {i: {"index": i, "status": "complete", "split": s} for i, s in enumerate(labels)}
    write_manifest(tmp_path, recipe, entries)
    manifest = read_manifest(tmp_path)
    assert [s["index"] for s in scenes_in_split(manifest, "test")] == \
        [i for i, s in enumerate(labels) if s == "test"]
    with pytest.raises(ValueError, match="unknown split"):
        scenes_in_split(manifest, "holdout")


def test_isal_frame_chunks_are_what_the_stock_filters_store(tmp_path):
    """A frame chunk deflated by ISA-L reads back through HDF5's own shuffle + gzip filters, and is the
    shuffled bytes in a zlib stream; a chunk of the wrong shape or a frame out of range is refused."""
    import zlib

    from nfs_synth.corpus.deflate import shuffled

    path = tmp_path / "scene_00000.h5"
    write_scene(path, t=4, h=6, w=7, seed=3)
    rng = np.random.default_rng(3)
    expected = [rng.random((6, 7, 3)).astype(np.float16) for _ in range(4)]
    with h5py.File(path) as h5:
        frames = h5["frames"]
        assert frames.compression == "gzip" and frames.shuffle
        np.testing.assert_array_equal(frames[:], np.stack(expected))
        raw = zlib.decompress(frames.id.read_direct_chunk((2, 0, 0, 0))[1])
        assert raw == shuffled(expected[2][None])
        assert raw[:6 * 7 * 3] == expected[2].view(np.uint8).reshape(-1, 2)[:, 0].tobytes()  # low bytes first
    with pytest.raises(SceneFileError, match="frame 5 of a 2-frame"), SceneWriter(tmp_path / "b.h5", 2, 4, 4) as out:
        out.write_frame(5, np.zeros((4, 4, 3)))
    with pytest.raises(SceneFileError, match="chunk is"), SceneWriter(tmp_path / "c.h5", 2, 4, 4) as out:
        out.write_frame(0, np.zeros((4, 5, 3)))
    assert not (tmp_path / "b.h5").exists() and not (tmp_path / "c.h5").exists()
