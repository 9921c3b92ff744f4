"""The README's recipe reference is generated from the schema: keep them in step."""
from pathlib import Path

from nfs_synth.scene.recipe import reference_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_recipe_reference_is_current():
    assert reference_markdown() in README.read_text(), \
        "README recipe reference is stale: paste the output of `python -m nfs_synth.scene.recipe`"
