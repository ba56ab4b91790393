"""Tests for tfgan.data.pipeline on folders of real files, good and bad."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from tfgan import audio
from tfgan.data import pipeline

BATCH = 4


def _scan(root, data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan = pipeline.scan_folder(root, data)
    return scan, [w for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.fixture(scope="module")
def good_scan(good_folder, cpu_data):
    scan, caught = _scan(good_folder, cpu_data)
    assert caught == []
    return scan


@pytest.fixture(scope="module")
def mixed(mixed_folder, cpu_data):
    root, bad = mixed_folder
    scan, caught = _scan(root, cpu_data)
    return root, bad, scan, caught


@pytest.fixture(scope="module")
def stats(good_scan, cpu_data):
    return pipeline.compute_stats(good_scan, cpu_data)


def _rel(root, paths):
    return sorted(Path(p).relative_to(root).as_posix() for p in paths)


def _tone_bin(freq, data):
    return int(round(freq * data.n_fft / data.sample_rate))


# --------------------------------------------------------------------------------- scan


def test_scan_good_folder(good_folder, good_scan, helpers):
    assert _rel(good_folder, good_scan.paths) == sorted(f[0] for f in helpers.GOOD_FILES)
    assert good_scan.skipped == []
    assert good_scan.class_names == helpers.CLASS_NAMES
    expected = {f[0]: f[-1] for f in helpers.GOOD_FILES}
    for path, label, info in zip(good_scan.paths, good_scan.labels, good_scan.infos):
        rel = Path(path).relative_to(good_folder).as_posix()
        assert label == expected[rel], rel
        spec = next(f for f in helpers.GOOD_FILES if f[0] == rel)
        assert (info.rate, info.channels) == (spec[3], spec[4])
    assert good_scan.paths == sorted(good_scan.paths)


def test_scan_keeps_exactly_the_good_files(mixed, helpers):
    root, bad, scan, _ = mixed
    assert _rel(root, scan.paths) == sorted(f[0] for f in helpers.GOOD_FILES)
    # The non-ASCII name with spaces is kept.
    assert any(Path(p).name == "Grüße café 01.wav" for p in scan.paths)
    # A sub-folder holding only bad files is not a class.
    assert scan.class_names == helpers.CLASS_NAMES
    assert "ghosts" not in scan.class_names


def test_scan_reports_every_bad_file_with_its_reason(mixed):
    root, bad, scan, _ = mixed
    reasons = {Path(p).relative_to(root).as_posix(): why for p, why in scan.skipped}
    assert sorted(reasons) == sorted(bad)
    expected = {
        "empty": "not readable",
        "truncated": "not readable",
        "text": "not readable",
        "silent": "silent",
        "nan": "NaN",
        "short": "too short",
    }
    for rel, kind in bad.items():
        assert expected[kind] in reasons[rel], (rel, reasons[rel])


def test_scan_warns_once_with_counts(mixed, helpers):
    root, bad, scan, caught = mixed
    assert len(caught) == 1
    msg = str(caught[0].message)
    n_good = len(helpers.GOOD_FILES)
    assert f"Skipped {len(bad)} of {len(bad) + n_good} audio files" in msg
    assert str(root) in msg
    assert "and 1 more" in msg  # five are listed, the sixth is counted
    assert scan.summary() == (f"{n_good} usable audio files in 2 classes under {root}, "
                              f"{len(bad)} skipped")


def test_scan_ignores_other_and_hidden_files(tmp_path, cpu_data, helpers):
    good = helpers.tone(1000, 0.6, 8000)
    helpers.write_audio(tmp_path / "a.WAV", good, 8000, "WAV", "PCM_16")  # any case
    helpers.write_audio(tmp_path / ".hidden" / "b.wav", good, 8000, "WAV", "PCM_16")
    helpers.write_audio(tmp_path / "c.aiff", good, 8000, "AIFF", "PCM_16")
    (tmp_path / "readme.txt").write_text("hi")
    scan, caught = _scan(tmp_path, cpu_data)
    assert [Path(p).name for p in scan.paths] == ["a.WAV"]
    assert scan.labels == [-1] and scan.class_names == []
    assert caught == []


def test_missing_folder_raises(tmp_path, cpu_data):
    missing = tmp_path / "no such folder"
    with pytest.raises(pipeline.DataError, match="does not exist") as e:
        pipeline.scan_folder(missing, cpu_data)
    assert str(missing) in str(e.value)


def test_empty_folder_raises(tmp_path, cpu_data):
    (tmp_path / "sub").mkdir()
    (tmp_path / "notes.txt").write_text("no audio here")
    with pytest.raises(pipeline.DataError, match="No audio files") as e:
        pipeline.scan_folder(tmp_path, cpu_data)
    assert str(tmp_path) in str(e.value)


def test_file_instead_of_folder_raises(tmp_path, cpu_data):
    path = tmp_path / "x.wav"
    path.write_bytes(b"")
    with pytest.raises(pipeline.DataError, match="not a folder") as e:
        pipeline.scan_folder(path, cpu_data)
    assert str(path) in str(e.value)


def test_only_bad_files_raises(tmp_path, cpu_data, helpers):
    helpers.write_bad_files(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(pipeline.DataError, match="No usable audio file") as e:
            pipeline.scan_folder(tmp_path, cpu_data)
    assert str(tmp_path) in str(e.value)


# -------------------------------------------------------------------------------- stats


def test_stats_from_good_files_only(mixed, good_scan, stats, cpu_data):
    _, _, scan, _ = mixed
    assert stats.mean.shape == stats.std.shape == (cpu_data.n_bins,)
    assert np.all(np.isfinite(stats.mean)) and np.all(np.isfinite(stats.std))
    assert np.all(stats.std >= 1e-3)
    assert stats.num_examples == len(good_scan.paths) * pipeline.STATS_CROPS
    assert stats.data == cpu_data
    mixed_stats = pipeline.compute_stats(scan, cpu_data)
    np.testing.assert_allclose(mixed_stats.mean, stats.mean, rtol=1e-6)
    np.testing.assert_allclose(mixed_stats.std, stats.std, rtol=1e-6)
    assert mixed_stats.num_examples == stats.num_examples


def test_stats_see_the_tones(stats, cpu_data, helpers):
    """Bins that hold a tone in some file have a higher mean than bins that never do."""
    tone_bins = {_tone_bin(f[6], cpu_data) for f in helpers.GOOD_FILES}
    quiet_bins = [b for b in range(4, cpu_data.n_bins)
                  if all(abs(b - t) > 2 for t in tone_bins)]
    # Each tone is in one file of seven: its bin mean sits ~0.7 above the noise floor.
    assert min(stats.mean[sorted(tone_bins)]) > max(stats.mean[quiet_bins]) + 0.4


# ------------------------------------------------------------------------------ dataset


def _first(ds):
    return next(iter(ds)).numpy()


def test_training_batches(good_scan, stats, cpu_data):
    ds = pipeline.make_dataset(good_scan, cpu_data, stats, BATCH, seed=0)
    assert ds.element_spec.shape.as_list() == [BATCH, 64, 64, 1]
    batches = [b.numpy() for b in ds.take(3)]
    for b in batches:
        assert b.shape == (BATCH, 64, 64, 1)
        assert b.dtype == np.float32
        assert np.all(np.isfinite(b))
        assert b.min() >= -1.0 and b.max() <= 1.0
        assert b.std() > 0.05  # not all equal
        # Examples differ (one-shot files give one onset-aligned clip each, so the same
        # file twice in a batch is the same clip; most pairs still differ).
        assert len({x.tobytes() for x in b}) > 1
    # Training repeats forever: more batches than files.
    assert len(batches) * BATCH > len(good_scan.paths)


def test_training_seeds(good_scan, stats, cpu_data):
    a = _first(pipeline.make_dataset(good_scan, cpu_data, stats, BATCH, seed=0))
    b = _first(pipeline.make_dataset(good_scan, cpu_data, stats, BATCH, seed=1))
    again = _first(pipeline.make_dataset(good_scan, cpu_data, stats, BATCH, seed=0))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, again)


def test_eval_yields_every_file_once_with_its_label(good_folder, good_scan, stats, cpu_data,
                                                    helpers):
    ds = pipeline.make_dataset(good_scan, cpu_data, stats, BATCH, training=False,
                               with_labels=True)
    specs, labels = [], []
    for spec, label in ds:
        assert spec.dtype == tf.float32 and label.dtype == tf.int32
        assert spec.shape[1:] == (64, 64, 1)
        specs.append(spec.numpy())
        labels.append(label.numpy())
    specs, labels = np.concatenate(specs), np.concatenate(labels)
    n = len(helpers.GOOD_FILES)
    assert specs.shape == (n, 64, 64, 1)  # the last batch is kept, not dropped
    assert np.all(np.abs(specs) <= 1.0)
    # Trace each spectrogram back to its file by the bin its tone lands in.
    by_bin = {_tone_bin(f[6], cpu_data): f for f in helpers.GOOD_FILES}
    seen = []
    for spec, label in zip(specs, labels):
        profile = spec[..., 0].mean(axis=1)
        peak = int(np.argmax(profile))
        nearest = min(by_bin, key=lambda b: abs(b - peak))
        assert abs(nearest - peak) <= 1
        f = by_bin[nearest]
        seen.append(f[0])
        assert label == f[-1], f[0]
    assert sorted(seen) == sorted(f[0] for f in helpers.GOOD_FILES)
    # In scan order.
    assert seen == _rel_list(good_folder, good_scan.paths)


def _rel_list(root, paths):
    return [Path(p).relative_to(root).as_posix() for p in paths]


def test_eval_without_labels_is_deterministic(good_scan, stats, cpu_data):
    ds = pipeline.make_dataset(good_scan, cpu_data, stats, 16, training=False)
    a = _first(ds)
    assert a.shape == (len(good_scan.paths), 64, 64, 1)
    np.testing.assert_array_equal(_first(ds), a)


# ------------------------------------------------------------- files scan lets through


def _assert_pipeline_reads_all(scan, data):
    st = audio.Stats(np.zeros(data.n_bins, np.float32), np.ones(data.n_bins, np.float32), data)
    ds = pipeline.make_dataset(scan, data, st, 8, training=False)
    assert sum(int(b.shape[0]) for b in ds) == len(scan.paths)


def test_wav_truncated_in_its_data_is_skipped_or_readable(tmp_path, cpu_data, helpers):
    helpers.write_audio(tmp_path / "ok.wav", helpers.tone(1000, 0.6, 8000), 8000, "WAV",
                        "PCM_16")
    full = tmp_path / "full.tmp"
    helpers.write_audio(full, helpers.tone(1000, 1.0, 8000), 8000, "WAV", "PCM_16")
    data = full.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    full.unlink()
    assert sf.info(str(tmp_path / "cut.wav")).frames < 8000  # really cut short
    scan, _ = _scan(tmp_path, cpu_data)
    _assert_pipeline_reads_all(scan, cpu_data)


def test_pcm24_odd_length_wav_is_readable(tmp_path, cpu_data, helpers):
    audio_ = helpers.tone(1000, 11025 / 22050, 22050)
    assert audio_.shape[0] % 2 == 1
    helpers.write_audio(tmp_path / "odd24.wav", audio_, 22050, "WAV", "PCM_24")
    scan, _ = _scan(tmp_path, cpu_data)
    assert len(scan.paths) == 1  # a valid file: kept
    _assert_pipeline_reads_all(scan, cpu_data)
