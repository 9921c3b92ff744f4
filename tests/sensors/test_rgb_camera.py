"""The RGB camera of a hybrid rig (sensors/rgb_camera.py): Poisson-Gaussian noise statistics, exposure
integration, the resolution mapping, and a rendered scene with the camera on and off."""
import json

import h5py
import numpy as np
import pytest
from schema_checks import assert_follows_schema
from tiny_corpus import generate

from nfs_synth.cli import generate_main
from nfs_synth.color import srgb_decode, srgb_encode
from nfs_synth.commands.validate import schema_problems
from nfs_synth.errors import RecipeError
from nfs_synth.scene.recipe import load_recipe
from nfs_synth.sensors.rgb_camera import RgbCamera, SensorView, bin_to_sensor, draw_misalignment, to_sensor_matrix


def camera(**cfg) -> RgbCamera:
    return RgbCamera({"exposure_frames": 1, "full_well_e": 0.0, "read_noise_e": 0.0, "scale": 1} | cfg,
                     np.random.default_rng(7))


@pytest.mark.parametrize("level", [0.05, 0.3])
def test_noise_mean_and_variance_follow_gain_and_read_noise(level):
    # Electrons at one level: Poisson(level * full_well) + N(0, read^2). Decoding the 8-bit sRGB value adds
    # a quantisation error; at these levels one code step is < 0.4 % of the signal, so its variance
    # (step^2 / 12) is < 0.5 % of the noise variance and is added to the expectation below.
    full_well, read = 2000.0, 8.0
    cam = camera(full_well_e=full_well, read_noise_e=read)
    out = cam.capture(np.full((400, 400, 3), level, np.float32))
    electrons = srgb_decode(out.astype(np.float64) / 255.0) * full_well
    n = electrons.size
    expected_var = level * full_well + read ** 2
    step_e = full_well * (srgb_decode(np.array([(np.rint(level ** (1 / 2.4) * 255) + 0.5) / 255]))
                          - srgb_decode(np.array([(np.rint(level ** (1 / 2.4) * 255) - 0.5) / 255])))[0]
    expected_var += step_e ** 2 / 12
    se_mean = np.sqrt(expected_var / n)
    se_var = expected_var * np.sqrt(2.0 / (n - 1))       # Gaussian approximation of the variance's error
    assert abs(electrons.mean() - level * full_well) < 4 * se_mean + 0.01 * step_e
    assert abs(electrons.var() - expected_var) < 4 * se_var + 0.05 * step_e ** 2


def test_no_noise_is_the_quantised_signal_and_white_clips():
    ramp = np.linspace(0, 1.5, 64, dtype=np.float32)[None, :, None].repeat(3, 2)
    out = camera().capture(ramp)
    assert out.dtype == np.uint8
    assert np.abs(out - 255.0 * srgb_encode(ramp)).max() <= 0.5 + 1e-4     # rounded, not truncated
    assert (out[:, ramp[0, :, 0] >= 1.0] == 255).all()


def test_a_capture_integrates_exposure_frames():
    cam = camera(exposure_frames=3)
    frames = [np.full((4, 4, 3), v, np.float32) for v in (0.1, 0.2, 0.6, 0.3)]
    outs = [cam.feed(f) for f in frames]
    assert [len(o) for o in outs] == [0, 0, 1, 1]
    for got, window in ((outs[2][0], frames[0:3]), (outs[3][0], frames[1:4])):
        assert np.array_equal(got, cam.capture(np.mean(window, axis=0)))


def test_binning_and_the_stored_mapping_agree_on_a_feature():
    # A bright square at RGB pixels (rows 10..13, cols 22..27) of a 2x camera: its centroid in the binned
    # sensor image is where to_sensor maps the RGB centroid.
    rgb = np.zeros((40, 48), np.float64)
    rgb[10:14, 22:28] = 1.0
    sensor = bin_to_sensor(rgb, 2)
    assert sensor.shape == (20, 24) and np.isclose(sensor.sum() * 4, rgb.sum())

    def centroid(img):
        ys, xs = np.indices(img.shape)
        return np.array([(xs * img).sum(), (ys * img).sum()]) / img.sum()

    mapped = to_sensor_matrix(2) @ np.append(centroid(rgb), 1.0)
    assert np.abs(mapped[:2] - centroid(sensor)).max() < 0.25


def test_out_of_range_options_are_refused_naming_the_key():
    for item in ("rgb_camera.scale=0", "rgb_camera.full_well_e=-1", "rgb_camera.exposure_frames=100"):
        with pytest.raises(RecipeError, match=item.split("=")[0].replace(".", r"\.")):
            load_recipe(None, [item])


RGB_ON = ["rgb_camera.enabled=true", "rgb_camera.scale=2", "rgb_camera.exposure_frames=2",
          "rgb_camera.full_well_e=5000", "rgb_camera.read_noise_e=3"]


def test_a_scene_with_the_rgb_camera(tmp_path):
    sets = [a for item in RGB_ON for a in ("--set", item)]
    assert generate(tmp_path / "on", "--set", "corpus.scenes=1", *sets) == 0
    assert generate(tmp_path / "off", "--set", "corpus.scenes=1") == 0
    manifest = json.loads((tmp_path / "on" / "manifest.json").read_text())
    with h5py.File(tmp_path / "on/scenes/scene_00000.h5") as on, h5py.File(tmp_path / "off/scenes/scene_00000.h5") as off:
        assert schema_problems(on, manifest["scenes"][0]) == []
        assert_follows_schema(on)
        assert "rgb" not in off
        t, h, w = on["frames"].shape[:3]
        assert on["rgb/captures"].shape == (t - 1, 2 * h, 2 * w, 3) and on["rgb/captures"].dtype == np.uint8
        assert on["rgb"].attrs["full_well_e"] == 5000.0 and on["rgb"].attrs["exposure_frames"] == 2
        assert np.array_equal(on["rgb/to_sensor"][()], to_sensor_matrix(2))
        # the sensor's ground truth is the block mean of the RGB camera's (float16 rounding apart)
        binned = bin_to_sensor(on["rgb/all_in_focus"][()], 2)
        assert np.abs(binned - on["all_in_focus"][()]).max() < 2e-3 * max(1.0, binned.max())
        # the 2x render binned is the sensor's view of the same scene: close to the 1x render
        assert np.abs(on["all_in_focus"][()] - off["all_in_focus"][()]).mean() < 0.05
        # the noisy capture decodes to the exposure's mean frame within the noise
        cap = srgb_decode(on["rgb/captures"][0] / 255.0)
        mean = bin_to_sensor(cap, 2)
        sensor = np.clip(on["frames"][0:2].astype(np.float32).mean(0), 0, 1)
        assert np.abs(mean - sensor).mean() < 0.03


def test_off_by_default_in_the_shipped_recipes_and_on_in_hybrid_rig():
    for name in ("paper", "quick"):
        assert load_recipe(name)["rgb_camera"]["enabled"] is False
    assert load_recipe("hybrid_rig")["rgb_camera"]["enabled"] is True


def test_generate_refuses_a_bad_rgb_option_before_writing(tmp_path, capsys):
    assert generate_main(["--set", "rgb_camera.read_noise_e=-2", "--out", str(tmp_path / "out")]) == 2
    assert "rgb_camera.read_noise_e" in capsys.readouterr().err and not (tmp_path / "out").exists()


def blobs(shape, centres, sigma=1.6):
    ys, xs = np.indices(shape)
    return sum(np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2)) for x, y in centres)


def test_a_misaligned_sensor_sees_features_where_the_stored_homography_puts_them():
    cfg = {"misalign_shift_px": 3.0, "misalign_rotation_deg": 2.0, "misalign_scale": 0.03}
    matrix, drawn = draw_misalignment(cfg, np.random.default_rng(3), 40, 48)
    assert abs(drawn["misalign_rotation_deg"]) <= 2.0 and abs(drawn["misalign_scale"] - 1) <= 0.03
    to_sensor = to_sensor_matrix(2, matrix)
    centres = [(20.0, 18.0), (70.0, 22.0), (30.0, 60.0), (75.0, 66.0), (48.3, 40.7)]
    rgb = blobs((80, 96), centres).astype(np.float32)
    sensor = SensorView(to_sensor, 40, 48, 2)(rgb)
    for x, y in centres:
        xs, ys, w = to_sensor @ np.array([x, y, 1.0])
        xs, ys = xs / w, ys / w
        y0, x0 = int(round(ys)), int(round(xs))
        patch = sensor[y0 - 4:y0 + 5, x0 - 4:x0 + 5].astype(np.float64)
        py, px = np.indices(patch.shape)
        found = np.array([(px * patch).sum(), (py * patch).sum()]) / patch.sum() + [x0 - 4, y0 - 4]
        assert np.abs(found - [xs, ys]).max() < 0.25, (found, xs, ys)


def test_without_misalignment_the_sensor_view_is_the_block_mean():
    img = np.random.default_rng(1).random((32, 40, 3)).astype(np.float32)
    assert np.allclose(SensorView(to_sensor_matrix(2), 16, 20, 2)(img), bin_to_sensor(img, 2), atol=1e-6)
    depth = np.random.default_rng(2).random((32, 40)).astype(np.float32)
    assert np.array_equal(SensorView(to_sensor_matrix(2), 16, 20, 2)(depth, nearest_min=True),
                          bin_to_sensor(depth, 2, np.min))


def test_a_rendered_scene_is_shifted_by_the_drawn_misalignment(tmp_path):
    from skimage.registration import phase_cross_correlation

    sets = ["--set", "corpus.scenes=1", "--set", "camera.width=64", "--set", "camera.height=64"]
    on = sets + [a for item in ["rgb_camera.enabled=true", "rgb_camera.scale=2", "rgb_camera.misalign_shift_px=3"]
                 for a in ("--set", item)]
    assert generate(tmp_path / "on", *on) == 0
    with h5py.File(tmp_path / "on/scenes/scene_00000.h5") as h5:
        attrs = dict(h5["rgb"].attrs)
        sensor = h5["all_in_focus"][()].mean(-1)
        aligned = bin_to_sensor(h5["rgb/all_in_focus"][()], 2).mean(-1)
        assert np.allclose(h5["rgb/to_sensor"][()][:2, 2],
                           to_sensor_matrix(2)[:2, 2] + [attrs["misalign_shift_x_px"], attrs["misalign_shift_y_px"]])
    assert attrs["misalign_rotation_deg"] == 0.0 and attrs["misalign_shift_px_range"] == 3.0
    # the sensor's image is the aligned one moved by the drawn shift (inner part: the edges repeat)
    shift, _, _ = phase_cross_correlation(sensor[6:-6, 6:-6], aligned[6:-6, 6:-6], upsample_factor=20)
    assert np.abs(shift - [attrs["misalign_shift_y_px"], attrs["misalign_shift_x_px"]]).max() < 0.25
