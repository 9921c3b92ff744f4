"""User errors and foreign files: one `error: ...` line on stderr, status 2 (usage) or 1 (failure), no
traceback, nothing written; exports stay out of the corpus's scenes/."""

from pathlib import Path

from nfs_synth.cli import generate_main, main
from tiny_corpus import ARGS

ROOT = Path(__file__).resolve().parents[1]


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


def test_exit_status_comes_from_the_error_family_alone(reference_copy, tmp_path, capsys):
    """A damaged corpus is a data error (1) in every command; a bad argument a usage error (2)."""
    good = (reference_copy / "manifest.json").read_text()
    (reference_copy / "manifest.json").write_text("{broken")
    study = ["simulate", str(reference_copy), "--into", str(tmp_path / "study"), "--no-progress"]
    assert main([*study, "--set", "sensors.events.k1=4.0"]) == 1
    one_error_line(capsys, "manifest.json is not valid JSON")
    assert generate_main([*ARGS, "--out", str(reference_copy)]) == 1
    one_error_line(capsys, "manifest.json is not valid JSON")
    (reference_copy / "manifest.json").write_text(good)
    assert main([*study, "--set", "sensors.spikes.readout_hz=1,20000"]) == 2
    one_error_line(capsys, "'sensors.spikes.readout_hz'", "allowed [93, 1e+07]")
    assert not (tmp_path / "study").exists()


def test_commands_leave_the_exit_status_to_the_cli():
    for path in sorted((ROOT / "nfs_synth" / "commands").glob("*.py")):
        text = path.read_text()
        assert not any(word in text for word in ("return 2", "usage_error", 'print(f"error')), path.name


def test_a_wheel_install_runs_the_default_recipe_through_nfs_synth_generate(reference, tmp_path):
    """Built as a wheel and unpacked away from the checkout: the shipped recipes come along as package
    data, so `nfs-synth generate` with the default recipe makes the same scene as the checkout did."""
    import json
    import os
    import shutil
    import subprocess
    import sys
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    for name in ("nfs_synth", "blender_scenes", "recipes"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src),
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, cwd=src)
    site = tmp_path / "site"
    zipfile.ZipFile(next((tmp_path / "dist").glob("nfs_synth-*.whl"))).extractall(site)
    shipped = sorted(p.name for p in (ROOT / "recipes").glob("*.toml"))
    assert "paper.toml" in shipped and "quick.toml" in shipped
    assert sorted(p.name for p in (site / "nfs_synth" / "recipes").iterdir()) == shipped
    out = tmp_path / "corpus"
    code = ("import sys; from nfs_synth.cli import main; main(['--version']) if sys.argv[1] == 'v' else "
            "sys.exit(main(['generate', *sys.argv[2:]]))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = lambda *args: subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=tmp_path,
                                       capture_output=True, text=True)
    assert run("v").stdout == "nfs-synth 0.1.0\n"
    proc = run("g", *ARGS, "--out", str(out), "--scenes", "0:1")
    assert proc.returncode == 0, proc.stderr
    made = json.loads((out / "manifest.json").read_text())["scenes"][0]
    reference_entry = json.loads((reference[0] / "manifest.json").read_text())["scenes"][0]
    assert made["sha256"] == reference_entry["sha256"]


def test_preview_names_a_bad_scene_file_and_keeps_going(reference_copy, tmp_path, capsys):
    (reference_copy / "scenes" / "scene_00001.h5").write_bytes(b"not hdf5")
    for policy, made in (("skip", [0, 2, 3]), ("stop", [0])):
        out = tmp_path / policy
        assert main(["preview", str(reference_copy), "--frames", "2", "--out", str(out), "--on-error", policy]) == 1
        err = capsys.readouterr().err
        assert "scene_00001.h5: not a readable HDF5 file" in err
        assert err.splitlines()[-1] == "error: 1 scene file(s) could not be read: scene_00001.h5"
        assert sorted(p.name for p in out.iterdir()) == sorted(f"scene_{i:05d}{kind}.png" for i in made
                                                               for kind in ("", "_event_rate"))
