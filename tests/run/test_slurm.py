"""SLURM for real (`slow`; needs a running SLURM, e.g. `sudo scripts/slurm_single_node.sh`): a job array of
`--shard auto` tasks, merged, and `--cluster slurm:N` through dask-jobqueue both give the 1-worker corpus."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_corpus import TINY, generate, hashes

REPO = Path(__file__).resolve().parents[2]


def slurm_partition_up() -> str | None:
    """Why SLURM cannot run jobs here, or None when a partition is up with an idle or mixed node."""
    if not (shutil.which("sbatch") and shutil.which("sinfo")):
        return "no sbatch/sinfo on PATH (install: scripts/slurm_single_node.sh)"
    state = subprocess.run(["sinfo", "-h", "-o", "%a %t"], capture_output=True, text=True)
    if state.returncode != 0:
        return f"sinfo failed: {state.stderr.strip()} (start it: scripts/slurm_single_node.sh)"
    if not any(line.split()[:1] == ["up"] and line.split()[1] in ("idle", "mix") for line in
               state.stdout.splitlines()):
        return f"no partition up with an idle node: {state.stdout.strip()!r}"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(slurm_partition_up() is not None,
                                                   reason=str(slurm_partition_up()))]


def test_job_array_of_shards_merges_into_the_one_worker_corpus(reference, tmp_path):
    out = tmp_path / "array"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    sets = [a for item in TINY for a in ("--set", item)]
    job = subprocess.run(["sbatch", "--wait", "--array=0-3", f"--output={tmp_path}/slurm-%A_%a.out",
                          str(REPO / "scripts" / "generate_array.sbatch"), "quick", str(out), *sets],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stderr + "".join(p.read_text() for p in tmp_path.glob("slurm-*.out"))
    logs = sorted(tmp_path.glob("slurm-*_*.out"))
    assert len(logs) == 4 and all("1 of 1 scenes complete" in p.read_text() for p in logs)   # one per task
    assert len(list((out / "manifest.d").glob("scenes-*.json"))) == 4
    assert generate(out) == 0                     # the closing run makes nothing and merges manifest.json
    assert hashes(out) == hashes(reference[0])


def test_cluster_slurm_gives_the_one_worker_corpus(reference, tmp_path):
    import dask

    with dask.config.set({"jobqueue.slurm.log-directory": str(tmp_path / "logs")}):
        assert generate(tmp_path / "dask", "--cluster", "slurm:2") == 0
    assert hashes(tmp_path / "dask") == hashes(reference[0])
    assert len(list((tmp_path / "logs").glob("*.err"))) == 2      # two SLURM jobs ran the workers
