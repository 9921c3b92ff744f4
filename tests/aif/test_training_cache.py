"""The training-input cache (`nfs-synth prepare`): the same samples as the scene files, refused when
stale, resumable, and loud about damage; the loader path (compact samples, batches built in workers)."""
import json
import os
import shutil

import h5py
import numpy as np
import pytest
import torch

from nfs_synth.aif import datasets, train
from nfs_synth.aif.representations import dense_nfs, event_counts, event_stack
from nfs_synth.aif.training_cache import CACHE_FILE, prepare_cache
from nfs_synth.cli import main
from nfs_synth.errors import CacheError, UsageError
from nfs_synth.run.workers import LocalPool, Policy

torch.set_num_threads(1)
CROP = 28  # of the tiny corpus' 32 px frames: crops start at columns 0..4, across spike bytes


def prepare(corpus, modality, out, workers=1):
    with LocalPool(workers) as pool:
        return prepare_cache(corpus, modality, out, pool, Policy(retries=0), progress=False)


@pytest.fixture(scope="module")
def caches(reference, tmp_path_factory):
    root = tmp_path_factory.mktemp("caches")
    corpus = reference[0]
    for modality in ("events", "spikes"):
        assert prepare(corpus, modality, root / modality, workers=2) == (4, [])
    return corpus, root


def scenes(corpus):
    return datasets.corpus_scenes(corpus, "all")


def equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("modality", ["events", "spikes"])
def test_cache_samples_equal_scene_file_samples(caches, modality):
    corpus, root = caches
    plain = datasets.RefocusDataset(scenes(corpus), modality, CROP, 6, seed=3)
    cached = datasets.RefocusDataset(scenes(corpus), modality, CROP, 6, seed=3, cache=root / modality)
    for epoch in (0, 2):
        plain.set_epoch(epoch), cached.set_epoch(epoch)
        for i in range(len(plain)):
            assert equal(plain[i], cached[i]), (epoch, i)
            assert equal(plain.compact_item(i), cached.compact_item(i)), (epoch, i)
    merge_plain = datasets.MergeDataset(scenes(corpus), modality, CROP, 3, seed=1, stack_size=4)
    merge_cached = datasets.MergeDataset(scenes(corpus), modality, CROP, 3, seed=1, stack_size=4, cache=root / modality)
    assert all(equal(merge_plain[i], merge_cached[i]) for i in range(len(merge_plain)))


def test_compact_samples_expand_to_what_the_network_read_before(caches):
    """int8 counts + leak expand to event_stack with the leak, bit for bit; spikes as uint8 0/1."""
    corpus, root = caches
    ds = datasets.RefocusDataset(scenes(corpus), "events", CROP, 4, seed=0, cache=root / "events")
    scene, src, rng, (ys, xs) = ds._sample(5)
    ts = ds.timestamps[scene]
    i, j = (int(k) for k in rng.choice(len(ts), 2, replace=False))
    events = src.events(min(ts[i], ts[j]), max(ts[i], ts[j]))
    leak = ds._leak(scene, src, i, src.frame(i, ys, xs))
    expected = event_stack(events, int(ts[i]), int(ts[j]), CROP, CROP, x0=xs.start, y0=ys.start, leak=leak)
    item = ds.compact_item(5)
    assert item["nfs"].dtype == torch.int8 and np.abs(item["nfs"].numpy()).sum() > 0
    assert np.array_equal(dense_nfs(item)["nfs"].numpy(), expected)
    spikes = datasets.RefocusDataset(scenes(corpus), "spikes", CROP, 4, seed=0).compact_item(5)["nfs"]
    assert spikes.dtype == torch.uint8 and set(np.unique(spikes.numpy())) <= {0, 1}


def test_event_counts_refuse_to_wrap():
    ev = np.zeros(200, dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    ev["t"], ev["p"] = np.arange(200), 1
    assert event_counts(ev, 0, 200, 1, 1, bins=2)[:, 0, 0].tolist() == [100, 100]
    with pytest.raises(UsageError, match="more than 127"):
        event_counts(ev, 0, 200, 1, 1, bins=1)
    assert event_stack(ev, 0, 200, 1, 1, bins=1)[0, 0, 0] == 200      # the float path has room


def test_loader_batches_are_the_stacked_samples(caches):
    corpus, root = caches
    ds = datasets.RefocusDataset(scenes(corpus), "events", CROP, 2, seed=0, cache=root / "events")
    cfg = train.TrainConfig(stage="refocus", modality="events", corpus=str(corpus), out="", batch_size=2, workers=1)
    loader = train.make_loader(ds, cfg, torch.device("cpu"))
    for epoch in (0, 1):
        loader.sampler.set_epoch(epoch)
        order = list(loader.sampler)
        ds.set_epoch(epoch)
        for n, batch in enumerate(loader):
            dense = dense_nfs(batch)
            for k in range(2):
                index = order[2 * n + k] % len(ds)
                assert all(torch.equal(dense[key][k], ds[index][key]) for key in dense), (epoch, n, k)


def test_a_stale_cache_is_refused_naming_what_differs(caches, tmp_path):
    corpus, root = caches
    with pytest.raises(CacheError, match="is a events cache; the spikes stage"):
        datasets.RefocusDataset(scenes(corpus), "spikes", CROP, 1, seed=0, cache=root / "events")
    other = tmp_path / "other"
    shutil.copytree(corpus, other)
    shutil.rmtree(other / "manifest.d", ignore_errors=True)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["scenes"][1]["sha256"] = "0" * 64           # as if scene 1 had been remade
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CacheError, match="another version of scene_00001.h5"):
        datasets.RefocusDataset(scenes(other), "events", CROP, 1, seed=0, cache=root / "events")
    old = tmp_path / "old"
    shutil.copytree(root / "events", old)
    meta = json.loads((old / CACHE_FILE).read_text())
    (old / CACHE_FILE).write_text(json.dumps({**meta, "schema": 0}))
    with pytest.raises(CacheError, match="cache schema 0, this nfs_synth reads schema 1"):
        datasets.RefocusDataset(scenes(corpus), "events", CROP, 1, seed=0, cache=old)


def test_an_interrupted_prepare_resumes_and_makes_only_what_is_missing(reference, tmp_path):
    corpus, out = reference[0], tmp_path / "cache"
    assert prepare(corpus, "events", out) == (4, [])
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "scenes").glob("*.h5")}
    (out / "scenes" / "scene_00002.h5").unlink()          # killed before scene 2 was renamed into place
    (out / CACHE_FILE).unlink()                           # cache.json comes last
    with pytest.raises(CacheError, match="not a complete training cache"):
        datasets.RefocusDataset(scenes(corpus), "events", CROP, 1, seed=0, cache=out)
    assert prepare(corpus, "events", out) == (1, [])
    now = {p.name: p.stat().st_mtime_ns for p in (out / "scenes").glob("*.h5")}
    assert {k: v for k, v in now.items() if k != "scene_00002.h5"} == {k: v for k, v in kept.items()
                                                                        if k != "scene_00002.h5"}
    assert (out / CACHE_FILE).is_file() and not list(out.rglob("*.tmp-*"))
    with pytest.raises(UsageError, match="holds a events cache"):
        prepare(corpus, "spikes", out)


def test_a_corrupt_or_truncated_cache_file_is_an_error_naming_it(caches, tmp_path):
    corpus, root = caches
    cache = tmp_path / "cache"
    shutil.copytree(root / "events", cache)
    victim = cache / "scenes" / "scene_00000.h5"
    with h5py.File(victim, "r") as h5:
        chunk = h5["frames"].id.get_chunk_info(0)
    with open(victim, "r+b") as fh:                       # flip bytes inside frame 0's chunk
        fh.seek(chunk.byte_offset + 100)
        flipped = bytes(b ^ 0xFF for b in fh.read(16))
        fh.seek(chunk.byte_offset + 100)
        fh.write(flipped)
    ds = datasets.RefocusDataset(scenes(corpus), "events", CROP, 8, seed=0, cache=cache)
    with pytest.raises(CacheError, match=f"{victim}: cannot read frames"):
        for i in range(8):                                # scene 0's samples read frame 0 sooner or later
            ds.set_epoch(i)
            [ds[k] for k in range(8)]
    truncated = tmp_path / "truncated"
    shutil.copytree(root / "events", truncated)
    victim = truncated / "scenes" / "scene_00003.h5"
    os.truncate(victim, victim.stat().st_size // 2)
    with pytest.raises(CacheError, match="scene_00003.h5: missing, unreadable"):
        datasets.RefocusDataset(scenes(corpus), "events", CROP, 1, seed=0, cache=truncated)


def test_prepare_command_and_train_with_a_cache(caches, tmp_path, capsys):
    corpus, root = caches
    assert main(["prepare", "--corpus", str(corpus), "--modality", "spikes", "--out", str(tmp_path / "c"),
                 "--no-progress"]) == 0
    assert "4 cache files made" in capsys.readouterr().out
    assert main(["prepare", "--corpus", str(corpus), "--modality", "spikes", "--out", str(corpus),
                 "--no-progress"]) == 2
    cfg = dict(stage="refocus", modality="spikes", corpus=str(corpus), epochs=1, batch_size=2, crop=CROP,
               width=1 / 16, samples_per_scene=2, perceptual="random-for-tests", workers=0, amp="off")
    runs = [train.train(train.TrainConfig(out=str(tmp_path / name), cache=cache, **cfg), log=lambda *_: None)
            for name, cache in (("plain", None), ("cached", str(tmp_path / "c")))]
    a, b = (torch.load(p, weights_only=True)["model"] for p in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)       # the same samples, the same weights
