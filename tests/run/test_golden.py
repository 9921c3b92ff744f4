"""The embedded default recipe, end to end: the same content hashes with 1 and 2 workers, and the same
as recorded at schema 2 (issue 17: built-in HDF5 filters; the datasets are those of issue 20's record,
only `schema_version`, the recipe's `corpus.event_compression` and, from issue 19, a scene file's
recipe without `corpus.scenes`, and from issue 16 the recipe's `sensors.events.nonideal` and `rgb_camera`
tables, all off, are new; every dataset is bit-identical to the earlier records). Re-recorded for issue
18's layered compositor 2 (`render_json.layered_compositor`): frames, events and spikes change by the
compositor's interpolation (far below its error against Cycles, docs/layered.md). A change that alters the
data must bump the model or schema version and re-record them here (`make test-all` runs this)."""
from pathlib import Path

import pytest
from tiny_corpus import hashes

from nfs_synth.cli import generate_main

QUICK = Path(__file__).resolve().parents[2] / "recipes" / "quick.toml"

RECORDED = {  # recipes/quick.toml, bpy 5.0.1, layered engine
    0: "0472a27ae21d08a8b5d8a728bb81901da9365aaf1ec22bf6d4a04d1633cd3a98",
    1: "6dd5be615d8f0d14294f88eee318ef78d6c7ac9390dc5df78e0842b2c52a5d6a",
    2: "acd0838457985193f92d4f038762bc304f5e3da6a71b113c2528665f7b19912a",
    3: "eeb2ef39129d5f0c5668478cb584ca50f664fc0074814452ff9a291151f0ed6d",
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
