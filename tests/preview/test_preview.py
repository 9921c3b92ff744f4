"""`nfs-synth preview` on the tiny corpus (32x32, 5 frames, both sensors): sheet sizes, event panels
that show events only where there are some, the event-rate plot, the sweep video read back, and
scenes whose sensors were off."""
import shutil

import h5py
import imageio.v3 as iio
import numpy as np
import pytest

from nfs_synth.aif.scene import EvalScene
from nfs_synth.cli import main
from nfs_synth.drawing import CAPTION_HEIGHT
from nfs_synth.preview.panels import sweep_panels
from nfs_synth.preview.rate_plot import RATE_PLOT_PX, event_rate, in_focus_times_us

TILE = 128 + CAPTION_HEIGHT          # 32 px enlarged x4, caption strip below
VIDEO_TILE = 96 + CAPTION_HEIGHT     # x3 in the video


@pytest.fixture
def scene_file(reference, tmp_path):
    path = tmp_path / "scene_00000.h5"
    shutil.copy(reference[0] / "scenes" / "scene_00000.h5", path)
    return path


def without(path, *names):
    with h5py.File(path, "r+") as h5:
        for name in names:
            del h5[name]
    return path


def test_corpus_preview_writes_sheet_rate_plot_and_video(reference_copy, capsys):
    assert main(["preview", str(reference_copy), "--frames", "3", "--video"]) == 0
    out = reference_copy / "preview"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"scene_{i:05d}{suffix}" for i in range(4) for suffix in (".png", "_event_rate.png", "_sweep.gif"))
    sheet = iio.imread(out / "scene_00000.png")
    assert sheet.shape == (4 * TILE, 3 * 128, 3)     # frames, events, spikes, all-in-focus + depth
    assert iio.imread(out / "scene_00000_event_rate.png").shape[:2] == RATE_PLOT_PX[::-1]
    video = iio.imread(out / "scene_00000_sweep.gif", index=None)
    assert video.shape[:3] == (5, VIDEO_TILE + CAPTION_HEIGHT, 3 * 96)   # one video frame per sweep frame
    assert not list(out.glob("*.tmp-*"))
    assert "no events" not in capsys.readouterr().out


def test_event_panels_colour_exactly_the_pixels_with_events(scene_file):
    with EvalScene(scene_file) as scene:
        panels = sweep_panels(scene, [0, 2, 4], event_window_frames=2)
        stack = scene.event_stack(2)
    assert list(panels) == ["frame", "events", "spikes"]
    for panel, k in zip(panels["events"], (0, 4, 8)):
        lo, hi = max(0, k - 2), min(stack.edges_us.size - 1, k + 2)
        counts = stack.on[hi] - stack.on[lo] + stack.off[hi] - stack.off[lo]
        coloured = (panel.image < 1).any(axis=2)
        assert np.array_equal(coloured, counts > 0) and panel.note == f"{counts.sum()} events"
    assert any((p.image < 1).any() for p in panels["events"])
    assert all(p.image.shape == (32, 32, 3) and p.image.std() > 0 for p in panels["spikes"])


@pytest.mark.parametrize("missing, rows, video_panels", [
    (("events", "ms_to_idx", "t_offset"), ["frame", "spikes"], 2),
    (("spikes",), ["frame", "events"], 2),
    (("events", "ms_to_idx", "t_offset", "spikes"), ["frame"], 1)])
def test_scene_without_a_sensor_previews_without_its_panel(scene_file, tmp_path, capsys, missing, rows, video_panels):
    without(scene_file, *missing)
    with EvalScene(scene_file) as scene:
        assert list(sweep_panels(scene, [0, 4], 2)) == rows
    assert main(["preview", str(scene_file), "--out", str(tmp_path / "p"), "--frames", "2", "--video"]) == 0
    assert iio.imread(tmp_path / "p" / "scene_00000.png").shape == ((len(rows) + 1) * TILE, 2 * 128, 3)
    assert (tmp_path / "p" / "scene_00000_event_rate.png").exists() == ("events" in rows)
    video = iio.imread(tmp_path / "p" / "scene_00000_sweep.gif", index=None)
    assert video.shape[:3] == (5, VIDEO_TILE + CAPTION_HEIGHT, video_panels * 96)
    assert ("no events" in capsys.readouterr().out) == ("events" not in rows)


def test_bad_options_and_a_one_frame_video_are_errors(scene_file, tmp_path, capsys):
    assert main(["preview", str(scene_file), "--fps", "0"]) == 2
    assert "--fps must be between 1 and 100" in capsys.readouterr().err
    one = tmp_path / "one" / "scene_00000.h5"
    one.parent.mkdir()
    with h5py.File(scene_file, "r") as src, h5py.File(one, "w") as dst:
        for name in src:
            if name in ("frames", "timestamps_us", "focus_distance_m"):
                dst[name] = src[name][:1]
            else:
                src.copy(name, dst)
        dst.attrs.update(src.attrs)
    assert main(["preview", str(one), "--frames", "3"]) == 0       # a sheet of one frame, no streams
    assert main(["preview", str(one), "--video"]) == 1
    err = capsys.readouterr().err
    assert "1 frame; a sweep video needs at least 2" in err and "Traceback" not in err
    assert not (one.parent / "preview" / "scene_00000_sweep.gif").exists()


def test_in_focus_times_and_event_rate():
    assert in_focus_times_us([0.5, 1.25, 2.0, 3.0], np.array([0.5, 1.0, 1.5, 2.0]), np.array([0, 10, 20, 30])) \
        == [0.0, 15.0, 30.0, None]
    t = np.array([0, 100, 999, 1000, 1500, 1999])
    p = np.array([1, 0, 1, 1, 0, 0])
    centres, on, off = event_rate(t, p, 2000, 2)
    assert centres.tolist() == [0.5, 1.5] and on.tolist() == [2.0, 1.0] and off.tolist() == [1.0, 2.0]
