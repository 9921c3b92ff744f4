"""The embedded default recipe, end to end: the same content hashes with 1 and 2 workers, and the same
as recorded at schema 2 (issue 17: built-in HDF5 filters; the datasets are those of issue 20's record,
only `schema_version` and the recipe's `corpus.event_compression` are new). A change that alters the
data must bump the model or schema version and re-record them here (`make test-all` runs this)."""
from pathlib import Path

import pytest
from tiny_corpus import hashes

from nfs_synth.cli import generate_main

QUICK = Path(__file__).resolve().parents[2] / "recipes" / "quick.toml"

RECORDED = {  # recipes/quick.toml, bpy 5.0.1, layered engine
    0: "3b311c85c707b9b645d8ebaa29eb184369c731156b3e90eb1d3025e0cdccfbce",
    1: "aecff91b82d7129026de4d16e7ed3a14b7e3d1fde6e74b3f14ea770e6e08d2ad",
    2: "31d633d1b5a081624a2d40794be8c26776c22a56a12b27ef4d15f1916935a1e8",
    3: "944d8b78029dcb4d3304d46960a8547ab3a1219f6ae5734b569754cfced2de8d",
}


@pytest.mark.slow
def test_default_recipe_hashes_do_not_depend_on_workers_and_match_the_record(tmp_path):
    made = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        assert generate_main([str(QUICK), "--out", str(out), "--workers", str(workers),
                              "--no-progress"]) == 0
        made[workers] = hashes(out)
    assert made[1] == made[2]
    assert made[1] == RECORDED
