"""python -m training.benchmark: the grid end to end at tiny size, its resumption after a
kill, the pilot's rule and the conclusion logic on hand-made tables."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from training import benchmark, grid_report

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--seeds", "0", "--base-width", "4", "--batch-size", "8", "--precision", "float32"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, helpers):
    return helpers.write_synth_folder(tmp_path_factory.mktemp("bench_data"), 8000,
                                      ("sine", "chirp_down", "snare"), per_class=12)


def _bench(argv, env_cache, **kw):
    env = {**os.environ, "TFGAN_CACHE": str(env_cache)}
    return subprocess.run([sys.executable, "-m", "training.benchmark", *argv], cwd=ROOT,
                          env=env, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache for the module's benchmarks: the held-out classifier is trained once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, data_dir, cache):
    """Two arms, one seed, 30 steps: the smoke run of the issue."""
    out = tmp_path_factory.mktemp("bench") / "out"
    argv = ["--data", str(data_dir), "--out", str(out), "--steps", "30",
            "--arms", "simple-reference", "resnet9-reference", *TINY]
    first = _bench(argv, cache, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    return out, argv, cache, first


def test_smoke_run_writes_a_report_that_says_inconclusive(smoke):
    out, _, _, first = smoke
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["cells"]) == {f"{Path(rep['meta']['datasets'][0])}/{a}-s0"
                                 for a in ("simple-reference", "resnet9-reference")}
    assert rep["missing"] == []
    # One seed has no spread: nothing may be stated as a finding.
    assert "inconclusive" in rep["conclusion"]
    assert "is better" not in rep["conclusion"]
    for cell in rep["cells"].values():
        assert cell["status"] == "done" and cell["steps"] == 30
        assert cell["fd_ratio"] > 0 and 0 <= cell["one_sided"] <= 1
        assert 0 <= cell["rank"] <= 1 and cell["ndb_k"] is not None
    md = (out / "report.md").read_text()
    assert "## Conclusion" in md and "inconclusive" in md
    assert "every cell finished" in md and "so far" not in md
    partial = grid_report.markdown({**rep, "missing": ["builtin/simple-reference-s1"]})
    assert "Grid time so far" in partial and "1 of the grid's cells still to run" in partial
    assert "Not yet run (1): builtin/simple-reference-s1" in partial
    for png in rep["plots"].values():
        assert (out / png).stat().st_size > 2000
    for files in rep["samples"].values():
        assert [Path(f).suffix for f in files] == [".png", ".wav", ".wav"]
        assert all((out / f).exists() for f in files)
    assert first.stdout.count("python -m training.run") == 2


def test_the_grid_keeps_r1_r2_on_every_step_as_its_cells_ran():
    """The modern recipe's lazy R1/R2 came after the grid; its modern arms keep every step."""
    from tfgan.config import preset, reg_every_for
    from training import cli, run

    args = benchmark.parse_args(["--out", "unused"])
    cell = benchmark.Cell(Path("unused"), "builtin", "simple-modern", 0,
                          benchmark.ARMS["simple-modern"], benchmark.shared_flags(args))
    config = cli.apply_flags(preset("cpu"), run.parse_args(cell.argv)).validate()
    assert config.train.recipe == "modern" and config.train.r1_gamma > 0
    assert reg_every_for(config, replicas=1) == 1


def test_finished_cells_are_skipped(smoke):
    out, argv, cache, _ = smoke
    log = next((out / "runs").glob("*/simple-reference-s0")) / "train.log"
    before = log.read_text()
    again = _bench(argv, cache, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "python -m training.run" not in again.stdout
    assert log.read_text() == before


def test_a_cell_with_other_settings_is_refused(smoke):
    out, argv, cache, _ = smoke
    changed = [*argv[:argv.index("--steps")], "--steps", "31",
               *argv[argv.index("--steps") + 2:]]
    r = _bench(changed + ["--report-only"], cache, timeout=300)
    assert r.returncode == 2 and "other settings" in r.stderr
    assert "Traceback" not in r.stderr


LONG_STEPS = 200


def _long_cell(tmp_path, data_dir, cache, **popen):
    """A benchmark of one cell long enough to be stopped mid-way, started in the
    background."""
    out = tmp_path / "out"
    argv = ["--data", str(data_dir), "--out", str(out), "--steps", str(LONG_STEPS),
            "--eval-every", str(LONG_STEPS // 2), "--arms", "simple-reference", *TINY]
    env = {**os.environ, "TFGAN_CACHE": str(cache)}
    proc = subprocess.Popen([sys.executable, "-m", "training.benchmark", *argv], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, **popen)
    return proc, out, argv


def test_a_killed_cell_resumes(tmp_path, data_dir, cache, helpers):
    """Kill the benchmark (and its training child) mid-cell; the rerun continues it."""
    proc, out, argv = _long_cell(tmp_path, data_dir, cache, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
    deadline = time.time() + 300
    cell, first = None, -1  # first: the first checkpoint listed after the one at step 0
    while time.time() < deadline and first <= 0:
        cell = next((out / "runs").glob("*/simple-reference-s0"), None)
        first = helpers.newest_step(cell) if cell else -1
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first > 0, "no checkpoint after step 0 within 300 s"
    assert first < LONG_STEPS, f"the first checkpoint after step 0 is the last ({first})"
    record = json.loads((cell / benchmark.CELL_RECORD).read_text())
    assert record["status"] == "running"
    r = _bench(argv, cache, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--resume" in r.stdout
    resumed = re.findall(r"Resumed from \S+ at step (\d+)", (cell / "train.log").read_text())
    assert resumed and int(resumed[-1]) >= first, resumed  # not from step 0 again
    from tfgan.rundir import RunDir

    steps = [x["step"] for x in RunDir(cell).read_metrics()]
    assert steps[-1] == LONG_STEPS and steps == sorted(set(steps))
    assert json.loads((cell / benchmark.CELL_RECORD).read_text())["status"] == "done"


def test_the_pilot_seed_may_not_be_scored():
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--seeds", "0", "100"])
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--arms", "simple", "nope"])


def test_pilot_rule():
    s = {"a": {"one_sided": 0.50, "fd_ratio": 3.0}, "b": {"one_sided": 0.20, "fd_ratio": 9.0},
         "c": {"one_sided": 0.24, "fd_ratio": 5.0}, "d": {"one_sided": None, "fd_ratio": 1.0}}
    # c is within 5 points of the least one-sided (b) and has the lower FD; a is not.
    assert benchmark.choose_controls(s)[0] == "c"
    with pytest.raises(benchmark.BenchmarkError):
        benchmark.choose_controls({"d": s["d"]})


def test_diverged_cells_are_counted_not_averaged():
    done = {"status": "done", "one_sided": 0.5, "fd_ratio": 4.0}
    gone = {"status": "diverged", "one_sided": 0.1, "fd_ratio": 90.0}
    table = grid_report.arm_table({("d", "a", 0): done, ("d", "a", 1): dict(done, fd_ratio=5.0),
                                   ("d", "a", 2): gone})
    arm = table["d"]["a"]
    assert arm["diverged"] == 1 and arm["seeds"] == 3
    assert arm["fd_ratio"]["n"] == 2 and arm["fd_ratio"]["max"] == 5.0
    # The pilot never chooses a candidate that diverged (None), however it scored.
    assert benchmark.choose_controls({"x": None, "y": {"one_sided": 0.9, "fd_ratio": 9}})[0] \
        == "y"


def _arm(one_sided, fd, classes=(5, 6, 7), is_abs=(3.0, 3.2, 3.4)):
    def agg(vals):
        return grid_report.aggregate(list(vals))

    return {"one_sided": agg(one_sided), "fd_ratio": agg(fd), "classes_covered": agg(classes),
            "is": agg(is_abs), "rank": None, "d_loss_excess": None, "is_ratio": None,
            "ndb_k": None, "silent_share": None, "steps_per_sec": None, "minutes": None,
            "fooled": None, "diverged": 0, "seeds": len(fd)}


def test_conclusion_states_only_differences_beyond_the_seed_spread():
    roles = benchmark.ROLES
    clear = {"builtin": {roles["simple"]: _arm([0.30, 0.35, 0.40], [4, 5, 6]),
                         roles["strong"]: _arm([0.90, 0.95, 0.97], [9, 10, 12])}}
    text = grid_report.conclusion(clear, roles)
    assert "simple D's fight more balanced" in text
    line = next(x for x in text.splitlines() if "one-sided" in x)
    assert "simple-reference is better" in line and "inconclusive" not in line
    fd_line = next(x for x in text.splitlines() if "simple vs ResNet-9 (FD" in x)
    assert "simple-reference is better" in fd_line
    assert "best samples came from simple-reference" in text

    overlap = {"builtin": {roles["simple"]: _arm([0.30, 0.60, 0.90], [4, 8, 12]),
                           roles["strong"]: _arm([0.50, 0.80, 0.95], [6, 9, 11])}}
    text = grid_report.conclusion(overlap, roles)
    assert "is better" not in text and text.count("inconclusive") >= 3

    floor = {"builtin": {roles["simple"]: _arm([0.1, 0.2], [50, 60], classes=(1, 1),
                                               is_abs=(1.0, 1.01)),
                         roles["strong"]: _arm([0.9, 0.95], [90, 95], classes=(1, 1),
                                               is_abs=(1.0, 1.0))}}
    text = grid_report.conclusion(floor, roles)
    assert "every arm is at the floor" in text and "is better" not in text

    # "Best" must beat every other arm beyond the spread, not only the runner-up by mean.
    three = {"builtin": {roles["simple"]: _arm([0.3] * 3, [1.0, 1.2, 1.1]),
                         roles["strong"]: _arm([0.9] * 3, [1.5, 1.6, 1.55]),
                         roles["strong_modern"]: _arm([0.5] * 3, [1.05, 2.5, 2.6])}}
    text = grid_report.conclusion(three, roles)
    assert "best samples came from" not in text and "best samples: inconclusive" in text

    one_seed = {"builtin": {roles["simple"]: _arm([0.1], [2]), roles["strong"]: _arm([0.9], [20])}}
    text = grid_report.conclusion(one_seed, roles)
    assert "fewer than two seeds" in text and "is better" not in text


def test_clean_balance_ignores_smoothing_noise_and_augmentation():
    """Same G and D weights, heavy controls on one GAN only: the same clean verdicts."""
    import tensorflow as tf

    from tfgan.eval.live import CleanBalance
    from tfgan.gan import GAN
    from tfgan.models import Generator, build_discriminator

    g = Generator(100, 64, 4)
    d = build_discriminator("simple", size=64, base_width=4)
    real = tf.random.stateless_uniform([8, 64, 64, 1], seed=[1, 2], minval=-1, maxval=1)
    labels = tf.zeros([8], tf.int32)
    batches = [(real, labels)] * 2
    out = []
    for controls in ({}, {"label_smoothing": 0.45, "instance_noise": 2.0,
                          "augment": "shift,tmask,fmask"}):
        gan = GAN(g, d, 100, **controls)
        gan.compile(d_optimizer=None, g_optimizer=None)
        out.append(CleanBalance(gan, batches, 100, seed=3)(step=10))
    assert out[0] == out[1]
    assert np.isfinite(out[0]["clean_d_loss"])


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_clean_balance_judges_real_and_fake_as_the_train_step_does(norm):
    """A D trained on joint batches is asked on a joint batch: with BatchNorm the verdict
    differs from two calls on the same weights; without normalisation it cannot."""
    import tensorflow as tf

    from tfgan.eval.live import CleanBalance
    from tfgan.gan import GAN
    from tfgan.models import Generator, build_discriminator

    g = Generator(100, 64, 4)
    d = build_discriminator("simple", size=64, base_width=4, norm=norm)
    d(tf.zeros([1, 64, 64, 1]))
    d.logit.kernel.assign(tf.random.stateless_normal(d.logit.kernel.shape, [4, 5], 0, 0.05))
    real = tf.random.stateless_uniform([8, 64, 64, 1], seed=[1, 2], minval=-1, maxval=1)
    batches = [(real, tf.zeros([8], tf.int32))] * 2
    gaps = []
    for joint in (False, True):
        gan = GAN(g, d, 100, joint_batch=joint)
        gan.compile(d_optimizer=None, g_optimizer=None)
        gaps.append(CleanBalance(gan, batches, 100, seed=3)(step=10)["clean_gap"])
    if norm == "batch":
        assert abs(gaps[0] - gaps[1]) > 1e-3, gaps
    else:
        assert gaps[0] == pytest.approx(gaps[1], abs=1e-5)


def test_a_stop_signal_to_the_benchmark_stops_its_cell_resumably(tmp_path, data_dir, cache):
    """SIGTERM to the benchmark alone: its training child checkpoints and stops too."""
    import psutil

    proc, out, argv = _long_cell(tmp_path, data_dir, cache, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300

    def training():  # the loop runs (and handles signals) once it logs its first line
        metrics = list((out / "runs").glob("*/simple-reference-s0/metrics.jsonl"))
        return metrics and metrics[0].read_text().strip()

    while time.time() < deadline and not training():
        time.sleep(0.2)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "the cell's training process should be running"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "run the same command again" in err
    assert not [c for c in children if c.is_running() and c.status() != "zombie"]
    cell = next((out / "runs").glob("*/simple-reference-s0"))
    log = (cell / "train.log").read_text()
    assert "stopped by signal" in log and "SIGTERM" in log
    first = json.loads((cell / benchmark.CELL_RECORD).read_text())
    assert first["status"] == "stopped" and first["wall_seconds"] > 0
    r = _bench(argv, cache, timeout=600)
    assert r.returncode == 0 and "--resume" in r.stdout
    # the cell's cost counts both sittings, the stopped one too
    assert json.loads((cell / benchmark.CELL_RECORD).read_text())["wall_seconds"] > \
        first["wall_seconds"]
