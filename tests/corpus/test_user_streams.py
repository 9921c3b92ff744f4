"""Other tools' event and spike files for `nfs-synth aif`: conventions detected, bad rows named by line."""
import numpy as np
import pytest

from nfs_synth.corpus.user_streams import read_user_events, read_user_spikes
from nfs_synth.errors import StreamFileError, UsageError
from nfs_synth.sensors.spikes import SpikeStream


def text(tmp_path, body, name="ev.txt"):
    path = tmp_path / name
    path.write_text(body)
    return path


def test_float_seconds_and_a_width_height_header_are_read(tmp_path):
    ev, sensor = read_user_events(text(tmp_path, "32 24\n# t x y p (ESIM)\n0.0001 1 2 1\n0.0025 3 4 -1\n1.5 5 6 0\n"))
    assert sensor == (24, 32)
    assert ev["t"].tolist() == [100, 2500, 1_500_000] and ev["p"].tolist() == [1, 0, 0]
    ev, sensor = read_user_events(text(tmp_path, "10 1 2 1\n20 3 4 0\n"))          # integer us, no header
    assert sensor is None and ev["t"].tolist() == [10, 20]
    ev, _ = read_user_events(text(tmp_path, "1 1 2 1\n2 3 4 0\n"), time_unit="s")    # chosen, not detected
    assert ev["t"].tolist() == [1_000_000, 2_000_000]


@pytest.mark.parametrize("body, unit, message", [
    ("10 1 2 1\n# a comment\n\n5 3 4 0\n", "auto", "line 4: time 5.0 comes before 10.0"),
    ("0.1 1 2 1\n0.05 3 4 0\n", "auto", "line 2: time 0.05 comes before 0.1"),
    ("10 1 2 1\n20 3 4 2\n", "auto", "line 2: polarity 2.0 is not 1 (ON), 0 or -1 (OFF)"),
    ("64 48\n10 1 2 1\n20 -3 4 1\n", "auto", "line 3: x = -3.0 is not a pixel index"),
    ("10 1 2 1\n20.5 3 4 1\n", "us", "line 2: time 20.5 is not integer microseconds (float seconds: --time-unit s)"),
    ("10 1 2 1\n20 3 4\n", "auto", "line 2 has 3 columns"),
    ("wide high\n10 1 2 1\n", "auto", "line 1: a two-field first line must be `width height`"),
])
def test_bad_text_events_are_refused_with_the_line(tmp_path, body, unit, message):
    path = text(tmp_path, body)
    with pytest.raises(StreamFileError) as err:
        read_user_events(path, time_unit=unit)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_npz_events_are_checked_like_text(tmp_path):
    np.savez(tmp_path / "ev.npz", t=[5, 3], x=[0, 1], y=[0, 0], p=[1, 0], height=4, width=4)
    with pytest.raises(StreamFileError, match="event 1: time 3.0 comes before 5.0"):
        read_user_events(tmp_path / "ev.npz")
    with pytest.raises(UsageError, match="unknown event format '.csv'"):
        read_user_events(text(tmp_path, "", "ev.csv"))


def test_spikes_from_an_exported_npz_carry_their_rate(reference, tmp_path):
    from nfs_synth.corpus.spikes_io import export_spikes, read_spikes

    scene = reference[0] / "scenes" / "scene_00000.h5"
    out = export_spikes(scene, "npz", tmp_path / "sp.npz")
    stream, rate = read_user_spikes(out, 32, 32, readout_hz=1.0)      # the file's own rate wins
    stored = read_spikes(scene)
    assert isinstance(stream, SpikeStream) and np.array_equal(stream.packed, stored.packed)
    assert np.array_equal(stream.t_us, stored.t_us) and rate == 20000.0
    with pytest.raises(UsageError, match="the image is 16x16 but .* is from a 32x32 sensor"):
        read_user_spikes(out, 16, 16)
