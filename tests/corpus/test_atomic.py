"""Atomic writes: the umask's mode, one temporary name, and a failed write changes and leaves nothing."""
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from nfs_synth.corpus.atomic import TMP_MARK, atomic_path
from nfs_synth.corpus.manifest import MANIFEST, write_manifest
from nfs_synth.corpus.scene_file import SceneWriter
from nfs_synth.scene.recipe import load_recipe

UMASK = 0o027


@pytest.fixture
def umask():
    old = os.umask(UMASK)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_tiny_scene(path: Path, value: float = 0.0) -> None:
    with SceneWriter(path, 1, 2, 2) as out:
        out.write_frame(0, np.full((2, 2, 3), value))


def test_manifest_and_scene_file_get_the_umask_mode(tmp_path, umask):
    write_manifest(tmp_path, load_recipe(None, ["corpus.scenes=1"]), {})
    write_tiny_scene(tmp_path / "scene_00000.h5")
    assert mode(tmp_path / MANIFEST) == mode(tmp_path / "scene_00000.h5") == 0o666 & ~UMASK


def test_failed_writes_change_nothing_and_leave_no_temporary(tmp_path, monkeypatch):
    recipe = load_recipe(None, ["corpus.scenes=1"])
    write_manifest(tmp_path, recipe, {})
    scene = tmp_path / "scene_00000.h5"
    write_tiny_scene(scene)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def disk_full(self, text, encoding=None):           # half a file, then the error
        Path.write_bytes(self, text[: len(text) // 2].encode())
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(Path, "write_text", disk_full)
        with pytest.raises(OSError, match="No space"):
            write_manifest(tmp_path, recipe, {0: {"index": 0, "status": "failed"}})
    with pytest.raises(RuntimeError):
        with SceneWriter(scene, 1, 2, 2) as out:
            out.write_frame(0, np.ones((2, 2, 3)))
            raise RuntimeError("render crashed")
    with pytest.raises(KeyError):
        with atomic_path(tmp_path / "other.bin") as tmp:
            tmp.write_bytes(b"partial")
            raise KeyError("a bug")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert not list(tmp_path.glob(f"*{TMP_MARK}*"))


def test_temporary_name_is_beside_the_target(tmp_path):
    with atomic_path(tmp_path / "a.json") as tmp:
        assert tmp.parent == tmp_path
        name, _, owner = tmp.name.partition(TMP_MARK)
        pid, _, token = owner.partition("-")
        assert name == "a.json" and pid == str(os.getpid()) and len(token) == 8
        tmp.write_text("{}")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_every_temporary_then_rename_goes_through_atomic_py():
    """One writer of temporaries (names, cleanup, modes): no other module renames or makes temp files."""
    root = Path(__file__).resolve().parents[2]
    for path in [*(root / "nfs_synth").rglob("*.py"), *(root / "blender_scenes").rglob("*.py")]:
        if path.name == "atomic.py":
            continue
        text = path.read_text()
        assert not any(call in text for call in ("os.replace(", "os.rename(", ".rename(", "mkstemp(",
                                                 "NamedTemporaryFile(")), path
