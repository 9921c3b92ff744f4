"""User errors and foreign files: one `error: ...` line on stderr, status 2 (usage) or 1 (failure), no
traceback, nothing written; exports stay out of the corpus's scenes/."""

from nfs_synth.cli import generate_main, main
from tiny_corpus import ARGS


def one_error_line(capsys, *words) -> None:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err


def test_export_defaults_to_the_current_folder_and_foreign_files_do_not_break_preview(
        reference_copy, tmp_path, monkeypatch, capsys):
    scenes = reference_copy / "scenes"
    monkeypatch.chdir(tmp_path)
    assert main(["export", "events", str(scenes / "scene_00000.h5"), "--format", "txt"]) == 0
    assert (tmp_path / "scene_00000_events.txt").stat().st_size > 0
    assert sorted(p.name for p in scenes.iterdir()) == [f"scene_{i:05d}.h5" for i in range(4)]
    # Put there on purpose, an export (or an `aif` PNG) is still no scene: preview skips it, validate
    # leaves it alone; a scene file the manifest does not know is what validate calls stray.
    assert main(["export", "events", str(scenes / "scene_00000.h5"), "--format", "dsec-h5", "--out", str(scenes)]) == 0
    (scenes / "scene_00000_f0_learned-ev.png").write_bytes(b"png")
    capsys.readouterr()
    assert main(["preview", str(reference_copy), "--frames", "2"]) == 0
    assert sorted(p.name for p in (reference_copy / "preview").iterdir()) == \
        sorted(f"scene_{i:05d}{kind}.png" for i in range(4) for kind in ("", "_event_rate"))
    assert main(["validate", str(reference_copy), "--no-progress"]) == 0
    (scenes / "scene_00009.h5").hardlink_to(scenes / "scene_00000.h5")
    assert main(["validate", str(reference_copy), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "STRAY scenes/scene_00009.h5" in out and "scene_00000_events" not in out


def test_export_usage_errors_exit_2_and_write_nothing(reference, tmp_path, monkeypatch, capsys):
    scene = str(reference[0] / "scenes" / "scene_00000.h5")
    monkeypatch.chdir(tmp_path)
    assert main(["export", "events", scene, "--format", "dat"]) == 2
    one_error_line(capsys, "events export format must be one of txt, npz, dsec-h5")
    assert main(["export", "events", scene, "--format", "npz", "--out", "x.txt"]) == 2
    one_error_line(capsys, "--out x.txt", "*.npz")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    assert main(["export", "spikes", "junk.h5", "--format", "dat"]) == 1
    one_error_line(capsys, "junk.h5: not a readable HDF5 file (", "file signature not found")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.h5"]


def test_bad_corpus_and_output_paths_fail_cleanly(reference_copy, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert main(["preview", str(reference_copy), "--frames", "0"]) == 2
    one_error_line(capsys, "--frames must be at least 1")
    assert main(["preview", str(reference_copy), "--out", str(afile / "png")]) == 1
    one_error_line(capsys, f"{afile}", "Not a directory")
    assert generate_main([*ARGS, "--out", str(afile)]) == 1
    one_error_line(capsys, f"{afile}", "Not a directory")
    assert afile.read_text() == "mine" and not (reference_copy / "preview").exists()
    (reference_copy / "manifest.json").write_text("{broken")
    for command in ("info", "validate", "preview"):
        assert main([command, str(reference_copy)]) == 1
        one_error_line(capsys, "manifest.json is not valid JSON", "delete it and re-run")
    assert main(["info", str(tmp_path)]) == 1
    one_error_line(capsys, f"{tmp_path} is not a corpus (no manifest.json)")
