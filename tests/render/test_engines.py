"""The engine registry and the recipe agree, and asking for an engine loads the right renderer."""
import pytest

from nfs_synth.render import engines
from nfs_synth.scene.recipe import SCHEMA


def test_recipe_offers_exactly_the_registered_engines():
    assert set(SCHEMA["render"]["engine"].choices) == set(engines.ENGINES)


def test_each_engine_has_a_renderer_and_unknown_ones_are_named():
    for name in engines.ENGINES:
        cls = engines.renderer_class(name)
        assert all(hasattr(cls, a) for a in ("sweep", "all_in_focus", "close", "__enter__"))
    with pytest.raises(ValueError, match="'mitsuba'"):
        engines.renderer_class("mitsuba")
