"""The embedded default recipe, end to end: the same content hashes with 1 and 2 workers, and the same
as recorded at schema 2 (issue 17: built-in HDF5 filters; the datasets are those of issue 20's record,
only `schema_version`, the recipe's `corpus.event_compression` and, from issue 19, a scene file's
recipe without `corpus.scenes`, and from issue 16 the recipe's `sensors.events.nonideal` table, all 0,
are new; every dataset is bit-identical to the earlier records). A change that alters the
data must bump the model or schema version and re-record them here (`make test-all` runs this)."""
from pathlib import Path

import pytest
from tiny_corpus import hashes

from nfs_synth.cli import generate_main

QUICK = Path(__file__).resolve().parents[2] / "recipes" / "quick.toml"

RECORDED = {  # recipes/quick.toml, bpy 5.0.1, layered engine
    0: "a08c35b6dfef491de4aa2732de6457be48cc8439c861243cd3993aa9bbbf9e19",
    1: "195e63cc3bdbbcfbba58422c78664b9d6ded17df82fdc969bc8891b4f46bc01c",
    2: "87a167a7146f7bca5c3c1b408dd26b8d2c6f545f6e9eb1d59f3b1f83aa5325fd",
    3: "057fdfe51d83d834a81f9d6af7a76405324136d300ad792175f4aae94b97bdd0",
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
