"""In-training evaluation: quality rows, clean balance, the best checkpoint, resume, export."""

import dataclasses
import io
import json

import numpy as np
import pytest

from tfgan.config import preset
from tfgan.eval import live
from tfgan.rundir import RunDir


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, helpers):
    """Three classes of 12 synthesised one-second files: enough to hold half out."""
    return helpers.write_synth_folder(tmp_path_factory.mktemp("live"), 16000,
                                      ("sine", "chirp_up", "kick"), per_class=12)


def _config(data, steps, recipe="modern"):
    c = preset("cpu", recipe)
    return dataclasses.replace(
        c, data=dataclasses.replace(c.data, data_dir=str(data)),
        model=dataclasses.replace(c.model, base_width=4, conditional=False),
        train=dataclasses.replace(c.train, steps=steps, batch_size=8, log_every=2,
                                  sample_every=100, checkpoint_every=4, eval_every=4,
                                  griffin_lim_iters=4))


@pytest.fixture(scope="module")
def live_run(tmp_path_factory, labelled):
    from tfgan.trainer import train

    run = tmp_path_factory.mktemp("liverun") / "r"
    out = io.StringIO()
    train(_config(labelled, 8), run, stream=out)
    return run, out.getvalue()


@pytest.fixture(scope="module")
def held(live_run):
    """The live run's held-out reference, and its statistics."""
    from tfgan.audio import Stats
    from tfgan.data import pipeline

    run, _ = live_run
    config = RunDir(run).load_config()
    stats = Stats.load(run / "stats.json")
    scan = pipeline.scan_folder(config.data.data_dir, config.data)
    return live.build_held_out(scan, config.data, stats, seed=0, stream=None), stats


def test_quality_rows_are_logged_and_printed(live_run):
    run, out = live_run
    rows = RunDir(run).read_metrics("eval")
    assert [r["step"] for r in rows] == [4, 8]
    for r in rows:
        assert r["kind"] == "eval" and np.isfinite(r["fd"]) and r["fd"] > 0
        assert r["fd_real"] > 0 and r["is_real"] > 1
        assert r["n_classes"] == 3 and 0 <= r["classes_covered"] <= 3
        assert r["n"] == 9  # one onset clip per file: 36 files, 18 held out, halves of 9
    assert out.count("eval ") == 2 and "FD" in out
    # The training rows are unchanged by the quality rows in the same file.
    assert [r["step"] for r in RunDir(run).read_metrics()] == [2, 4, 6, 8]


def test_balance_is_measured_on_clean_inputs(live_run):
    run, _ = live_run
    for r in RunDir(run).read_metrics():
        assert {"clean_real_acc", "clean_fake_acc", "clean_rank", "clean_gap"} <= set(r)
        # D's loss on those logits, beside its value at no information: ln 2 for the
        # modern recipe's pairing loss (softplus(f - r) at r = f = 0).
        assert r["clean_d_loss_eq"] == pytest.approx(np.log(2), rel=1e-6)
        assert r["clean_d_loss"] > 0
        # The pairwise ranking is a share of 8 pairs.
        assert r["clean_rank"] * 8 == pytest.approx(round(r["clean_rank"] * 8))


def test_best_checkpoint_is_the_lowest_fd(live_run):
    run, _ = live_run
    rows = RunDir(run).read_metrics("eval")
    best = json.loads((run / "checkpoints" / "best" / "best.json").read_text())
    lowest = min(rows, key=lambda r: r["fd"])
    assert best["step"] == lowest["step"] and best["fd"] == pytest.approx(lowest["fd"])
    assert RunDir(run).best_checkpoint().endswith(f"best-{best['step']}")


def test_resume_keeps_the_best_and_export_uses_it(live_run, labelled, tmp_path):
    import shutil

    from export.saved_model import export
    from tfgan.trainer import train

    run = tmp_path / "resumed"
    shutil.copytree(live_run[0], run)
    before = json.loads((run / "checkpoints" / "best" / "best.json").read_text())
    train(_config(labelled, 14), run, resume=True, stream=io.StringIO())
    rows = RunDir(run).read_metrics("eval")
    assert [r["step"] for r in rows] == [4, 8, 12, 14]  # and the last step, off the grid
    after = json.loads((run / "checkpoints" / "best" / "best.json").read_text())
    # The best is only ever replaced by a lower FD.
    assert after["fd"] <= before["fd"]
    assert after["step"] == min(rows, key=lambda r: r["fd"])["step"]

    path = export(run, tmp_path / "models", griffin_lim_iters=4)
    info = json.loads((path / "assets.extra" / "export.json").read_text())
    assert info["checkpoint"] == "best" and info["step"] == after["step"]
    last = export(run, tmp_path / "models", griffin_lim_iters=4, best=False)
    assert json.loads((last / "assets.extra" / "export.json").read_text())["step"] == 14


def test_scores_fall_when_samples_are_silent(held):
    """The score itself: silence is counted, and silent samples are far from real data."""
    held, stats = held
    silent = -np.ones_like(held.real_a)
    s = live.score(held, silent, stats)
    assert s["silent_share"] == 1.0 and held.real["silent_share"] == 0.0
    real_like = live.score(held, held.real_a, stats)
    assert real_like["fd"] == pytest.approx(held.real["fd"], rel=1e-6)
    assert s["fd"] > 5 * real_like["fd"]
    assert real_like["classes_covered"] == 3 and s["classes_covered"] <= 1


def test_conditional_accuracy_is_scored_against_the_requested_classes(held):
    held, stats = held
    verdict = np.argmax(held.classifier.predict(held.real_a)[0], axis=1)
    agree = live.score(held, held.real_a, stats, labels=verdict)
    assert agree["cond_acc"] == 1.0 and agree["cond_acc_min"] == 1.0
    other = live.score(held, held.real_a, stats, labels=(verdict + 1) % 3)
    assert other["cond_acc"] == 0.0
    assert "cond_acc" not in live.score(held, held.real_a, stats)


def test_per_class_fd_compares_each_class_with_its_own_real_clips(held):
    held, stats = held
    assert len(held.real["fd_class"]) == 3 and all(v > 0 for v in held.real["fd_class"])
    # Set B's own clips, each asked for as its own class: every class at distance ~0.
    same = live.score(held, held.real_b, stats, labels=held.labels_b)["fd_class"]
    assert max(same) < 1e-3
    # The same clips filed under the wrong classes: every class is far from its real clips.
    wrong = live.score(held, held.real_b, stats, labels=(held.labels_b + 1) % 3)["fd_class"]
    assert min(wrong) > 100 * max(max(same), 1e-6)


def test_a_conditional_run_logs_its_conditional_accuracy(tmp_path, labelled):
    from tfgan.trainer import train

    c = _config(labelled, 4)
    c = dataclasses.replace(c, model=dataclasses.replace(c.model, conditional=True))
    out = io.StringIO()
    train(c, tmp_path / "r", stream=out)
    rows = RunDir(tmp_path / "r").read_metrics("eval")
    assert [r["step"] for r in rows] == [4]
    assert rows[0]["cond_acc_min"] <= rows[0]["cond_acc"] and "class acc" in out.getvalue()
