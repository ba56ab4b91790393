"""`python -m tfgan.eval RUN` on tiny real runs: every field of eval.json, and refusals."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--samples", "40", "--classifier-epochs", "1", "--classifier-width", "4"]


def tiny_run(run: Path, data: Path, **train) -> Path:
    from tfgan.config import preset
    from tfgan.trainer import train as train_fn

    c = preset("cpu")
    config = dataclasses.replace(
        c, data=dataclasses.replace(c.data, data_dir=str(data)),
        model=dataclasses.replace(c.model, base_width=4, conditional=False),
        train=dataclasses.replace(c.train, steps=4, batch_size=8, log_every=1, sample_every=4,
                                  checkpoint_every=4, griffin_lim_iters=2, **train))
    train_fn(config, run, stream=io.StringIO())
    return run


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private classifier cache, so tests neither read nor fill the user's."""
    path = tmp_path_factory.mktemp("cache")
    old = os.environ.get("TFGAN_CACHE")
    os.environ["TFGAN_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("TFGAN_CACHE")
    else:
        os.environ["TFGAN_CACHE"] = old


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory, helpers):
    """Three classes (sub-folders) of twelve synthesised files each: six per class for the
    classifier, three for each real set."""
    root = tmp_path_factory.mktemp("ev")
    data = helpers.write_synth_folder(root / "data", 8000, ("sine", "chirp_up", "kick"),
                                      per_class=12)
    return tiny_run(root / "run", data, ema_decay=0.9)


def main(argv):
    from tfgan.eval.__main__ import main as eval_main

    return eval_main([str(a) for a in argv])


def test_eval_writes_every_field(labelled_run, cache, capsys):
    assert main([labelled_run, *ARGS]) == 0
    out = capsys.readouterr().out
    assert "IS" in out and "FD" in out and "NDB/K" in out and "eval.json" in out
    ev = json.loads((labelled_run / "eval.json").read_text())
    assert ev["step"] == 4 and ev["samples"] == 40 and ev["generator"] == "ema"
    assert ev["disc"] == "simple" and ev["classifier_reason"] is None
    clf = ev["classifier"]
    for key in ("accuracy", "chance", "n_classes", "class_names", "train_files", "test_files",
                "train_examples", "embedding_dim", "cache_path"):
        assert key in clf, key
    assert clf["n_classes"] == 3 and clf["cache_path"].startswith(str(cache))
    # The classifier learnt from half the files; the two real sets come from the rest.
    assert ev["files"] == {"classifier": 18, "a": 9, "b": 9}
    assert clf["train_files"] + clf["test_files"] == 18
    for name in ("inception_score", "frechet_distance"):
        m = ev[name]
        assert m["reason"] is None
        assert isinstance(m["generated"], float) and isinstance(m["real"], float)
    # A 4-step generator is far from the data; two real sets are close to each other, and
    # the classifier is confident about which class held-out real clips are.
    assert ev["inception_score"]["generated"] < ev["inception_score"]["real"]
    assert ev["frechet_distance"]["real"] < ev["frechet_distance"]["generated"]
    assert set(ev["class_histogram"]) == set(clf["class_names"])
    ndb = ev["ndb"]
    assert ndb["k"] == 4 and 0 <= ndb["real"]["ndb_over_k"] <= ndb["generated"]["ndb_over_k"]
    b = ev["balance"]
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "d_real_acc", "d_fake_acc",
                "d_grad_norm", "g_grad_norm"):
        assert np.isfinite(b["final"][key]) and np.isfinite(b["median"][key]), key
    for key in ("d_dominance", "g_loss_trend", "d_gap_median", "steps_per_sec",
                "train_seconds"):
        assert isinstance(b[key], float), key
    assert b["steps"] == 4 and b["num_records"] == 4 and b["non_finite_total"] == 0


def test_eval_without_labels_reports_why_and_still_scores_ndb(labelled_run, tmp_path, cache,
                                                               capsys):
    from tfgan.config import Config
    from tfgan.eval.evaluate import evaluate_run

    # The same run, pointed at a flat copy of its files: no sub-folders, so no labels.
    flat = tmp_path / "flat"
    flat.mkdir()
    config = Config.from_json((labelled_run / "config.json").read_text())
    for wav in Path(config.data.data_dir).rglob("*.wav"):
        shutil.copy(wav, flat / wav.name)
    run = tmp_path / "run"
    shutil.copytree(labelled_run, run)
    (run / "eval.json").unlink(missing_ok=True)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                  data_dir=str(flat)))
    (run / "config.json").write_text(config.to_json())
    ev = evaluate_run(run, 30, stream=None)
    for name in ("inception_score", "frechet_distance"):
        assert ev[name]["generated"] is None and ev[name]["real"] is None
        assert "class sub-folder" in ev[name]["reason"]
    assert ev["classifier"] is None and "class sub-folder" in ev["classifier_reason"]
    ndb = ev["ndb"]["generated"]  # scored without labels, in k = 3 bins
    assert ev["ndb"]["k"] == 3 and isinstance(ndb["ndb"], int)
    assert ndb["ndb_over_k"] == pytest.approx(ndb["ndb"] / 3)
    assert json.loads((run / "eval.json").read_text()) == ev
    assert main([run, "--samples", "30"]) == 0
    assert "no classifier" in capsys.readouterr().out


def test_eval_refuses_bad_runs_with_clear_errors(tmp_path, capsys):
    proc = subprocess.run([sys.executable, "-m", "tfgan.eval", str(tmp_path / "nope")],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: run directory does not exist")
    assert "Traceback" not in proc.stderr

    (tmp_path / "empty").mkdir()
    assert main([tmp_path / "empty"]) == 2
    assert "error: Not a run directory" in capsys.readouterr().err

    from tfgan.config import preset

    half = tmp_path / "half"  # a config but no stats or checkpoint yet
    half.mkdir()
    (half / "config.json").write_text(preset("cpu").to_json())
    assert main([half]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert main([half, "--samples", "3"]) == 2
    assert "at least 10" in capsys.readouterr().err


def test_a_diverged_generator_is_reported_not_scored():
    from tfgan.eval.evaluate import Reference, quality

    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, [20, 64, 64, 1])
    ref = Reference("data", (), b"", 20, 0, real, real[::-1], classifier_reason="no classes",
                    ndb_bins=2, real_scores={"ndb": {"ndb": 0, "ndb_over_k": 0.0}})
    fake = rng.uniform(-1, 1, [20, 64, 64, 1])
    fake[3, 0, 0, 0] = np.nan
    q = quality(ref, fake)
    assert q["frechet_distance"]["generated"] is None and q["ndb"]["generated"]["ndb"] is None
    assert "not finite" in q["inception_score"]["reason"] and "not finite" in q["ndb"]["reason"]
    clean = quality(ref, np.nan_to_num(fake))["ndb"]
    assert clean["generated"]["ndb"] is not None and "reason" not in clean


def test_real_crops_depend_on_the_seed_alone(labelled_run):
    """Not on TensorFlow's global seed, which training sets: scores must not depend on
    whether the process trained something first."""
    import tensorflow as tf

    from tfgan.data import pipeline
    from tfgan.eval.evaluate import real_crops
    from tfgan.rundir import RunDir

    run = RunDir(labelled_run)
    config, stats = run.load_config(), run.load_stats()
    scan = pipeline.scan_folder(config.data.data_dir, config.data)
    first = real_crops(scan, config.data, stats, 24, seed=5)
    tf.random.set_seed(123)
    again = real_crops(scan, config.data, stats, 24, seed=5)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (24, 64, 64, 1) and np.abs(first).max() <= 1.0
    assert not np.array_equal(first, real_crops(scan, config.data, stats, 24, seed=6))
    # Each file once per pass: 24 crops of 18 files (6 a class) hold every class >= 6 times.
    from tfgan.eval.classifier import random_crops

    _, labels = random_crops(scan, config.data, stats, 24, seed=5)
    assert min(np.bincount(labels, minlength=3)) >= 6
