"""Drivers on one folder: one driver per scene (a lock a killed driver does not leave stuck), and Ctrl-C
stops the workers at once, leaves nothing partial and resumes to the same data."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nfs_synth.corpus.atomic import TMP_MARK
from nfs_synth.run.workers import FAULT_ENV
from tiny_corpus import ARGS, generate, hashes

REPO = Path(__file__).resolve().parents[2]


def start_driver(out, *extra, fault=None):
    env = dict(os.environ) | ({FAULT_ENV: fault} if fault else {})
    return subprocess.Popen([sys.executable, str(REPO / "generate.py"), *ARGS, "--out", str(out), *extra],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, driver, what, limit_s=120):
    deadline = time.monotonic() + limit_s
    while not condition():
        assert driver.poll() is None, f"driver ended before {what}: {driver.communicate()}"
        assert time.monotonic() < deadline, f"no {what} within {limit_s} s"
        time.sleep(0.05)


def scene_files(out):
    return sorted(p.name for p in (out / "scenes").glob("scene_*.h5"))


def temporaries(out):
    return list(out.rglob(f"*{TMP_MARK}*"))


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_stops_within_5_s_leaves_nothing_partial_and_resumes_identically(reference, tmp_path, workers):
    out = tmp_path / "corpus"
    # Scene 3 hangs after its first frame, with its temporary file open: Ctrl-C must not wait for it.
    driver = start_driver(out, "--workers", str(workers), fault="hang:3")
    wait_for(lambda: len(scene_files(out)) == 3 and temporaries(out / "scenes"), driver, "3 scenes and a hang")
    sent = time.monotonic()
    driver.send_signal(signal.SIGINT)
    stdout, stderr = driver.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert driver.returncode == 130
    assert stderr.strip().splitlines() == [
        f"interrupted: 3 of 4 scene files complete in {out}; the others were not written. "
        "Run the same command again to resume"]
    assert not temporaries(out) and scene_files(out) == [f"scene_0000{i}.h5" for i in range(3)]
    assert subprocess.run(["pgrep", "-f", f"nfs_synth.run.workers {driver.pid}"]).returncode == 1   # none left
    assert generate(out, "--workers", workers) == 0
    assert hashes(out) == hashes(reference[0])


def test_second_ctrl_c_ends_the_driver_at_once(tmp_path):
    out = tmp_path / "corpus"
    driver = start_driver(out, fault="hang:0")
    wait_for(lambda: temporaries(out / "scenes"), driver, "a hanging scene")
    driver.send_signal(signal.SIGINT)
    driver.send_signal(signal.SIGINT)
    driver.communicate(timeout=30)
    assert driver.returncode == 130


def test_one_driver_per_scene_and_shards_side_by_side(reference, tmp_path):
    out = tmp_path / "corpus"
    first = start_driver(out, "--shard", "0/2", fault="hang:1")        # holds scenes 0..1 and hangs
    wait_for(lambda: temporaries(out / "scenes"), first, "the first driver's hanging scene")
    other_shard = subprocess.run([sys.executable, str(REPO / "generate.py"), *ARGS, "--out", str(out),
                                  "--shard", "1/2"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert other_shard.returncode == 0, other_shard.stderr             # disjoint scenes: not blocked
    for clash in (["--shard", "0/2"], [], ["--scenes", "1:3"]):
        second = subprocess.run([sys.executable, str(REPO / "generate.py"), *ARGS, "--out", str(out), *clash],
                                cwd=REPO, capture_output=True, text=True, timeout=300)
        assert second.returncode == 1
        assert f"pid {first.pid} on" in second.stderr and "being made by another driver" in second.stderr
        assert "scenes 0..1" in second.stderr
    first.send_signal(signal.SIGKILL)                 # a killed driver leaves no lock behind
    first.wait()
    assert generate(out, "--shard", "0/2") == 0
    assert hashes(out) == hashes(reference[0])
