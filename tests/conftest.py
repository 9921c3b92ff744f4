"""Fixtures shared across the test folders (which mirror the package: scene/, render/, sensors/, ...)."""
import shutil

import pytest

from tiny_corpus import tiny_recipe


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """The tiny corpus, made once per session by one render worker recycled every 2 scenes:
    (corpus folder, telemetry of every scene)."""
    from nfs_synth.run.orchestrate import generate_corpus
    from nfs_synth.run.workers import LocalPool, Policy

    out = tmp_path_factory.mktemp("reference")
    telemetry = []
    with LocalPool(1) as pool:
        generate_corpus(tiny_recipe(), out, pool=pool, policy=Policy(max_units=2), progress=False,
                        telemetry=telemetry)
    return out, telemetry


@pytest.fixture
def reference_copy(reference, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(reference[0], out)
    return out
