"""Tests for the built-in procedural dataset (tfgan.data.synthetic)."""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from tfgan.data import synthetic
from tfgan.data.synthetic import BUILTIN_CLASSES, synthesize, write_builtin_dataset

SR = 16000
# Files per class measured by the signature tests: enough to catch a class that only
# sometimes has its signature, few enough to keep the module at a few seconds.
N_MEASURED = 4


def _wav_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.wav"))


def _contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in _wav_files(root)}


def _mtimes(root: Path) -> dict[str, int]:
    paths = _wav_files(root) + [root / ".complete"]
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in paths}


def _examples(cls: str, n: int = N_MEASURED) -> list[np.ndarray]:
    """The first ``n`` examples of a class exactly as the dataset writer seeds them."""
    ci = BUILTIN_CLASSES.index(cls)
    return [synthesize(cls, np.random.default_rng([0, ci, i]), SR) for i in range(n)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_builtin_dataset(tmp_path_factory.mktemp("ds") / "builtin", per_class=3)


# --------------------------------------------------------------------------------------
# synthesize
# --------------------------------------------------------------------------------------


def test_classes_are_the_documented_ten():
    assert BUILTIN_CLASSES == (
        "sine", "square", "sawtooth", "chirp_up", "chirp_down",
        "pluck", "fm_bell", "kick", "snare", "hihat",
    )


def test_unknown_class_raises():
    with pytest.raises(ValueError, match="Received: cls='violin'"):
        synthesize("violin", np.random.default_rng(0))


@pytest.mark.parametrize("cls", BUILTIN_CLASSES)
def test_synthesize_contract(cls):
    for seed in range(3):
        y = synthesize(cls, np.random.default_rng(seed), sample_rate=SR)
        assert y.dtype == np.float32 and y.shape == (SR,)
        assert np.all(np.isfinite(y))
        assert 0.3 <= np.max(np.abs(y)) <= 0.9
        np.testing.assert_array_equal(y, synthesize(cls, np.random.default_rng(seed), SR))
    # Different draws must actually differ (random pitch, tempo, envelope...).
    a = synthesize(cls, np.random.default_rng(1), SR)
    b = synthesize(cls, np.random.default_rng(2), SR)
    assert not np.allclose(a, b)


@pytest.mark.parametrize("sample_rate,seconds", [(8000, 0.52), (22050, 1.0)])
def test_synthesize_other_rates_and_durations(sample_rate, seconds):
    for cls in BUILTIN_CLASSES:
        y = synthesize(cls, np.random.default_rng(0), sample_rate, seconds)
        assert y.shape == (int(round(sample_rate * seconds)),)
        assert np.all(np.isfinite(y)) and 0.3 <= np.max(np.abs(y)) <= 0.9


# --------------------------------------------------------------------------------------
# write_builtin_dataset: layout, determinism, caching
# --------------------------------------------------------------------------------------


def test_layout(dataset):
    assert sorted(p.name for p in dataset.iterdir() if p.is_dir()) == sorted(BUILTIN_CLASSES)
    assert (dataset / ".complete").is_file()
    for cls in BUILTIN_CLASSES:
        names = sorted(p.name for p in (dataset / cls).iterdir())
        assert names == [f"{cls}_{i:03d}.wav" for i in range(3)]
        for name in names:
            info = sf.info(dataset / cls / name)
            assert (info.samplerate, info.channels, info.frames) == (SR, 1, SR)
            assert info.format == "WAV" and info.subtype == "PCM_16"
            y, _ = sf.read(dataset / cls / name, dtype="float32")
            assert np.all(np.isfinite(y))
            assert np.sqrt(np.mean(y**2)) > 0.01, f"{name} is (nearly) silent"


def test_files_match_synthesize(dataset):
    # The writer must seed each file from [seed, class_index, file_index], so a file can
    # be reproduced on its own, independently of per_class.
    y, _ = sf.read(dataset / "fm_bell" / "fm_bell_002.wav", dtype="float32")
    ref = synthesize("fm_bell", np.random.default_rng([0, 6, 2]), SR)
    np.testing.assert_allclose(y, ref, atol=1.0 / 32767 + 1e-6)


def test_deterministic_across_writes(dataset, tmp_path):
    again = write_builtin_dataset(tmp_path / "again", per_class=3)
    assert _contents(again) == _contents(dataset)
    other = write_builtin_dataset(tmp_path / "other", per_class=3, seed=1)
    a, b = _contents(dataset), _contents(other)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a)


def test_second_call_does_not_rewrite(tmp_path, monkeypatch):
    root = write_builtin_dataset(tmp_path / "ds", per_class=1)
    before = _mtimes(root)

    def must_not_run(*args, **kwargs):
        raise AssertionError("a complete dataset must be returned without regenerating it")

    monkeypatch.setattr(synthetic, "synthesize", must_not_run)
    assert write_builtin_dataset(tmp_path / "ds", per_class=1) == root
    assert _mtimes(root) == before


def test_recognises_caches_written_before_the_cache_module(tmp_path, monkeypatch):
    # The marker exactly as the first version wrote it (the default cache under
    # ~/.cache/tfgan holds this): it must still mean "complete", not trigger a rebuild.
    root = tmp_path / "builtin-v1-sr16000-n64-s0"
    root.mkdir()
    (root / ".complete").write_text(
        '{"version": 1, "classes": ["sine", "square", "sawtooth", "chirp_up", "chirp_down", '
        '"pluck", "fm_bell", "kick", "snare", "hihat"], "per_class": 64, '
        '"sample_rate": 16000, "seed": 0}'
    )

    def must_not_run(*args, **kwargs):
        raise AssertionError("an existing complete cache must not be regenerated")

    monkeypatch.setattr(synthetic, "synthesize", must_not_run)
    monkeypatch.setenv("TFGAN_CACHE", str(tmp_path))
    assert write_builtin_dataset() == root


def test_marker_format_is_unchanged(dataset):
    # Byte-for-byte what existing caches hold, so old and new code agree on "complete".
    assert (dataset / ".complete").read_text() == (
        '{"version": 1, "classes": ["sine", "square", "sawtooth", "chirp_up", "chirp_down", '
        '"pluck", "fm_bell", "kick", "snare", "hihat"], "per_class": 3, '
        '"sample_rate": 16000, "seed": 0}'
    )


def test_regenerates_after_crash(tmp_path, dataset):
    root = tmp_path / "ds"
    # What a crashed writer leaves: an orphaned temporary sibling...
    orphan = tmp_path / ".ds.tmp-crashed"
    (orphan / "kick").mkdir(parents=True)
    (orphan / "kick" / "kick_000.wav").write_bytes(b"garbage")
    old = 1_000_000_000
    os.utime(orphan, (old, old))
    # ...and, from an older non-atomic writer, a half-written root without its marker.
    (root / "sine").mkdir(parents=True)
    (root / "sine" / "sine_000.wav").write_bytes(b"truncated")

    assert write_builtin_dataset(root, per_class=3) == root
    assert (root / ".complete").is_file()
    assert _contents(root) == _contents(dataset)
    assert not orphan.exists(), "an hour-old temporary directory should be cleaned up"
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_regenerates_when_marker_missing(tmp_path):
    root = write_builtin_dataset(tmp_path / "ds", per_class=1)
    reference = _contents(root)
    (root / ".complete").unlink()
    (root / "hihat" / "hihat_000.wav").write_bytes(b"damaged")
    assert write_builtin_dataset(root, per_class=1) == root
    assert (root / ".complete").is_file()
    assert _contents(root) == reference


def test_other_arguments_replace_the_dataset(tmp_path):
    root = write_builtin_dataset(tmp_path / "ds", per_class=1)
    write_builtin_dataset(root, per_class=2)
    assert len(_wav_files(root)) == 2 * len(BUILTIN_CLASSES)


def test_refuses_to_delete_foreign_directory(tmp_path):
    root = tmp_path / "my_music"
    root.mkdir()
    (root / "song.wav").write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        write_builtin_dataset(root, per_class=1)
    assert (root / "song.wav").read_bytes() == b"precious"


def test_default_root_uses_cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TFGAN_CACHE", str(tmp_path / "cache"))
    assert synthetic.default_cache_dir() == tmp_path / "cache"
    root = write_builtin_dataset(per_class=1, sample_rate=8000, seed=3)
    assert root == tmp_path / "cache" / "builtin-v1-sr8000-n1-s3"
    assert len(_wav_files(root)) == len(BUILTIN_CLASSES)
    monkeypatch.delenv("TFGAN_CACHE")
    assert synthetic.default_cache_dir() == Path.home() / ".cache" / "tfgan"


def test_concurrent_writers_agree(tmp_path):
    root = tmp_path / "ds"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: write_builtin_dataset(root, per_class=1), range(4)))
    assert results == [root] * 4
    assert (root / ".complete").is_file()
    assert len(_wav_files(root)) == len(BUILTIN_CLASSES)
    # Losers must have removed their temporary copies.
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


# --------------------------------------------------------------------------------------
# Class signatures
# --------------------------------------------------------------------------------------


def _centroid(y: np.ndarray) -> float:
    """Spectral centroid (Hz) of the whole file's power spectrum."""
    power = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1.0 / SR)
    return float(np.sum(power * freqs) / np.sum(power))


def test_drum_brightness_order():
    kick = [_centroid(y) for y in _examples("kick")]
    snare = [_centroid(y) for y in _examples("snare")]
    hihat = [_centroid(y) for y in _examples("hihat")]
    assert max(kick) < 400, kick  # a low body, not noise
    assert min(hihat) > max(snare), (hihat, snare)
    assert min(snare) > 3 * max(kick), (snare, kick)


def _peak_steps(y: np.ndarray) -> tuple[int, int]:
    """Counts rises and falls of the per-frame peak frequency over loud frames."""
    mag = np.abs(librosa.stft(y, n_fft=2048, hop_length=256))
    peak_bin = mag.argmax(axis=0).astype(float)
    loud = mag.max(axis=0) > 0.1 * mag.max()
    steps = np.diff(peak_bin)[loud[1:] & loud[:-1]]
    return int(np.sum(steps > 0)), int(np.sum(steps < 0))


@pytest.mark.parametrize("cls", ["chirp_up", "chirp_down"])
def test_chirp_direction(cls):
    # Within a sweep the peak moves steadily one way; only the wrap to the next segment
    # (a few times a second) jumps the other way, so one direction must dominate.
    for y in _examples(cls):
        rises, falls = _peak_steps(y)
        if cls == "chirp_up":
            assert rises >= 20 and rises > 4 * falls, (rises, falls)
        else:
            assert falls >= 20 and falls > 4 * rises, (rises, falls)


def _inharmonic_peaks(y: np.ndarray) -> np.ndarray:
    """Strong spectral peaks (within 40 dB of the top) that are not harmonics of f0.

    A naively sampled square or sawtooth folds its partials above Nyquist back as
    peaks at arbitrary, inharmonic frequencies; summing band-limited partials leaves
    none. The tolerance around each harmonic allows for the tones' slight vibrato.
    """
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1.0 / SR)
    db = 20.0 * np.log10(spec / spec.max() + 1e-12)
    peaks, _ = signal.find_peaks(db, height=-40.0, distance=20)
    # f0: power-weighted mean frequency around the lowest strong peak (the fundamental),
    # which is the vibrato's centre even when a sideband is the tallest bin.
    lo, hi = int(peaks[0] * 0.97), int(peaks[0] * 1.03) + 2
    power = spec[lo:hi] ** 2
    f0 = np.sum(freqs[lo:hi] * power) / np.sum(power)
    f = freqs[peaks]
    k = np.maximum(np.round(f / f0), 1.0)
    return f[np.abs(f - k * f0) > 0.01 * k * f0 + 15.0]


@pytest.mark.parametrize("cls", ["sine", "square", "sawtooth"])
def test_tones_are_band_limited(cls):
    for y in _examples(cls):
        assert len(_inharmonic_peaks(y)) == 0, (cls, _inharmonic_peaks(y)[:5])


def test_tones_are_not_noise():
    def flatness(y):
        return float(np.median(librosa.feature.spectral_flatness(y=y)))

    hihat = min(flatness(y) for y in _examples("hihat"))
    for cls in ("sine", "square", "sawtooth"):
        tone = max(flatness(y) for y in _examples(cls))
        assert tone < 0.1 * hihat, (cls, tone, hihat)


@pytest.mark.parametrize("cls", ["kick", "snare", "hihat", "pluck", "fm_bell"])
def test_repeated_onsets(cls):
    # Training uses random ~0.5 s crops, so hits and strikes must recur through the whole
    # second, not only at its start.
    for y in _examples(cls):
        onsets = librosa.onset.onset_detect(y=y, sr=SR, units="time")
        assert len(onsets) >= 2, (cls, onsets)
        if cls in ("kick", "snare", "hihat"):
            gaps = np.diff(np.concatenate([[0.0], onsets, [1.0]]))
            assert gaps.max() < 0.5, (cls, onsets)
