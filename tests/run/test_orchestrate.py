"""Scale-out: the same data from any pool or shard split, resume after SIGKILL, retries and failures."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nfs_synth.commands import validate
from nfs_synth.corpus.atomic import TMP_MARK
from nfs_synth.run.orchestrate import (STALE_LEDGER_TMP_S, SelectionError, clean_stale_temporaries,
                                      slurm_array_shard,
                                      select_scenes)
from tiny_corpus import ARGS, generate, hashes

REPO = Path(__file__).resolve().parents[2]


def is_valid(out) -> bool:
    return validate.run(type("Args", (), {"corpus": out, "no_progress": True})) == 0


def test_reference_corpus_is_complete_and_workers_recycle(reference):
    out, telemetry = reference
    assert len(hashes(out)) == 4 and all(hashes(out).values()) and is_valid(out)
    pids = [o.stats["pid"] for o in sorted(telemetry, key=lambda o: o.entry["index"])]
    assert pids[0] == pids[1] != pids[2] == pids[3]          # --max-scenes-per-worker 2


def test_same_hashes_from_joblib_dask_and_shards(reference, tmp_path):
    joblib, dask = tmp_path / "joblib", tmp_path / "dask"
    assert generate(joblib, "--shard", "1/2", "--workers", 2) == 0     # two shards into one folder
    assert generate(joblib, "--shard", "0/2", "--workers", 2) == 0
    assert generate(dask, "--cluster", "local:2") == 0
    assert hashes(joblib) == hashes(dask) == hashes(reference[0])
    assert sorted(p.name for p in (joblib / "manifest.d").glob("*.json")) == \
        ["scenes-0000000-0000002.json", "scenes-0000002-0000004.json"]


def test_driver_killed_then_rerun_completes_identically(reference, tmp_path):
    out = tmp_path / "corpus"
    driver = subprocess.Popen([sys.executable, str(REPO / "generate.py"), *ARGS, "--out", str(out),
                               "--workers", "2"], cwd=REPO, stderr=subprocess.DEVNULL)
    while driver.poll() is None and not list((out / "scenes").glob("scene_*.h5")):
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert len(list((out / "scenes").glob("scene_*.h5"))) < 4    # killed mid-run
    assert generate(out, "--workers", 2) == 0
    assert hashes(out) == hashes(reference[0]) and is_valid(out)
    assert not list(out.rglob(f"*{TMP_MARK}*"))


def test_damaged_scene_file_is_made_again(reference, tmp_path, capsys):
    out = tmp_path / "corpus"
    shutil.copytree(reference[0], out)
    damaged = out / "scenes" / "scene_00001.h5"
    with open(damaged, "r+b") as f:             # what `truncate -s` leaves
        f.truncate(damaged.stat().st_size // 2)
    assert generate(out) == 0
    err = capsys.readouterr().err
    assert "scene 1: scene_00001.h5: " in err and "(truncated or replaced); making it again" in err
    assert hashes(out) == hashes(reference[0]) and is_valid(out)


def test_transient_failures_are_retried_deterministic_ones_not(reference, tmp_path, monkeypatch, capsys):
    # 1 always raises (deterministic: one attempt); 2's worker dies once and 3 hits an OSError once
    monkeypatch.setenv("NFS_SYNTH_FAULT", "raise:1,crash:2:1,oserror:3:1")
    out = tmp_path / "corpus"
    assert generate(out, "--workers", 2, "--retries", 1) == 1
    assert "failed scenes: 1 " in capsys.readouterr().out
    entries = {e["index"]: e for e in json.loads((out / "manifest.json").read_text())["scenes"]}
    assert entries[1]["status"] == "failed" and entries[1]["attempts"] == 1
    assert "injected fault in scene 1" in entries[1]["error"]
    assert [entries[i]["attempts"] for i in (0, 2, 3)] == [1, 2, 2]
    expected = hashes(reference[0])
    assert all(entries[i]["sha256"] == expected[i] for i in (0, 2, 3))
    assert not list(out.rglob(f"*{TMP_MARK}*"))
    monkeypatch.delenv("NFS_SYNTH_FAULT")
    assert generate(out) == 0 and hashes(out) == expected         # the re-run makes the failed one


def test_a_folder_of_only_failed_scenes_takes_a_changed_recipe(tmp_path, monkeypatch, capsys):
    out = tmp_path / "corpus"
    monkeypatch.setenv("NFS_SYNTH_FAULT", "raise:3")
    assert generate(out, "--scenes", "3:4") == 1
    monkeypatch.delenv("NFS_SYNTH_FAULT")
    capsys.readouterr()
    assert generate(out, "--scenes", "3:4", "--set", "sensors.events.k1=4.5") == 0     # the fixed recipe
    assert "held only failed scenes of another recipe: starting it afresh" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"]["sensors"]["events"]["k1"] == 4.5 and manifest["scenes"][0]["status"] == "complete"
    assert len(list((out / "manifest.d").glob("*.json"))) == 1
    # now it holds a complete scene: another recipe is refused before anything changes
    assert generate(out, "--scenes", "3:4", "--set", "sensors.events.k1=5.0") == 2
    assert "holds a corpus made from another recipe (differs in sensors.events.k1)" in capsys.readouterr().err
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_hanging_scene_times_out(tmp_path, monkeypatch):
    monkeypatch.setenv("NFS_SYNTH_FAULT", "hang:3")
    out = tmp_path / "corpus"
    assert generate(out, "--scenes", "3:4", "--retries", 0, "--timeout", 2) == 1
    entry = json.loads((out / "manifest.json").read_text())["scenes"][0]
    assert entry["status"] == "failed" and entry["error"].startswith("timed out after 2 s (worker process")
    assert not list(out.rglob(f"*{TMP_MARK}*"))


@pytest.mark.parametrize("args", [["--scenes", "3:9"], ["--scenes", "two"], ["--shard", "2/2"],
                                  ["--shard", "1-of-2"], ["--cluster", "remote:2"], ["--cluster", "slurm:0"], ["--workers", "0"],
                                  ["--scheduler", "tcp://127.0.0.1:9"]])
def test_bad_arguments_exit_2_and_create_nothing(tmp_path, args):
    assert generate(tmp_path / "out", *args) == 2
    assert not (tmp_path / "out").exists()


def test_select_scenes():
    assert select_scenes(10) == range(10)
    assert select_scenes(10, "2:") == range(2, 10)
    assert [select_scenes(10, shard=f"{i}/3") for i in range(3)] == [range(0, 3), range(3, 6), range(6, 10)]
    assert select_scenes(10, "4:8", "1/2") == range(6, 8)
    with pytest.raises(SelectionError):
        select_scenes(10, "8:4")


def test_stale_temporaries_of_selected_scenes_and_old_ledger_writes_are_removed(tmp_path):
    (tmp_path / "scenes").mkdir()
    (tmp_path / "manifest.d").mkdir()
    for name in ["scenes/scene_00001.h5", "scenes/scene_00007.h5", "manifest.json",
                 "manifest.d/scenes-0000000-0000004.json"]:
        for pid, age in ((11, 0), (12, 2 * STALE_LEDGER_TMP_S)):         # a fresh and an old one each
            tmp = tmp_path / f"{name}{TMP_MARK}{pid}-deadbeef"
            tmp.write_bytes(b"")
            os.utime(tmp, (time.time() - age,) * 2)
    assert clean_stale_temporaries(tmp_path, range(0, 4)) == 4
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob(f"*{TMP_MARK}*")) == [
        "manifest.d/scenes-0000000-0000004.json.tmp-11-deadbeef", "manifest.json.tmp-11-deadbeef",
        "scenes/scene_00007.h5.tmp-11-deadbeef", "scenes/scene_00007.h5.tmp-12-deadbeef"]


def test_shard_auto_from_slurm_array_environment():
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "3"}
    assert slurm_array_shard(env) == "2/4"
    assert slurm_array_shard({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}) == "3/4"
    with pytest.raises(SelectionError, match="SLURM_ARRAY_TASK_COUNT not set"):
        slurm_array_shard({"SLURM_ARRAY_TASK_ID": "0"})
    with pytest.raises(SelectionError, match="contiguous"):        # --array=0-6:2: ids 0,2,4,6, count 4
        slurm_array_shard({"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0"})
    with pytest.raises(SelectionError, match="non-integer"):
        slurm_array_shard({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "4"})


def test_shard_auto_outside_slurm_exits_2(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    assert generate(tmp_path / "out", "--shard", "auto") == 2
    assert not (tmp_path / "out").exists()
