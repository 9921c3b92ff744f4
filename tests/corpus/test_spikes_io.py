""".dat files, the HDF5 spikes/ group and exports."""

import h5py
import numpy as np
import pytest

from nfs_synth.corpus.spike_dat import read_dat, write_dat
from nfs_synth.corpus.spikes_io import CHUNK_STEPS, SpikeWriter, export_spikes, read_spikes
from nfs_synth.sensors.spikes import PRESETS, SpikeError, SpikeSimulator, SpikeStream, simulate


def random_stream(n, height, width, seed=0):
    bits = np.random.default_rng(seed).random((n, height, width)) < 0.3
    packed = np.packbits(bits, axis=2, bitorder="little")
    return SpikeStream(packed, 50 * np.arange(1, n + 1, dtype=np.int64), height, width), bits


def decode_dat_from_spec(data: bytes, height, width, bottom_up):
    """Written from the format description only: no header; frames of ceil(H*W/8) bytes; pixels
    row-major; pixel k is bit (k % 8) of byte k // 8, LSB first; rows stored bottom-up."""
    frame_bytes = (height * width + 7) // 8
    assert len(data) % frame_bytes == 0
    frames = []
    for f in range(len(data) // frame_bytes):
        frame = data[f * frame_bytes:(f + 1) * frame_bytes]
        img = np.zeros((height, width), bool)
        for k in range(height * width):
            row, col = divmod(k, width)
            if bottom_up:
                row = height - 1 - row
            img[row, col] = (frame[k // 8] >> (k % 8)) & 1
        frames.append(img)
    return np.array(frames).reshape(-1, height, width)


@pytest.mark.parametrize("height, width", [(4, 8), (3, 16), (5, 7), (3, 10), (1, 1)])
@pytest.mark.parametrize("flip", [True, False])
def test_dat_round_trip_is_bit_exact(tmp_path, height, width, flip):
    stream, bits = random_stream(7, height, width, seed=height * width)
    path = write_dat(tmp_path / "s.dat", stream, flip=flip)
    assert path.stat().st_size == 7 * ((height * width + 7) // 8)
    back = read_dat(path, height, width, flip=flip)
    assert np.array_equal(back.packed, stream.packed)
    assert np.array_equal(back.unpack(), bits)
    assert np.array_equal(decode_dat_from_spec(path.read_bytes(), height, width, flip), bits)
    assert not list(tmp_path.glob("*.tmp-*"))


def test_dat_orientation_matches_the_camera(tmp_path):
    """A single spike in the image's top-left corner lands in the file's last row (bottom-up)."""
    bits = np.zeros((1, 3, 5), bool)
    bits[0, 0, 0] = True
    stream = SpikeStream(np.packbits(bits, axis=2, bitorder="little"), np.array([50]), 3, 5)
    k = 2 * 5  # file row 2, column 0
    expected = bytearray(2)
    expected[k // 8] |= 1 << (k % 8)
    assert write_dat(tmp_path / "s.dat", stream).read_bytes() == bytes(expected)
    assert write_dat(tmp_path / "t.dat", stream, flip=False).read_bytes() == bytes([1, 0])


def test_read_dat_rejects_partial_frames(tmp_path):
    path = tmp_path / "bad.dat"
    path.write_bytes(bytes(13))
    with pytest.raises(SpikeError, match="not a whole number"):
        read_dat(path, 5, 7)  # 5 bytes per frame


def test_write_dat_bad_input_writes_nothing(tmp_path):
    with pytest.raises(SpikeError):
        write_dat(tmp_path / "x.dat", np.zeros((2, 3, 1), np.uint8))
    with pytest.raises(SpikeError):
        SpikeStream(np.zeros((2, 3, 2), np.uint8), np.array([1, 2]), 3, 5)  # 5 px need 1 byte per row
    assert list(tmp_path.iterdir()) == []


def stream_chunks(height=9, width=21, seed=1):
    """Spike chunks of irregular length from a streaming simulation."""
    rng = np.random.default_rng(seed)
    sim = SpikeSimulator(height, width, PRESETS["vidar_250x400"], np.random.default_rng(seed))
    times = np.cumsum(rng.integers(1, 400, 40)) * 50 + 13
    return [sim.feed(rng.uniform(0, 1, (height, width)).astype(np.float32), int(t)) for t in times]


def concat(chunks):
    return (np.concatenate([c.packed for c in chunks]), np.concatenate([c.t_us for c in chunks]))


def test_writer_and_reader_round_trip(tmp_path):
    chunks = stream_chunks()
    packed, t_us = concat(chunks)
    assert len(t_us) > 2 * CHUNK_STEPS  # several full chunks plus a partial one
    path = tmp_path / "scene.h5"
    with h5py.File(path, "w") as h5:
        with SpikeWriter(h5, 9, 21, {"readout_hz": 20000.0, "preset": "vidar_250x400"}) as writer:
            for c in chunks:
                writer.append(c)
    with h5py.File(path, "r") as h5:
        ds = h5["spikes/packed"]
        assert ds.chunks == (CHUNK_STEPS, 9, 3) and ds.dtype == np.uint8
        assert ds.id.get_create_plist().get_nfilters() == 0   # packed bits barely compress: unfiltered
        assert h5["spikes"].attrs["preset"] == "vidar_250x400"
    whole = read_spikes(path)
    assert np.array_equal(whole.packed, packed) and np.array_equal(whole.t_us, t_us)
    t0, t1 = int(t_us[100]), int(t_us[700])
    part = read_spikes(path, t0, t1)
    assert np.array_equal(part.packed, packed[100:700]) and np.array_equal(part.t_us, t_us[100:700])
    with h5py.File(path, "r") as h5:
        assert len(read_spikes(h5, t_start_us=int(t_us[-1]) + 1)) == 0


def test_writer_rejects_bad_chunks_without_writing(tmp_path):
    chunks = stream_chunks()
    with h5py.File(tmp_path / "s.h5", "w") as h5:
        writer = SpikeWriter(h5, 9, 21, {})
        writer.append(chunks[1])
        with pytest.raises(SpikeError, match="9x21"):
            writer.append(random_stream(3, 9, 20)[0])
        with pytest.raises(SpikeError, match="increase"):
            writer.append(chunks[1])
        assert writer.close() == len(chunks[1])


def test_writer_rejects_unstorable_attrs(tmp_path):
    with h5py.File(tmp_path / "s.h5", "w") as h5:
        with pytest.raises(SpikeError, match="attributes"):
            SpikeWriter(h5, 4, 4, {"nested": {"a": 1}})
        assert "spikes" not in h5


def write_scene(path, chunks):
    with h5py.File(path, "w") as h5:
        with SpikeWriter(h5, chunks[0].height, chunks[0].width, {"readout_hz": 20000.0}) as writer:
            for c in chunks:
                writer.append(c)


@pytest.mark.parametrize("flip", [True, False])
def test_export_dat_matches_write_dat(tmp_path, flip):
    chunks = stream_chunks(seed=2)
    write_scene(tmp_path / "scene.h5", chunks)
    out = export_spikes(tmp_path / "scene.h5", "dat", tmp_path / "out.dat", flip=flip)
    packed, t_us = concat(chunks)
    direct = write_dat(tmp_path / "direct.dat", SpikeStream(packed, t_us, 9, 21), flip=flip)
    assert out.read_bytes() == direct.read_bytes()


def test_export_npz(tmp_path):
    chunks = stream_chunks(seed=3)
    write_scene(tmp_path / "scene.h5", chunks)
    out = export_spikes(tmp_path / "scene.h5", "npz", tmp_path / "spikes.npz")
    packed, t_us = concat(chunks)
    with np.load(out) as z:
        assert np.array_equal(z["packed"], packed) and np.array_equal(z["t_us"], t_us)
        assert int(z["height"]) == 9 and int(z["width"]) == 21 and float(z["readout_hz"]) == 20000.0


def test_export_errors_write_nothing(tmp_path):
    with h5py.File(tmp_path / "empty.h5", "w") as h5:
        h5.create_dataset("frames", data=np.zeros(3))
    with pytest.raises(SpikeError, match="no spikes"):
        export_spikes(tmp_path / "empty.h5", "dat", tmp_path / "out.dat")
    with pytest.raises(SpikeError, match="format"):
        export_spikes(tmp_path / "empty.h5", "txt", tmp_path / "out.txt")
    with pytest.raises(SpikeError, match="no spikes"):
        read_spikes(tmp_path / "empty.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.h5"]


def test_simulated_stream_survives_dat_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    frames = rng.uniform(0, 1, (3, 6, 11)).astype(np.float32)
    stream = simulate(frames, [0, 1000, 2000], PRESETS["vidar_250x400"], seed=5)
    back = read_dat(write_dat(tmp_path / "s.dat", stream), 6, 11)
    assert np.array_equal(back.packed, stream.packed) and np.array_equal(back.t_us, stream.t_us)
