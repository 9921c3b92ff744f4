"""View "rgb" (`rig_view`): datasets, methods, training and evaluation on what a hybrid rig gives a net.

The corpus is synthetic (no Blender): sweeps made at twice the sensor's resolution, the sensor seeing
them through a beam splitter shifted by a fraction of a pixel, and the rgb group written as the
pipeline writes it.
"""
import csv
import dataclasses

import h5py
import numpy as np
import pytest
import torch

from nfs_synth import cli
from nfs_synth.aif import datasets, synthetic, train
from nfs_synth.aif.metrics import psnr
from nfs_synth.aif.representations import event_counts
from nfs_synth.aif.rig_view import Registration, capture_times
from nfs_synth.color import srgb_encode
from nfs_synth.aif.scene import EvalScene, open_eval_scene
from nfs_synth.corpus.events_io import read_events
from nfs_synth.corpus.spikes_io import read_spikes
from nfs_synth.errors import SceneFileError, UsageError

torch.set_num_threads(1)
SIZE, SCALE, FRAMES = 32, 2, 12
SHIFT = (0.75, -0.5)   # sensor pixels
RGB = dict(scale=SCALE, exposure_frames=2, full_well_e=0.0, read_noise_e=0.0, shift_px=SHIFT)


@pytest.fixture(scope="module")
def rig_corpus(tmp_path_factory):
    return synthetic.write_synthetic_corpus(tmp_path_factory.mktemp("rig"), ["train", "test", "test"], size=SIZE,
                                            n_frames=FRAMES, rgb_camera=RGB)


@pytest.fixture(scope="module")
def ideal_corpus(tmp_path_factory):
    return synthetic.write_synthetic_corpus(tmp_path_factory.mktemp("ideal"), ["test"], size=SIZE, n_frames=FRAMES)


def _scene(corpus, i=0):
    return corpus / "scenes" / f"scene_{i:05d}.h5"


def _to_sensor(path):
    with h5py.File(path) as h5:
        return h5["rgb/to_sensor"][:]


def test_each_rgb_pixel_reads_the_sensor_pixel_nearest_its_mapped_centre():
    shift = np.eye(3)
    shift[:2, 2] = SHIFT
    to_sensor = shift @ np.array([[0.5, 0, -0.25], [0, 0.5, -0.25], [0, 0, 1]])
    reg = Registration(to_sensor, (2 * SIZE, 2 * SIZE), (SIZE, SIZE))
    gy, gx = np.mgrid[0:2 * SIZE, 0:2 * SIZE]
    mapped_x, mapped_y = 0.5 * gx - 0.25 + SHIFT[0], 0.5 * gy - 0.25 + SHIFT[1]
    inside = (mapped_x > 0) & (mapped_x < SIZE - 1) & (mapped_y > 0) & (mapped_y < SIZE - 1)
    assert np.all(np.abs(reg.sx - mapped_x)[inside] <= 0.5) and np.all(np.abs(reg.sy - mapped_y)[inside] <= 0.5)
    assert reg.sx.min() == 0 and reg.sy.max() == SIZE - 1   # past the edges: the edge pixel


def test_registered_events_are_the_sensor_counts_read_through_the_registration(rig_corpus):
    path = _scene(rig_corpus)
    with h5py.File(path) as h5:
        events = read_events(h5)
    reg = Registration(_to_sensor(path), (SCALE * SIZE,) * 2, (SIZE,) * 2)
    registered = reg.events(events)
    assert np.all(np.diff(registered["t"]) >= 0)
    t0, t1 = int(events["t"][0]), int(events["t"][-1]) + 1
    sensor = event_counts(events, t0, t1, SIZE, SIZE, dtype=np.int32)
    rgb = event_counts(registered, t0, t1, SCALE * SIZE, SCALE * SIZE, dtype=np.int32)
    np.testing.assert_array_equal(rgb, reg.image(sensor))
    # conservation: every event is copied once per RGB pixel that reads its pixel
    readers = np.bincount((reg.sy * SIZE + reg.sx).ravel(), minlength=SIZE * SIZE)
    assert registered.size == int(readers[events["y"].astype(int) * SIZE + events["x"]].sum())


def test_capture_times_are_the_mean_time_of_their_exposure():
    np.testing.assert_array_equal(capture_times(np.array([0, 10, 20, 31]), 2), [5, 15, 26])
    np.testing.assert_array_equal(capture_times(np.array([0, 10, 20]), 1), [0, 10, 20])


@pytest.mark.parametrize("modality", ["events", "spikes"])
def test_refocus_samples_in_view_rgb_are_the_rig_data(rig_corpus, modality):
    path = _scene(rig_corpus)
    ds = datasets.RefocusDataset([path], modality, crop=24, samples_per_scene=3, seed=1, view="rgb")
    with h5py.File(path) as h5:
        captures = h5["rgb/captures"][:]
        events = read_events(h5)
        spikes = read_spikes(h5)
        t = capture_times(h5["timestamps_us"][:], 2)
    reg = Registration(_to_sensor(path), captures.shape[1:3], (SIZE, SIZE))
    for index in range(len(ds)):
        item = ds.compact_item(index)
        _, _, rng, (ys, xs) = ds._sample(index)
        i, j = (int(k) for k in rng.choice(len(t), 2, replace=False))
        np.testing.assert_array_equal(item["image"].numpy(), captures[i, ys, xs].transpose(2, 0, 1) / np.float32(255))
        np.testing.assert_array_equal(item["target"].numpy(), captures[j, ys, xs].transpose(2, 0, 1) / np.float32(255))
        if modality == "events":
            whole = event_counts(events, int(t[i]), int(t[j]), SIZE, SIZE)
            np.testing.assert_array_equal(item["nfs"].numpy(), reg.image(whole)[:, ys, xs])
        else:
            start = int(np.searchsorted(spikes.t_us, t[j])) - 32
            start = min(max(start, 0), len(spikes) - 64)
            bits = spikes.unpack(start, start + 64).astype(np.uint8)
            np.testing.assert_array_equal(item["nfs"].numpy(), reg.image(bits)[:, ys, xs])


def test_merge_target_is_the_ground_truth_in_the_rgb_frame(rig_corpus):
    path = _scene(rig_corpus)
    ds = datasets.MergeDataset([path], "events", crop=24, samples_per_scene=2, seed=0, stack_size=3, view="rgb")
    item = ds[1]
    _, _, _, (ys, xs) = ds._sample(1)
    with h5py.File(path) as h5:
        aif = h5["rgb/all_in_focus"][:]
    assert item["stack"].shape == (3, 3, 24, 24) and item["nfs"].shape == (3, 1, 24, 24)
    np.testing.assert_allclose(item["target"].numpy(), srgb_encode(aif[ys, xs]).transpose(2, 0, 1), atol=1e-3)


def test_view_rgb_refuses_scenes_without_an_rgb_camera_and_a_cache(ideal_corpus, rig_corpus, tmp_path):
    with pytest.raises(SceneFileError, match="rgb/captures"):
        datasets.RefocusDataset([_scene(ideal_corpus)], "events", crop=16, samples_per_scene=1, seed=0, view="rgb")
    with pytest.raises(SceneFileError, match="rgb_camera.enabled"):
        open_eval_scene(_scene(ideal_corpus), view="rgb")
    with pytest.raises(UsageError, match="cache"):
        datasets.RefocusDataset([_scene(rig_corpus)], "events", crop=16, samples_per_scene=1, seed=0,
                                cache=tmp_path, view="rgb")
    with pytest.raises(UsageError, match="view must be one of"):
        datasets.RefocusDataset([_scene(rig_corpus)], "events", crop=16, samples_per_scene=1, seed=0, view="RGB")


def test_eval_scene_in_view_rgb(rig_corpus):
    path = _scene(rig_corpus)
    with open_eval_scene(path, view="rgb") as rig, EvalScene(path) as sensor:
        assert rig.size == (SCALE * SIZE,) * 2 and rig.n_frames == FRAMES - 1
        assert rig.frame(3).shape == (SCALE * SIZE, SCALE * SIZE, 3)
        reg = rig.rig.registration
        stack, sensor_stack = rig.event_stack(), sensor.event_stack()
        k = stack.index_of(int(rig.timestamps_us[4]))
        np.testing.assert_array_equal(stack.on[k], reg.image(sensor_stack.on[sensor_stack.index_of(stack.edges_us[k])]))
        np.testing.assert_array_equal(rig.spike_stack().cum[-1], reg.image(sensor.spike_stack().cum[-1]))
        window = rig.spike_window(20_000, 30_000)
        np.testing.assert_array_equal(window.unpack(), reg.image(sensor.spike_window(20_000, 30_000).unpack()))


def test_evaluate_and_train_in_view_rgb(rig_corpus, tmp_path):
    out = tmp_path / "eval"
    assert cli.main(["evaluate", str(rig_corpus), "--view", "rgb", "--methods", "input,handcraft-ev,handcraft-sp",
                     "--out", str(out), "--no-figures"]) == 0
    with open(out / "metrics.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["method"] == "input"]
    with h5py.File(rig_corpus / "scenes" / "scene_00001.h5") as h5:
        expected = psnr(h5["rgb/captures"][0] / np.float32(255), np.clip(srgb_encode(h5["rgb/all_in_focus"][:]), 0, 1))
    assert float(rows[0]["psnr"]) == pytest.approx(expected, abs=1e-4)
    assert "View `rgb`" in (out / "table.md").read_text()

    cfg = train.TrainConfig(stage="refocus", modality="events", corpus=str(rig_corpus), out=str(tmp_path / "r"),
                            epochs=1, batch_size=2, crop=32, width=1 / 16, samples_per_scene=2, workers=0,
                            perceptual="random-for-tests", device="cpu", amp="off", view="rgb")
    train.train(cfg, log=lambda s: None)
    with pytest.raises(UsageError, match="view='rgb', now view='sensor'"):
        train.train(dataclasses.replace(cfg, view="sensor"), resume=True, log=lambda s: None)


@pytest.mark.parametrize("modality, method", [("events", "learned-ev"), ("spikes", "learned-sp")])
def test_learned_methods_trained_and_run_in_view_rgb(rig_corpus, tmp_path, modality, method):
    from nfs_synth.aif.learned import CHECKPOINT_OPTION
    from nfs_synth.aif.methods import get_method

    common = dict(modality=modality, corpus=str(rig_corpus), epochs=1, batch_size=2, crop=32, width=1 / 16,
                  samples_per_scene=2, workers=0, perceptual="random-for-tests", device="cpu", amp="off", view="rgb")
    refocus = train.train(train.TrainConfig(stage="refocus", out=str(tmp_path / "r"), **common), log=lambda s: None)
    merge = train.train(train.TrainConfig(stage="merge", out=str(tmp_path / "m"), stack_size=3,
                                          refocus_checkpoint=str(refocus), **common), log=lambda s: None)
    with open_eval_scene(_scene(rig_corpus, 1), view="rgb") as scene:
        image = get_method(method)(scene, 0, {CHECKPOINT_OPTION[modality]: f"{refocus};{merge}",
                                              "learned_candidates": "4", "learned_grid": "2", "learned_device": "cpu"})
    assert image.shape == (SCALE * SIZE, SCALE * SIZE, 3) and 0 <= image.min() and image.max() <= 1
