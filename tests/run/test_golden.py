"""The embedded default recipe, end to end: the same content hashes with 1 and 2 workers, and the same
as recorded when the package was reorganised into stage folders (issue 20). A change that alters the
data must bump the model or schema version and re-record them here (`make test-all` runs this)."""
from pathlib import Path

import pytest
from tiny_corpus import hashes

from nfs_synth.cli import generate_main

QUICK = Path(__file__).resolve().parents[2] / "recipes" / "quick.toml"

RECORDED = {  # recipes/quick.toml, bpy 5.0.1, layered engine
    0: "d49721652f0c81ecb53ebf93f2288a6027804fd76db3fde005c415dd4c5dd9f2",
    1: "63582620b4a2f4a2ec2b6d35516c0d0f74439db0f5f47c4fc1625bc6ca70ae6b",
    2: "7b571f9a7332450df7e9833215ba09e2787121b06dccef6a4f25c0490dc39a68",
    3: "f0910fa28af0f03aa57e1767e3284a7ac1740c364bb668275a09d450d0295b92",
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
