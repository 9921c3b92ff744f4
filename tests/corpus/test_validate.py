"""`nfs-synth validate` names truncated and altered files; `nfs-synth info` sums the manifest."""
import h5py
import hdf5plugin  # noqa: F401 (filters for writing into a scene file)

from nfs_synth.cli import main


def test_valid_corpus_passes(reference, capsys):
    assert main(["validate", str(reference[0]), "--no-progress"]) == 0
    assert "4 good files, 0 bad" in capsys.readouterr().out


def test_truncated_and_altered_files_are_named(reference_copy, capsys):
    scenes = reference_copy / "scenes"
    truncated = scenes / "scene_00001.h5"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    with h5py.File(scenes / "scene_00002.h5", "r+") as h5:       # same shapes, one value changed
        h5["frames"][0, 0, 0, 0] += 0.25
    (scenes / "scene_00003.h5.tmp-99-deadbeef").write_bytes(b"")
    assert main(["validate", str(reference_copy), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "BAD scenes/scene_00001.h5: unreadable or truncated" in out
    assert "BAD scenes/scene_00002.h5: content hash differs" in out
    assert "STRAY scenes/scene_00003.h5.tmp-99-deadbeef" in out
    assert "scene_00000.h5" not in out and "2 good files, 2 bad" in out


def test_info_table(reference, capsys):
    assert main(["info", str(reference[0])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["split", "scenes", "frames", "resolution", "events", "spikes", "bytes", "failed"]
    total = lines[4].split()
    assert total[:4] == ["total", "4", "20", "32x32"] and total[-1] == "0"
