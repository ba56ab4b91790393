"""Tests for tfgan.data.decoders on real files of every supported format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from tfgan.data import decoders

TARGET = 16000
SECONDS = 0.5
FREQ = 440.0
AMP = 0.5

FORMATS = {  # id: (extension, soundfile format, subtype, expected codec)
    "wav16": ("wav", "WAV", "PCM_16", "wav_int16"),
    "wav24": ("wav", "WAV", "PCM_24", "wav_int32"),
    "wavf": ("wav", "WAV", "FLOAT", "wav_float32"),
    "flac": ("flac", "FLAC", "PCM_16", "flac_int16"),
    "ogg": ("ogg", "OGG", "VORBIS", "vorbis"),
    "mp3": ("mp3", "MP3", "MPEG_LAYER_III", "mp3"),
}
RATES = (8000, 22050, 44100, 48000)

def _cases():
    for fid in FORMATS:
        for rate in RATES:
            for ch in (1, 2):
                # 0.5 s at 22050 Hz is 11025 frames: odd, so a mono 24-bit data chunk is odd.
                marks = []
                yield pytest.param(fid, rate, ch, id=f"{fid}-{rate}-{ch}ch", marks=marks)


@pytest.fixture(scope="module")
def files(tmp_path_factory, helpers):
    """One file per (format, rate, channels): a 440 Hz tone; the right channel at half level."""
    root = tmp_path_factory.mktemp("formats")
    out = {}
    for fid, (ext, fmt, subtype, _) in FORMATS.items():
        for rate in RATES:
            for ch in (1, 2):
                audio = helpers.tone(FREQ, SECONDS, rate, ch, amp=AMP)
                out[fid, rate, ch] = helpers.write_audio(root / f"{fid}_{rate}_{ch}.{ext}", audio, rate,
                                                 fmt, subtype)
    return out


def expected_rms(ch: int) -> float:
    # Mono downmix is the channel mean: (1 + 1/2) / 2 of the tone for stereo.
    level = AMP * (0.75 if ch == 2 else 1.0)
    return level / np.sqrt(2)


def check_decoded(wave: np.ndarray, ch: int) -> None:
    assert wave.dtype == np.float32
    assert wave.ndim == 1
    assert abs(wave.size - SECONDS * TARGET) <= 4
    mid = wave[wave.size // 4: 3 * wave.size // 4]  # away from resampler edge effects
    assert audio_rms(mid) == pytest.approx(expected_rms(ch), rel=0.05)
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    peak_hz = np.argmax(spectrum) * TARGET / wave.size
    assert abs(peak_hz - FREQ) <= TARGET / wave.size


def audio_rms(x):
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


@pytest.mark.parametrize("fid, rate, ch", list(_cases()))
def test_probe_and_decode(files, fid, rate, ch):
    path = files[fid, rate, ch]
    info = decoders.probe(str(path))
    assert (info.rate, info.channels) == (rate, ch)
    assert info.frames == pytest.approx(SECONDS * rate, abs=2)
    # tensorflow-io loads on this TensorFlow, so every format gets its in-graph kernel.
    assert decoders.tfio_available()
    if (fid, rate, ch) == ("wav24", 22050, 1):
        # Fixing the odd-length 24-bit case may route it to soundfile instead.
        assert info.codec in (FORMATS[fid][3], "python")
    else:
        assert info.codec == FORMATS[fid][3]
    assert decoders.CODECS[info.codec_index] == info.codec

    py = decoders.decode_python(str(path), TARGET)
    check_decoded(py, ch)

    graph = decoders.decode_graph(tf.constant(str(path)), tf.constant(info.codec_index),
                                  tf.constant(info.rate, tf.int64), TARGET).numpy()
    check_decoded(graph, ch)


def test_decode_graph_inside_tf_data(files):
    """The graph decoder runs in a tf.data map, for a mix of codecs and rates."""
    keys = [("wav16", 44100, 2), ("flac", 8000, 1), ("ogg", 48000, 2), ("mp3", 22050, 1)]
    infos = [decoders.probe(str(files[k])) for k in keys]
    ds = tf.data.Dataset.from_tensor_slices(
        ([str(files[k]) for k in keys], [i.codec_index for i in infos],
         tf.constant([i.rate for i in infos], tf.int64)))
    ds = ds.map(lambda p, c, r: decoders.decode_graph(p, c, r, TARGET))
    waves = list(ds.as_numpy_iterator())
    assert len(waves) == len(keys)
    for (_, _, ch), wave in zip(keys, waves):
        check_decoded(wave, ch)


@pytest.mark.parametrize("key", [("wav16", 44100, 2), ("flac", 22050, 1)])
def test_graph_and_soundfile_paths_resample_alike(files, key):
    """Both decode paths resample with soxr: the same samples, not just the same tone."""
    path = str(files[key])
    info = decoders.probe(path)
    assert info.codec != "python"
    graph = decoders.decode_graph(tf.constant(path), tf.constant(info.codec_index),
                                  tf.constant(info.rate, tf.int64), TARGET).numpy()
    np.testing.assert_allclose(graph, decoders.decode_python(path, TARGET), atol=1e-5)


def test_python_branch_in_graph_matches_decode_python(files):
    path = str(files["wavf", 22050, 2])
    fn = tf.function(lambda p: decoders.decode_graph(p, tf.constant(0),  # CODECS[0]: python
                                                     tf.constant(22050, tf.int64), TARGET))
    np.testing.assert_array_equal(fn(tf.constant(path)).numpy(),
                                  decoders.decode_python(path, TARGET))


def test_python_branch_eagerly(files):
    path = str(files["wavf", 22050, 2])
    wave = decoders.decode_graph(tf.constant(path), tf.constant(0),
                                 tf.constant(22050, tf.int64), TARGET).numpy()
    np.testing.assert_array_equal(wave, decoders.decode_python(path, TARGET))


def test_max_seconds(files):
    path = files["wav16", 44100, 1]
    info = decoders.probe(str(path))
    py = decoders.decode_python(str(path), TARGET, max_seconds=0.25)
    graph = decoders.decode_graph(tf.constant(str(path)), tf.constant(info.codec_index),
                                  tf.constant(info.rate, tf.int64), TARGET,
                                  max_seconds=0.25).numpy()
    assert abs(py.size - 0.25 * TARGET) <= 4
    assert abs(graph.size - 0.25 * TARGET) <= 4


def test_same_rate_is_not_resampled(files):
    path = files["wavf", 8000, 1]
    raw, _ = sf.read(str(path), dtype="float32")
    np.testing.assert_array_equal(decoders.decode_python(str(path), 8000), raw)


def test_probe_text_file_raises(tmp_path):
    for name in ("notes.txt", "notes.wav", "notes.mp3"):
        path = tmp_path / name
        path.write_text("Not audio at all.\n" * 50)
        with pytest.raises(decoders.DecodeError, match="not readable audio"):
            decoders.probe(str(path))
    with pytest.raises(decoders.DecodeError):
        decoders.decode_python(str(tmp_path / "notes.wav"), TARGET)


def test_probe_empty_and_missing(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(decoders.DecodeError):
        decoders.probe(str(tmp_path / "empty.wav"))
    with pytest.raises(decoders.DecodeError):
        decoders.probe(str(tmp_path / "missing.wav"))


# ----------------------------------------------------------------------------- fallback

FALLBACK_SCRIPT = r"""
import json, sys
import numpy as np
from tfgan.config import preset
from tfgan.data import pipeline, decoders

data = preset("cpu").data
scan = pipeline.scan_folder(sys.argv[1], data)
stats = pipeline.compute_stats(scan, data)
train = next(iter(pipeline.make_dataset(scan, data, stats, 3, seed=1)))
evals = list(pipeline.make_dataset(scan, data, stats, 4, training=False, with_labels=True))
print(json.dumps({
    "codecs": sorted({i.codec for i in scan.infos}),
    "n_files": len(scan.paths),
    "stats": [list(stats.mean.shape),
              bool(np.all(np.isfinite(stats.mean)) and np.all(np.isfinite(stats.std)))],
    "train": train.shape.as_list(),
    "train_range": [float(train.numpy().min()), float(train.numpy().max())],
    "train_std": float(train.numpy().std()),
    "eval": [e[0].shape.as_list() for e in evals],
    "labels": sorted(int(l) for e in evals for l in e[1].numpy()),
}))
"""


def test_fallback_without_tensorflow_io(good_folder, helpers):
    GOOD_FILES = helpers.GOOD_FILES
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONWARNINGS")}
    env["TFGAN_DISABLE_TFIO"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    repo = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT, str(good_folder)],
                          env=env, capture_output=True, text=True, timeout=120, cwd=repo)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    n = len(GOOD_FILES)
    assert out["codecs"] == ["python"]
    assert out["n_files"] == n
    assert out["stats"] == [[64], True]
    assert out["train"] == [3, 64, 64, 1]
    assert -1.0 <= out["train_range"][0] < out["train_range"][1] <= 1.0
    assert out["train_std"] > 0.05
    assert out["eval"] == [[4, 64, 64, 1], [n - 4, 64, 64, 1]]
    assert out["labels"] == sorted(f[-1] for f in GOOD_FILES)
    warning_lines = [l for l in proc.stderr.splitlines() if "Warning" in l]
    fallback = [l for l in warning_lines if "soundfile" in l]
    assert len(fallback) == 1, proc.stderr[-3000:]
    assert "TFGAN_DISABLE_TFIO" in fallback[0]
