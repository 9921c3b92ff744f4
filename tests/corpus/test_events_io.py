"""DSEC-layout event files: writer invariants, windowed reads, exports, bad input."""
import math

import h5py
import numpy as np
import pytest

from nfs_synth.corpus import events_io
from nfs_synth.corpus.events_io import EventWriter, export_events, read_events
from nfs_synth.sensors.events import DVS346, EVENT_DTYPE, EventSimulator, EventsError

H, W = 24, 32
ATTRS = {"k1": 5.265, "preset": "DVS346", "log_drift": False}


def _frames(n=40):
    x = np.linspace(0, 1, W)
    return [np.broadcast_to(120 + 100 * np.sin(2 * np.pi * (3 * x + 0.05 * i)), (H, W)) for i in range(n)]


def _write(path, batches, t_end, attrs=ATTRS):
    with h5py.File(path, "w") as f:
        writer = EventWriter(f, H, W, attrs)
        for b in batches:
            writer.append(b)
        writer.close(t_end)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A file streamed from the simulator, small chunks so that reads span several."""
    path = tmp_path_factory.mktemp("ev") / "scene.h5"
    sim = EventSimulator(H, W, DVS346, np.random.default_rng(0))
    batches = [sim.feed(f, 1500 * i + 700) for i, f in enumerate(_frames())]
    mp = pytest.MonkeyPatch()
    mp.setattr(events_io, "CHUNK", 1 << 12)
    try:
        _write(path, batches, 1500 * 39 + 700 + 2500)
    finally:
        mp.undo()
    return path, np.concatenate(batches)


def test_dsec_invariants_with_plain_h5py(scene):
    path, events = scene
    with h5py.File(path, "r") as f:
        g = f["events"]
        assert {g[k].dtype for k in "xy"} == {np.dtype("u2")}
        assert g["t"].dtype == np.int64 and g["p"].dtype == np.uint8
        assert g["t"].maxshape == (None,) and g["t"].compression == "gzip" and g["t"].shuffle
        assert int(g["height"][()]) == H and int(g["width"][()]) == W
        assert g.attrs["preset"] == "DVS346" and g.attrs["k1"] == 5.265
        t = g["t"][:]
        np.testing.assert_array_equal(t, events["t"])
        np.testing.assert_array_equal(g["x"][:], events["x"])
        assert np.all(np.diff(t) >= 0)
        ms = f["ms_to_idx"][:].astype(np.int64)
        assert f["ms_to_idx"].dtype == np.uint64 and f["t_offset"][()] == 0
        assert f["t_offset"].dtype == np.int64 and f["t_offset"].shape == ()
        assert len(ms) == math.ceil((1500 * 39 + 700 + 2500) / 1000) + 1
        np.testing.assert_array_equal(ms, np.searchsorted(t, 1000 * np.arange(len(ms)), "left"))


def test_default_chunks_are_dsec_sized(tmp_path):
    ev = np.zeros(10, EVENT_DTYPE)
    _write(tmp_path / "a.h5", [ev], 5)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert all(1 << 16 <= f["events"][k].chunks[0] <= 1 << 17 for k in "xytp")


def test_read_full_and_windows(scene):
    path, events = scene
    full = read_events(path)
    assert full.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(full, events)
    with h5py.File(path, "r") as f:
        for a, b in ((None, 5000), (12_345, 30_001), (30_000, None), (0, 0), (70_000, 90_000), (-50, 10)):
            lo = -np.inf if a is None else a
            hi = np.inf if b is None else b
            want = events[(events["t"] >= lo) & (events["t"] < hi)]
            np.testing.assert_array_equal(read_events(f, a, b), want)
    with pytest.raises(EventsError, match="after"):
        read_events(path, 10, 5)
    with pytest.raises(EventsError, match="integer"):
        read_events(path, 1.5, None)


def test_window_reads_only_the_chunks_it_needs(scene, monkeypatch):
    path, events = scene
    spans = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        if self.name.startswith("/events/") and isinstance(key, slice):
            spans.append((self.name, key.start or 0, key.stop))
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    got = read_events(path, 20_000, 21_000)
    needed = np.flatnonzero((events["t"] >= 20_000) & (events["t"] < 21_000))
    assert len(got) == len(needed) > 0
    for name, start, stop in spans:  # within the 1 ms band around the window
        assert start >= np.searchsorted(events["t"], 19_000) and stop <= np.searchsorted(events["t"], 22_000)


@pytest.mark.parametrize("fmt", ["txt", "npz", "dsec-h5"])
def test_exports_round_trip(scene, tmp_path, fmt):
    path, events = scene
    out = export_events(path, fmt, tmp_path / f"out.{fmt}")
    assert out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    if fmt == "txt":
        lines = out.read_text().splitlines()
        assert lines[0] == "{} {} {} {}".format(*events[0])
        back = np.loadtxt(out, dtype=np.int64).reshape(-1, 4)
        np.testing.assert_array_equal(back, np.stack([events[k] for k in "txyp"], axis=1))
    elif fmt == "npz":
        with np.load(out) as z:
            np.testing.assert_array_equal(z["t"], events["t"])
            np.testing.assert_array_equal(z["p"], events["p"])
            assert int(z["height"]) == H and int(z["width"]) == W
    else:
        np.testing.assert_array_equal(read_events(out), events)
        with h5py.File(out, "r") as f, h5py.File(path, "r") as g:
            np.testing.assert_array_equal(f["ms_to_idx"][:], g["ms_to_idx"][:])
            assert f["events"].attrs["preset"] == "DVS346"


def test_export_errors_write_nothing(tmp_path):
    with h5py.File(tmp_path / "no_events.h5", "w") as f:
        f.create_dataset("frames", data=np.zeros((1, 2, 2, 3), np.float16))
    with pytest.raises(EventsError, match="no events"):
        export_events(tmp_path / "no_events.h5", "txt", tmp_path / "out.txt")
    with pytest.raises(EventsError, match="format"):
        export_events(tmp_path / "no_events.h5", "aedat4", tmp_path / "out.aedat4")
    with pytest.raises(EventsError, match="no events"):
        read_events(tmp_path / "no_events.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_events.h5"]


def _batch(t, x=0, y=0, p=1):
    ev = np.zeros(len(t), EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = t, x, y, p
    return ev


@pytest.mark.parametrize("batch, word", [
    (_batch([15, 13]), "sorted"), (_batch([1]), "before the previous"), (_batch([20], x=W), "x outside"),
    (_batch([20], y=H), "y outside"), (_batch([20], p=2), "p outside"),
    (np.zeros(3, [("t", "f8"), ("x", "u2"), ("y", "u2"), ("p", "u1")]), "integers"),
    (np.zeros((3, 4), np.int64), "structured"),
])
def test_writer_rejects_bad_batches_and_writes_nothing(tmp_path, batch, word):
    with h5py.File(tmp_path / "w.h5", "w") as f:
        writer = EventWriter(f, H, W, ATTRS)
        writer.append(_batch([2, 10]))
        with pytest.raises(EventsError, match=word):
            writer.append(batch)
        assert writer.count == 2
        with pytest.raises(EventsError, match="before the last event"):
            writer.close(9)
        writer.close(10)
        with pytest.raises(EventsError, match="closed"):
            writer.append(_batch([11]))
    np.testing.assert_array_equal(read_events(tmp_path / "w.h5")["t"], [2, 10])


def test_writer_refuses_bad_setup_before_writing(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("t_offset", data=np.int64(0))
        with pytest.raises(EventsError, match="already has"):
            EventWriter(f, H, W, ATTRS)
        with pytest.raises(EventsError, match="attribute"):
            EventWriter(f, H, W, {"bad": [1, 2]})
        with pytest.raises(EventsError, match="height"):
            EventWriter(f, 0, W, ATTRS)
        assert "events" not in f
    with h5py.File(tmp_path / "a.h5", "r") as f:
        with pytest.raises(EventsError, match="writing"):
            EventWriter(f, H, W, ATTRS)


def test_empty_event_stream(tmp_path):
    _write(tmp_path / "e.h5", [np.empty(0, EVENT_DTYPE)], 2500)
    assert len(read_events(tmp_path / "e.h5")) == 0
    assert len(read_events(tmp_path / "e.h5", 100, 2000)) == 0
    with h5py.File(tmp_path / "e.h5", "r") as f:
        assert f["ms_to_idx"][:].tolist() == [0, 0, 0, 0]


def test_blosc_events_as_dsec_stores_them(tmp_path, scene):
    """corpus.event_compression = "blosc": the same events under DSEC's Blosc filter (id 32001)."""
    _, events = scene
    path = tmp_path / "blosc.h5"
    with h5py.File(path, "w") as f:
        writer = EventWriter(f, H, W, ATTRS, compression="blosc")
        writer.append(events)
        writer.close(int(events["t"][-1]))
    with h5py.File(path, "r") as f:
        assert all("32001" in f[f"events/{k}"]._filters for k in "xytp") and "32001" in f["ms_to_idx"]._filters
    np.testing.assert_array_equal(read_events(path), events)
    with h5py.File(tmp_path / "bad.h5", "w") as f, pytest.raises(EventsError, match="compression must be one of"):
        EventWriter(f, H, W, ATTRS, compression="lz4")
