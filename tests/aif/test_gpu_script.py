"""benchmarks/gpu_training.sh end to end on the CPU with tiny settings (the GPU run's script, unchanged)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = {"SCENES": "2", "TEST_SCENES": "1", "SIZE": "32", "FRAMES": "5", "CROP": "28", "WIDTH": "0.0625",
        "EPOCHS": "1", "SAMPLES": "4", "BATCH": "2", "STACK": "3", "WORKERS": "2", "PERCEPTUAL": "random-for-tests",
        "DEVICE": "cpu", "EXTRA_SET": "--set render.samples=1 --set sweep.duration_s=0.05"}


@pytest.mark.slow
def test_the_prepared_gpu_script_runs_end_to_end_on_the_cpu(tmp_path):
    env = {**os.environ, **TINY, "OUT": str(tmp_path / "run"), "PYTHON": sys.executable,
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_training.sh")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = (tmp_path / "run" / "summary.md").read_text()
    for run in ("refocus-ev", "merge-ev", "refocus-sp", "merge-sp"):
        row = next(line for line in summary.splitlines() if line.startswith(f"| {run} |"))
        assert float(row.split("|")[5]) > 0                  # samples/s of its last epoch
    for method in ("input", "handcraft-ev", "learned-ev", "handcraft-sp", "learned-sp"):
        assert any(line.startswith(f"| {method} |") for line in summary.splitlines()), method
    for name in ("cache-ev", "cache-sp"):
        assert (tmp_path / "run" / name / "cache.json").is_file()
