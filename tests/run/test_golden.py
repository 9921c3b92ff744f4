"""The embedded default recipe, end to end: the same content hashes with 1 and 2 workers, and the same
as recorded at schema 2 (issue 17: built-in HDF5 filters; the datasets are those of issue 20's record,
only `schema_version`, the recipe's `corpus.event_compression` and, from issue 19, a scene file's
recipe without `corpus.scenes`, and from issue 16 the recipe's `sensors.events.nonideal` and `rgb_camera`
tables, all off, are new; every dataset is bit-identical to the earlier records). A change that alters the
data must bump the model or schema version and re-record them here (`make test-all` runs this)."""
from pathlib import Path

import pytest
from tiny_corpus import hashes

from nfs_synth.cli import generate_main

QUICK = Path(__file__).resolve().parents[2] / "recipes" / "quick.toml"

RECORDED = {  # recipes/quick.toml, bpy 5.0.1, layered engine
    0: "f917f85936ad47565884ff54051a76e6b3072674e706e23126ec5295add8b270",
    1: "77897b4fb176344706ff3f3474670f0baad715c055919bddbd72e0a2e9b96509",
    2: "a4fec41284764c4c70540df6060dbfbd465c5694086e9714410a7e221ab37f2a",
    3: "f2219da745aa3a8ef4b19391a041b558331345f18075a8115889f841201d4ad9",
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
