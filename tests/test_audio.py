"""Tests for tfgan.audio: spectrogram layout, normalisation, Griffin-Lim, WAV helpers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfgan import audio
from tfgan.config import preset

# Griffin-Lim at the cpu preset (8 kHz, n_fft 128, hop 64), starting from zero phase.
# Measured spectral convergence (TF 2.16.2, x86-64 CPU):
#                  1 iter   32 iters
#   harmonic tone  0.448    0.104
#   chirp          0.278    0.063
# The bound below holds with >= 30% margin at 32 iterations and is beaten by far by 1
# iteration, so the test fails if Griffin-Lim stops converging.
GL_ITERS = 32
GL_BOUND = 0.15


@pytest.fixture(scope="module")
def data():
    return preset("cpu").data


def _t(data):
    return np.arange(data.clip_samples) / data.sample_rate


def harmonic(data):
    t = _t(data)
    return sum(0.3 / k * np.sin(2 * np.pi * 220 * k * t + k) for k in range(1, 6)).astype(
        np.float32)


def chirp(data):
    t = _t(data)
    f0, f1, dur = 200.0, 3000.0, data.clip_samples / data.sample_rate
    return (0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * dur) * t ** 2))).astype(
        np.float32)


def stats_for(log_mag: np.ndarray, data) -> audio.Stats:
    axes = tuple(i for i in range(log_mag.ndim) if i != log_mag.ndim - 2)
    return audio.Stats(log_mag.mean(axis=axes).astype(np.float32),
                       np.maximum(log_mag.std(axis=axes), 1e-3).astype(np.float32), data)


# --------------------------------------------------------------------------- layout


def test_log_magnitude_shape(data):
    waves = tf.random.normal([3, 2, data.clip_samples])
    spec = audio.log_magnitude(waves, data)
    assert spec.shape == (3, 2, data.n_bins, data.n_frames)
    assert spec.dtype == tf.float32
    # The floor is log(LOG_EPS): silence is exactly the floor, never -inf.
    silent = audio.log_magnitude(tf.zeros([data.clip_samples]), data).numpy()
    np.testing.assert_allclose(silent, np.log(audio.LOG_EPS), rtol=1e-6)


@pytest.mark.parametrize("freq", [500.0, 1250.0, 3000.0])
def test_sine_lands_in_its_bin(data, freq):
    t = _t(data)
    wave = tf.constant(np.sin(2 * np.pi * freq * t), tf.float32)
    spec = audio.log_magnitude(wave, data).numpy()  # [bins, frames]
    expected_bin = freq * data.n_fft / data.sample_rate
    assert expected_bin == int(expected_bin)
    # Every frame peaks at the tone's bin: rows are frequencies, columns are time.
    np.testing.assert_array_equal(spec.argmax(axis=0), int(expected_bin))


def test_row_zero_is_lowest_frequency(data):
    t = _t(data)
    low = audio.log_magnitude(tf.constant(np.sin(2 * np.pi * 250 * t), tf.float32), data)
    high = audio.log_magnitude(tf.constant(np.sin(2 * np.pi * 3500 * t), tf.float32), data)
    assert int(np.argmax(low.numpy().mean(axis=1))) == 4  # 250 Hz / 62.5 Hz
    assert int(np.argmax(high.numpy().mean(axis=1))) == 56
    # DC lands in row 0.
    dc = audio.log_magnitude(tf.fill([data.clip_samples], 0.5), data).numpy()
    assert np.all(dc.argmax(axis=0) == 0)


# --------------------------------------------------------------------- normalisation


def test_normalise_range_and_inverse(data):
    rng = np.random.default_rng(0)
    log_mag = rng.normal(-3.0, 2.0, size=[4, data.n_bins, data.n_frames]).astype(np.float32)
    stats = audio.Stats(rng.normal(-3.0, 0.5, data.n_bins).astype(np.float32),
                        rng.uniform(0.3, 1.0, data.n_bins).astype(np.float32), data)
    norm = audio.normalise(tf.constant(log_mag), stats).numpy()
    assert norm.shape == log_mag.shape
    assert norm.min() >= -1.0 and norm.max() <= 1.0
    clipped = np.abs(norm) >= 1.0
    assert 0 < clipped.mean() < 0.5  # both cases exercised
    back = audio.denormalise(tf.constant(norm), stats).numpy()
    np.testing.assert_allclose(back[~clipped], log_mag[~clipped], rtol=1e-5, atol=1e-5)
    # Per bin: (x - mean) / (3 std).
    b = 7
    expected = np.clip((log_mag[0, b] - stats.mean[b]) / (3 * stats.std[b]), -1, 1)
    np.testing.assert_allclose(norm[0, b], expected, rtol=1e-5, atol=1e-6)


def test_stats_save_load_round_trip(tmp_path, data):
    rng = np.random.default_rng(1)
    mel = dataclasses.replace(data, scale="mel", fmin=30.0, data_dir="/x")
    stats = audio.Stats(rng.normal(size=64).astype(np.float32),
                        rng.uniform(0.1, 2, 64).astype(np.float32), mel, num_examples=123)
    path = tmp_path / "stats.json"
    stats.save(path)
    back = audio.Stats.load(path)
    np.testing.assert_array_equal(back.mean, stats.mean)
    np.testing.assert_array_equal(back.std, stats.std)
    assert back.mean.dtype == np.float32
    assert back.data == mel
    assert back.num_examples == 123
    assert not (tmp_path / "stats.json.tmp").exists()


# ----------------------------------------------------------------------- Griffin-Lim


@pytest.mark.parametrize("make", [harmonic, chirp], ids=["harmonic", "chirp"])
def test_griffin_lim_round_trip(data, make):
    x = tf.constant(make(data))
    mag = tf.abs(audio.stft(x, data))
    y = audio.griffin_lim(mag, data, n_iter=GL_ITERS)
    assert y.shape == (data.clip_samples,)
    sc = float(audio.spectral_convergence(x, y, data))
    assert sc < GL_BOUND
    # One iteration is clearly worse: the bound is tight enough to catch a broken GL.
    sc1 = float(audio.spectral_convergence(x, audio.griffin_lim(mag, data, n_iter=1), data))
    assert sc1 > 1.5 * GL_BOUND
    assert sc1 > 2 * sc


def test_griffin_lim_is_deterministic_and_batched(data):
    xs = tf.constant(np.stack([harmonic(data), chirp(data)]))
    mag = tf.abs(audio.stft(xs, data))
    a = audio.griffin_lim(mag, data, n_iter=4).numpy()
    b = audio.griffin_lim(mag[1], data, n_iter=4).numpy()
    assert a.shape == (2, data.clip_samples)
    np.testing.assert_allclose(a[1], b, atol=1e-5)


def test_spectral_convergence_is_zero_for_identity(data):
    x = tf.constant(chirp(data))
    assert float(audio.spectral_convergence(x, x, data)) == pytest.approx(0.0, abs=1e-7)
    assert float(audio.spectral_convergence(x, tf.zeros_like(x), data)) == pytest.approx(1.0)


def test_to_waveform_shape_and_range(data):
    waves = np.stack([harmonic(data), chirp(data)])
    log_mag = audio.log_magnitude(tf.constant(waves), data).numpy()
    stats = stats_for(log_mag, data)
    spec = audio.normalise(tf.constant(log_mag), stats)[..., None]  # [b, bins, frames, 1]
    wave = audio.to_waveform(spec, stats, n_iter=8).numpy()
    assert wave.shape == (2, data.clip_samples)
    assert np.all(np.isfinite(wave))
    assert np.abs(wave).max() <= 1.0 + 1e-6
    assert audio.rms(wave).min() > 0.05
    # Rank-3 input gives the same result as rank-4.
    np.testing.assert_allclose(audio.to_waveform(spec[..., 0], stats, n_iter=8).numpy(), wave,
                               atol=1e-6)


def test_to_waveform_only_scales_down(data):
    """A loud spectrogram is brought to peak 1; a quiet one keeps its level."""
    stats = audio.Stats(np.full(data.n_bins, 0.0, np.float32),
                        np.full(data.n_bins, 1.0, np.float32), data)
    loud = tf.fill([1, data.n_bins, data.n_frames], 1.0)  # log-mag 3: magnitudes e^3
    quiet = tf.fill([1, data.n_bins, data.n_frames], -1.0)  # e^-3
    loud_peak = np.abs(audio.to_waveform(loud, stats, n_iter=2).numpy()).max()
    quiet_peak = np.abs(audio.to_waveform(quiet, stats, n_iter=2).numpy()).max()
    assert loud_peak == pytest.approx(1.0, abs=1e-5)
    assert 0 < quiet_peak < 0.5


# ------------------------------------------------------------------------------- mel


def test_mel_scale(data):
    mel = dataclasses.replace(data, scale="mel")
    mel.validate()
    assert audio.mel_matrix(mel).shape == (data.n_fft // 2 + 1, data.n_bins)
    t = _t(data)
    low = audio.log_magnitude(tf.constant(np.sin(2 * np.pi * 300 * t), tf.float32), mel)
    high = audio.log_magnitude(tf.constant(np.sin(2 * np.pi * 3000 * t), tf.float32), mel)
    assert low.shape == (data.n_bins, data.n_frames)
    assert np.argmax(low.numpy().mean(1)) < np.argmax(high.numpy().mean(1))

    waves = np.stack([harmonic(data), chirp(data)])
    log_mag = audio.log_magnitude(tf.constant(waves), mel).numpy()
    assert log_mag.shape == (2, data.n_bins, data.n_frames)
    stats = stats_for(log_mag, mel)
    wave = audio.to_waveform(audio.normalise(tf.constant(log_mag), stats), stats,
                             n_iter=8).numpy()
    assert wave.shape == (2, data.clip_samples)
    assert np.all(np.isfinite(wave))
    assert audio.rms(wave).min() > 0.01
    assert np.abs(wave).max() <= 1.0 + 1e-6


def test_linear_magnitude_restores_nyquist_as_zero(data):
    x = tf.constant(harmonic(data))
    log_mag = audio.log_magnitude(x, data)
    lin = audio.linear_magnitude(log_mag, data).numpy()
    full = tf.abs(audio.stft(x, data)).numpy()
    assert lin.shape == full.shape == (data.n_frames, data.n_fft // 2 + 1)
    np.testing.assert_array_equal(lin[:, -1], 0.0)
    np.testing.assert_allclose(lin[:, :-1], full[:, :-1], rtol=1e-3, atol=1e-5)


# ------------------------------------------------------------------------ WAV helpers


@pytest.mark.parametrize("channels", [1, 2])
def test_write_read_wav_round_trip(tmp_path, channels):
    rng = np.random.default_rng(2)
    x = rng.uniform(-0.9, 0.9, size=[1000, channels]).astype(np.float32)
    if channels == 1:
        x = x[:, 0]
    path = tmp_path / "x.wav"
    audio.write_wav(path, x, 8000)
    back, rate = audio.read_wav(path)
    assert rate == 8000
    assert back.shape == (1000, channels)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back.reshape(x.shape), x, atol=1.0 / 32767 + 1e-7)


def test_write_wav_clips_and_removes_nan(tmp_path):
    path = tmp_path / "y.wav"
    audio.write_wav(path, np.array([2.0, -3.0, np.nan, 0.5], np.float32), 16000)
    back, rate = audio.read_wav(path)
    assert rate == 16000
    np.testing.assert_allclose(back[:, 0], [1.0, -1.0, 0.0, 0.5], atol=1.0 / 32767)
