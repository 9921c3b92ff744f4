"""The per-stage accounting of one scene (timings_json), on the tiny corpus's settings."""
import json

import h5py
import pytest

from nfs_synth.corpus.scene_file import content_hash
from nfs_synth.run.pipeline import render_scene
from nfs_synth.run.stages import StageClock
from tiny_corpus import tiny_recipe

STAGES = {"plan", "build", "hdf5", "render_aif", "render_frames", "events", "spikes", "hash"}


def test_stages_account_for_the_scene_and_stay_out_of_the_hash(tmp_path):
    path = tmp_path / "scene_00000.h5"
    entry = render_scene(tiny_recipe(), 0, path, threads=1)
    with h5py.File(path, "r") as h5:
        timings = json.loads(h5.attrs["timings_json"])
        assert h5.attrs["wall_seconds"] == timings["wall_s"]
    assert set(timings["stages"]) == STAGES
    assert {"build", "trace", "readback"} <= set(timings["renderer"])
    total = sum(s["wall_s"] for s in timings["stages"].values())
    assert total <= timings["wall_s"] and total >= 0.95 * timings["wall_s"]
    assert sum(s["cpu_s"] for s in timings["stages"].values()) <= timings["cpu_s"] + 1e-6
    assert timings["peak_rss_bytes"] > 50 << 20
    assert entry["sha256"] == content_hash(path) and entry["bytes"] == path.stat().st_size


def test_stage_clock_adds_up_repeated_stages_and_times_an_iterator():
    clock = StageClock()
    with clock.stage("a"):
        sum(range(200_000))
    with clock.stage("a"):
        sum(range(200_000))
    assert list(clock.each("gen", iter([1, 2, 3]))) == [1, 2, 3]
    report = clock.report()
    assert set(report["stages"]) == {"a", "gen"} and report["stages"]["a"]["cpu_s"] > 0
    with pytest.raises(ZeroDivisionError), clock.stage("b"):
        raise ZeroDivisionError
    assert "b" in clock.stages         # a failing stage still counts


def test_cpu_of_threads_working_ahead_counts_to_their_own_stage():
    """A pool thread burns CPU while this thread sleeps in another stage: that CPU moves to the pool's
    stage, and the sleeping stage keeps (almost) none."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from nfs_synth.render.layered.stack import PoolCPU

    def burn(seconds):
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            np.sqrt(np.arange(1000.0))
        return time.thread_time()

    pool_cpu, clock = PoolCPU(), StageClock()
    clock.count_background("render_frames", pool_cpu.seconds)
    with ThreadPoolExecutor(1, initializer=pool_cpu.register) as pool:
        with clock.stage("hdf5"):
            job = pool.submit(burn, 0.4)
            while not job.done():
                time.sleep(0.01)
        thread_total = job.result()
        pool_cpu.retire()
    stages = clock.report()["stages"]
    assert stages["hdf5"]["cpu_s"] < 0.1
    assert stages["render_frames"]["cpu_s"] == pytest.approx(thread_total, abs=0.05)
    assert pool_cpu.seconds() == pytest.approx(thread_total, abs=0.05)   # kept after the threads exit
