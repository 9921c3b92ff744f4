"""Recipe validation: every bad recipe is named precisely, exits 2 and creates nothing."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nfs_synth.scene.recipe import RecipeError, load_recipe, validate

ROOT = Path(__file__).resolve().parents[2]

BAD = [  # (TOML text, fragment the message must contain)
    ("[sweep]\nframs = 10\n", "unknown key 'sweep.frams' (did you mean 'sweep.frames'?)"),
    ("[camra]\nwidth = 10\n", "unknown key 'camra'"),
    ("[sweep]\nframes = 'many'\n", "'sweep.frames' must be an integer"),
    ("[sweep]\nframes = 1\n", "'sweep.frames' = 1 is out of range; allowed [2, 100000]"),
    ("[camera]\nf_number = 0.1\n", "'camera.f_number' = 0.1 is out of range"),
    ("[render]\nsamples = 4.5\n", "'render.samples' must be an integer"),
    ("[render]\ndenoise = 1\n", "'render.denoise' must be true or false"),
    ("[textures]\nsource = 'imagenet'\n", "'textures.source' = 'imagenet' is not allowed"),
    ("[sweep]\nnear_m = 3.0\nfar_m = 2.0\n", "'sweep.near_m' (3.0) must be smaller than 'sweep.far_m'"),
    ("[textures]\nsource = 'coco'\n", "'textures.coco_root' is required"),
    ("[sensors.events]\npreset = 'DVS999'\n", "'sensors.events.preset' = 'DVS999' is not allowed"),
    ("[sensors.events.ranges]\nk1 = [5.0, 4.0]\n", "'sensors.events.ranges.k1' = [5.0, 4.0]: min is larger"),
    ("[corpus]\nsplits = { train = 0.5, val = 0.1, test = 0.1 }\n", "fractions must add up to 1"),
    ("[scene]\nprimitives = ['cube', 'teapot']\n", "'scene.primitives' item 'teapot' is not allowed"),
    ("camera = 3\n", "'camera' must be a table"),
    # the simulators' and the engine's constraints, refused here rather than after rendering
    ("[sensors.events]\nk1 = 0.0\n", "'sensors.events.k1' = 0.0 is out of range; allowed (0, 1e+06]"),
    ("[sensors.events]\nk2 = 0\n", "'sensors.events.k2' = 0 is out of range; allowed (0, 1e+06]"),
    ("[sensors.events.ranges]\nk2 = [0.0, 1.0]\n", "'sensors.events.ranges.k2' = 0.0 is out of range; allowed (0"),
    ("[sensors.spikes]\nreadout_hz = 1\n", "'sensors.spikes.readout_hz': readout_hz = 1 is below the dark "
     "spike rate dark_rate_hz = 93 Hz; allowed [93, 1e+07]"),
    ("[render]\nengine = 'layered'\n[ground_truth]\nf_number = 0.3\n",
     "'ground_truth.f_number': ground_truth.f_number = 0.3 is below camera.f_number = 1.2: the layered "
     "engine allows 0 (pinhole) or [1.2, 1024]"),
    ("[sweep\nframes = 3\n", "not valid TOML"),
]


@pytest.mark.parametrize("text,fragment", BAD)
def test_bad_recipe_message(tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert fragment in str(err.value)


def test_defaults_fill_every_key_and_shipped_recipes_validate():
    resolved = validate({})
    assert resolved["sweep"]["frames"] >= 2 and resolved["sensors"]["events"]["k1"] is None
    quick = load_recipe(ROOT / "recipes" / "quick.toml")
    paper = load_recipe(ROOT / "recipes" / "paper.toml")
    assert paper["sweep"]["frames"] == 480 and paper["camera"]["f_number"] == 1.2
    assert paper["camera"]["focal_length_mm"] == 100.0 and paper["corpus"]["scenes"] == 200
    assert paper["textures"]["source"] == "coco" and quick["textures"]["source"] == "bundled"


def test_overrides_are_typed_and_validated():
    r = load_recipe(None, ["sweep.frames=48", "sensors.events.k1=4.5", "textures.source=bundled"])
    assert r["sweep"]["frames"] == 48 and r["sensors"]["events"]["k1"] == 4.5
    with pytest.raises(RecipeError, match="^--set sweep.frames=0: 'sweep.frames' = 0 is out of range"):
        load_recipe(None, ["sweep.frames=0"])  # blamed on the override, not on the recipe file
    with pytest.raises(RecipeError, match="^--set camera.widht=3: unknown key 'camera.widht'"):
        load_recipe(None, ["camera.widht=3"])
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        load_recipe(None, ["sweep.frames"])


@pytest.mark.parametrize("args,fragment", [
    (["--set", "sweep.frames=1"], "sweep.frames"),
    (["--set", "render.samplez=3"], "unknown key 'render.samplez'"),
    (["--set", "sensors.spikes.readout_hz=1"], "'sensors.spikes.readout_hz'"),
    (["--set", "textures.source=coco", "--set", "textures.coco_root=/nonexistent/coco"], "COCO root not found"),
])
def test_generate_exits_2_and_creates_nothing(tmp_path, args, fragment):
    out = tmp_path / "corpus"
    proc = subprocess.run([sys.executable, str(ROOT / "generate.py"), "--out", str(out), *args],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert fragment in proc.stderr
    assert not out.exists()


def test_simulators_and_engine_run_the_recipe_checks():
    """The checks the recipe runs are the simulators' own: the same values fail there the same way."""
    from nfs_synth.errors import LayeredSettingsError
    from nfs_synth.scene.optics import check_layered_apertures
    from nfs_synth.sensors import events, spikes

    recipe = validate({})
    with pytest.raises(spikes.SpikeError, match="below the dark spike rate") as err:
        spikes.from_recipe({**recipe["sensors"]["spikes"], "readout_hz": 50.0}, np.random.SeedSequence(0), 4, 4)
    assert err.value.key == "readout_hz"
    assert validate({"sensors": {"spikes": {"readout_hz": 1, "preset": "ideal"}}})  # no dark current: fine
    with pytest.raises(events.EventsError, match="k1 must be > 0") as err:
        events.from_recipe({**recipe["sensors"]["events"], "k1": 0.0}, np.random.SeedSequence(0), 4, 4)
    assert err.value.key == "k1"
    with pytest.raises(LayeredSettingsError, match="allows 0 \\(pinhole\\) or \\[2, 1024\\]"):
        check_layered_apertures(2.0, 1.2)
    check_layered_apertures(2.0, None)
    assert validate({"render": {"engine": "cycles"}, "ground_truth": {"f_number": 0.3}})  # Cycles can


def test_override_blamed_for_a_simulator_constraint():
    with pytest.raises(RecipeError, match="^--set sensors.spikes.readout_hz=10: 'sensors.spikes.readout_hz'"):
        load_recipe(None, ["sensors.spikes.readout_hz=10"])


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.toml")
