"""The spectrogram classifier behind IS and FD: split, training, caching, refusals."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from tfgan.eval import classifier as clf_lib

TINY = clf_lib.ClassifierOptions(width=4, epochs=3, random_crops=2, batch_size=16)


@pytest.fixture(scope="module")
def builtin_small(tmp_path_factory):
    """The built-in dataset's ten classes, 10 files each (the same sound design, 8 kHz)."""
    from tfgan.config import preset
    from tfgan.data import pipeline
    from tfgan.data.synthetic import write_builtin_dataset

    root = write_builtin_dataset(tmp_path_factory.mktemp("builtin") / "b", per_class=10,
                                 sample_rate=8000)
    cfg = preset("cpu").data
    scan = pipeline.scan_folder(root, cfg)
    return scan, cfg, pipeline.compute_stats(scan, cfg)


def test_stratified_split_holds_out_a_fifth_of_each_class():
    labels = [0] * 10 + [1] * 5 + [2] + [-1] * 3
    train, test = clf_lib.stratified_split(labels, seed=3)
    assert not set(train) & set(test)
    assert sorted(train + test) == list(range(16))  # unlabelled files are left out
    assert [labels[i] for i in test].count(0) == 2 and [labels[i] for i in test].count(1) == 1
    assert 15 in train  # a class of one file keeps it for training
    assert clf_lib.stratified_split(labels, seed=3) == (train, test)  # seeded


def test_three_way_split_keeps_scored_files_away_from_the_classifier():
    import types

    labels = [0] * 12 + [1] * 8 + [-1] * 2
    scan = types.SimpleNamespace(labels=labels, class_names=["a", "b"])
    train, a, b = clf_lib.three_way_split(scan, seed=5)
    # Disjoint: no scored file trained the classifier, no file is in both real sets.
    assert not (set(train) & set(a)) and not (set(train) & set(b)) and not (set(a) & set(b))
    assert sorted(train + a + b) == list(range(20))  # every labelled file, once
    assert [labels[i] for i in train].count(0) == 6 and [labels[i] for i in a].count(0) == 3
    assert clf_lib.three_way_split(scan, seed=5) == (train, a, b)
    assert clf_lib.three_way_split(scan, seed=6) != (train, a, b)
    # Too few files to give each part two per class, or one class: no split.
    assert clf_lib.three_way_split(types.SimpleNamespace(labels=[0] * 4 + [1] * 4,
                                                         class_names=["a", "b"])) is None
    assert clf_lib.three_way_split(types.SimpleNamespace(labels=[0] * 9,
                                                         class_names=["a"])) is None
    # Enough files in all, but one class too small to give every part two of it.
    assert clf_lib.three_way_split(types.SimpleNamespace(labels=[0] * 40 + [1] * 4,
                                                         class_names=["a", "b"])) is None


def test_classifier_beats_chance_and_is_cached(builtin_small, tmp_path):
    scan, cfg, stats = builtin_small
    first = clf_lib.get_classifier(scan, cfg, stats, TINY, cache_dir=tmp_path, stream=None)
    meta = first.meta
    assert meta["n_classes"] == 10 and meta["class_names"] == scan.class_names
    assert meta["test_files"] == 20 and meta["train_files"] == 80
    assert meta["train_examples"] == 80 * (1 + TINY.random_crops)
    assert meta["chance"] == pytest.approx(0.1)
    # Even this tiny classifier (width 4, 3 epochs) is far above chance on held-out files.
    assert meta["accuracy"] >= 0.3, meta["accuracy"]
    assert meta["cached"] is False

    x = np.random.default_rng(0).uniform(-1, 1, [5, 64, 64, 1]).astype(np.float32)
    probs, emb = first.predict(x)
    assert probs.shape == (5, 10) and emb.shape == (5, clf_lib.EMBEDDING_DIM)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)

    t0 = time.perf_counter()
    again = clf_lib.get_classifier(scan, cfg, stats, TINY, cache_dir=tmp_path, stream=None)
    assert time.perf_counter() - t0 < 10  # loaded, not retrained
    assert again.meta["cached"] is True and again.meta["cache_path"] == meta["cache_path"]
    assert again.accuracy == meta["accuracy"]
    np.testing.assert_allclose(again.predict(x)[0], probs, rtol=1e-5, atol=1e-6)


def test_cache_key_follows_data_stats_and_options(builtin_small):
    scan, cfg, stats = builtin_small
    key = clf_lib.cache_key(scan, cfg, stats, TINY)
    assert key == clf_lib.cache_key(scan, cfg, stats, TINY)
    other_stats = dataclasses.replace(stats, std=stats.std * 1.01)
    fewer = dataclasses.replace(scan, paths=scan.paths[:-1], infos=scan.infos[:-1],
                                labels=scan.labels[:-1])
    others = {clf_lib.cache_key(scan, cfg, other_stats, TINY),
              clf_lib.cache_key(fewer, cfg, stats, TINY),
              clf_lib.cache_key(scan, dataclasses.replace(cfg, scale="mel", n_fft=256), stats,
                                TINY),
              clf_lib.cache_key(scan, cfg, stats, dataclasses.replace(TINY, epochs=4))}
    assert key not in others and len(others) == 4


def test_unlabelled_data_is_refused(tmp_path, builtin_small, helpers):
    from tfgan.data import pipeline

    _, cfg, stats = builtin_small
    for i in range(3):
        helpers.write_audio(tmp_path / f"{i}.wav", helpers.tone(500 * (i + 1), 0.7, 8000),
                            8000, "WAV", "PCM_16")
    scan = pipeline.scan_folder(tmp_path, cfg)
    with pytest.raises(clf_lib.NoLabelsError, match="at least 2"):
        clf_lib.get_classifier(scan, cfg, stats, TINY, cache_dir=tmp_path / "cache", stream=None)
    with pytest.raises(ValueError, match="n_classes=1"):
        clf_lib.build_classifier(64, 1)
