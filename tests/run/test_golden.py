"""The embedded default recipe, end to end: the same content hashes with 1 and 2 workers, and the same
as recorded at schema 2 (issue 17: built-in HDF5 filters; the datasets are those of issue 20's record,
only `schema_version`, the recipe's `corpus.event_compression` and, from issue 19, a scene file's
recipe without `corpus.scenes` are new). A change that alters the
data must bump the model or schema version and re-record them here (`make test-all` runs this)."""
from pathlib import Path

import pytest
from tiny_corpus import hashes

from nfs_synth.cli import generate_main

QUICK = Path(__file__).resolve().parents[2] / "recipes" / "quick.toml"

RECORDED = {  # recipes/quick.toml, bpy 5.0.1, layered engine
    0: "fa952a89b1c1c80073cb8073115811beecaaeecedef1b2f9c5e17bd9c8f7277b",
    1: "315c8ecbccbcd1d9b498c3d2e630324d15e739492cd441a3196616638e86ddb4",
    2: "ef03a9d76d083d928f16d5d0ac53548eef5f9ec31a561d98e35260c8002bcf13",
    3: "6b0793d7f1603e86e5b3b1b63849f66db261abab2cc14fdfacfb9189aeb2bb24",
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
