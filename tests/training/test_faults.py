"""Training survives faults, each made to happen for real: SIGKILL and SIGTERM of a real
`python -m training.run`, a diverging run, a full or read-only file system, and a data
folder full of bad files."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--batch-size", "8", "--base-width", "4", "--griffin-lim-iters", "4"]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def data_dir(synth_folder):
    """Two classes of real synthesised sounds, four files each."""
    return synth_folder


class Trainer:
    """A `python -m training.run` subprocess whose output goes to a file (no pipe to fill)."""

    def __init__(self, log: Path, *args):
        self.log = log
        self._out = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "training.run", *args], cwd=ROOT,
                                     env=_env(), stdout=self._out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, predicate, timeout=240.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"training.run exited ({self.proc.returncode}) early:\n"
                                     + self.output()[-3000:])
            time.sleep(0.05)
        self.proc.kill()
        raise AssertionError("timed out:\n" + self.output()[-3000:])

    def finish(self, timeout=240.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()


@pytest.fixture
def start_trainer(tmp_path):
    """`start_trainer(name, *args)` starts a Trainer; any still running at the end is killed."""
    started = []

    def start(name, *args):
        started.append(Trainer(tmp_path / f"{name}.log", *args))
        return started[-1]

    yield start
    for t in started:
        if t.proc.poll() is None:
            t.proc.kill()
        t.finish()


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "training.run", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def logged_steps(run: Path) -> list[int]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


def checkpoint_values(prefix: str) -> dict:
    reader = tf.train.load_checkpoint(prefix)
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}


def assert_all_finite(prefix: str) -> None:
    for name, value in checkpoint_values(prefix).items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.all(np.isfinite(value)), (prefix, name)


@pytest.mark.slow
def test_sigkill_then_sigterm_then_resume_lose_nothing(tmp_path, data_dir, start_trainer,
                                                        helpers):
    run = tmp_path / "run"
    args = ["--data", str(data_dir), "--run-dir", str(run), *TINY, "--steps", "100000",
            "--log-every", "5", "--checkpoint-every", "20", "--sample-every", "100000"]

    # 1. SIGKILL a little after the first checkpoint past step 0.
    first = start_trainer("first", *args)
    first.wait_for(lambda: helpers.newest_step(run) >= 20)
    time.sleep(0.5)
    first.proc.send_signal(signal.SIGKILL)
    assert first.finish() == -signal.SIGKILL
    killed_at = helpers.newest_step(run)
    assert killed_at >= 20 and max(logged_steps(run)) > 0
    # What a save cut short by the kill leaves: data without a listed index, and the
    # saver's temporary directory. Neither may be picked up.
    bogus = run / "checkpoints" / f"ckpt-{killed_at + 1000}"
    Path(f"{bogus}.index").write_bytes(b"\x00" * 20)
    Path(f"{bogus}.data-00000-of-00001").write_bytes(b"\x01" * 100)
    (run / "checkpoints" / f"ckpt-{killed_at + 1000}_temp").mkdir()

    # 2. Resume, then SIGTERM: a clean stop with a final checkpoint.
    second = start_trainer("second", *args, "--resume")
    second.wait_for(lambda: helpers.newest_step(run) > killed_at)
    time.sleep(0.3)
    second.proc.send_signal(signal.SIGTERM)
    assert second.finish() == 128 + signal.SIGTERM, second.output()[-3000:]
    out = second.output()
    assert f"ckpt-{killed_at} at step {killed_at}" in out, out[-3000:]
    stopped = int(re.search(r"stopped by signal at step (\d+) \(SIGTERM\); resume with "
                            r"--resume", out)[1])
    assert stopped > killed_at and "Traceback" not in out
    assert helpers.newest_step(run) == stopped
    assert not (run / "checkpoints" / f"ckpt-{killed_at + 1000}_temp").exists()
    steps = logged_steps(run)
    assert steps == sorted(set(steps)) and max(steps) <= stopped

    # 3. Resume to the end: the step count, both optimisers and the log continue.
    total = stopped + 10
    third = run_cli(*args, "--resume", "--steps", str(total))
    assert third.returncode == 0, third.stdout[-2000:] + third.stderr[-3000:]
    assert f"at step {stopped}" in third.stdout
    expected = sorted(set(range(5, total + 1, 5)) | {total})
    assert logged_steps(run) == expected
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["d_loss"]) and math.isfinite(r["g_loss"]) for r in records)
    values = checkpoint_values(str(run / "checkpoints" / f"ckpt-{total}"))
    # A fresh optimiser would count only the last 10 steps.
    assert values["g_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == total
    assert values["d_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == total
    assert values["step/.ATTRIBUTES/VARIABLE_VALUE"] == total


def test_divergence_stops_at_the_last_good_checkpoint(tmp_path, data_dir):
    run = tmp_path / "run"
    # Adam moves every weight by ~lr on its first step: activations overflow at once.
    res = run_cli("--data", str(data_dir), "--run-dir", str(run), *TINY, "--steps", "8",
                  "--log-every", "4", "--checkpoint-every", "2", "--sample-every", "100",
                  "--lr", "1e30")
    assert res.returncode == 3, res.stdout[-2000:] + res.stderr[-3000:]
    assert "training diverged: Non-finite" in res.stderr and "at step 2" in res.stderr
    assert "Restored the last good checkpoint, step 0" in res.stderr
    assert "Traceback" not in res.stderr
    # No checkpoint of NaN weights was written: step 2's was refused.
    state = tf.train.get_checkpoint_state(str(run / "checkpoints"))
    assert [Path(p).name for p in state.all_model_checkpoint_paths] == ["ckpt-0"]
    assert not list((run / "checkpoints").glob("ckpt-2.*"))
    assert_all_finite(str(run / "checkpoints" / "ckpt-0"))


def _tiny_config(data_dir, **train):
    from tfgan.config import preset

    c = preset("cpu")
    return dataclasses.replace(
        c, data=dataclasses.replace(c.data, data_dir=str(data_dir)),
        model=dataclasses.replace(c.model, base_width=4),
        train=dataclasses.replace(c.train, batch_size=8, griffin_lim_iters=4, precision="float32",
                                  strategy="default", sample_every=1000, **train))


class Poison(keras.callbacks.Callback):
    """Once, after global step `at`, sets one of D's kernels to NaN: the next step spreads
    it through the losses, gradients and every weight, as a real blow-up does."""

    def __init__(self, at: int):
        super().__init__()
        self.at, self.done = at, False

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.g_optimizer.iterations.numpy())
        if step == self.at and not self.done:
            kernel = self.model.discriminator.trainable_weights[0]
            kernel.assign(tf.fill(kernel.shape, float("nan")))
            self.done = True


def test_divergence_with_lower_lr_restores_and_continues(tmp_path, data_dir):
    from tfgan.trainer import train

    run = tmp_path / "run"
    # With a decay the schedule goes on from the lowered rates.
    config = _tiny_config(data_dir, steps=10, log_every=4, checkpoint_every=2, lr=1e-3,
                          d_lr_scale=0.5, lr_decay=0.25)
    stream = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(config, run, on_nan="lower-lr", callbacks=[Poison(at=5)], stream=stream)
    out = stream.getvalue()
    # Step 6's checkpoint check sees the NaN first; the last good checkpoint is step 4.
    assert "Non-finite" in out and "at step 6" in out, out
    assert "Restored the last good checkpoint, step 4, and lowered both learning rates 10x" \
        in out
    assert result["step"] == 10 and result["stopped_by"] is None
    assert logged_steps(run) == [4, 8, 10]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r[k]) for r in records for k in ("d_loss", "g_loss"))
    saved = json.loads((run / "config.json").read_text())["train"]
    assert saved["lr"] == pytest.approx(1e-4)
    state = tf.train.get_checkpoint_state(str(run / "checkpoints"))
    assert Path(state.model_checkpoint_path).name == "ckpt-10"
    for prefix in state.all_model_checkpoint_paths:
        assert_all_finite(prefix)
    final = checkpoint_values(state.model_checkpoint_path)
    factor = config.train.lr_factor(9)  # step 10 ran with 9 of 10 steps done: 0.268
    assert final["g_optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE"] == \
        pytest.approx(1e-4 * factor)
    assert final["d_optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE"] == \
        pytest.approx(0.5e-4 * factor)


class SendSignal(keras.callbacks.Callback):
    def __init__(self, signum, at: int):
        super().__init__()
        self.signum, self.at = signum, at

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.g_optimizer.iterations.numpy()) == self.at:
            os.kill(os.getpid(), self.signum)


def test_sigint_writes_a_checkpoint_and_returns(tmp_path, data_dir, helpers):
    from tfgan.trainer import train

    run = tmp_path / "run"
    config = _tiny_config(data_dir, steps=50, log_every=2, checkpoint_every=100)
    before = signal.getsignal(signal.SIGINT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(config, run, loop="custom", callbacks=[SendSignal(signal.SIGINT, 3)],
                       stream=io.StringIO())
    # The signal arrives after step 3's checks; step 4 is the last one.
    assert result["stopped_by"] == "SIGINT" and result["step"] == 4
    assert helpers.newest_step(run) == 4 and logged_steps(run) == [2, 4]
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back


# ------------------------------------------------------------------------- refused up front


@pytest.fixture
def mount_tmpfs(tmp_path):
    """`mount_tmpfs(name, size, readonly)`: a real small file system (needs root)."""
    mounted = []

    def mount(name, size, readonly=False):
        point = tmp_path / name
        point.mkdir()
        opts = f"size={size}" + (",ro" if readonly else "")
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False)


def _main(capsys, *argv):
    from training.run import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main([*argv])
    return code, capsys.readouterr()


def test_full_disk_is_refused_up_front(tmp_path, data_dir, mount_tmpfs, capsys):
    disk = mount_tmpfs("disk", "4m")
    filler = disk / "filler"
    with open(filler, "wb") as f:  # fill it up: ENOSPC ends the loop
        try:
            while True:
                f.write(b"\x00" * 65536)
                f.flush()
        except OSError:
            pass
    args = ["--data", str(data_dir), *TINY, "--steps", "4"]
    code, out = _main(capsys, *args, "--run-dir", str(disk / "full"))
    assert code == 2 and "No space left on device" in out.err, out

    # Nearly full: the directories fit, the run would not.
    os.truncate(filler, filler.stat().st_size - 512 * 1024)
    code, out = _main(capsys, *args, "--run-dir", str(disk / "run"))
    assert code == 2, out
    assert "Not enough free disk space" in out.err and "MiB free" in out.err
    assert not (disk / "run" / "config.json").exists()


def test_disk_estimate_is_checked_against_free_space(tmp_path, data_dir, capsys,
                                                     monkeypatch):
    """The same refusal without root: the file system reports 1 MiB free."""
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda p: real(p)._replace(free=2 ** 20))
    code, out = _main(capsys, "--data", str(data_dir), "--run-dir", str(tmp_path / "run"),
                      *TINY, "--steps", "4")
    assert code == 2 and "Not enough free disk space" in out.err and "1.0 MiB free" in out.err


def test_read_only_run_directory_is_refused(tmp_path, data_dir, mount_tmpfs, capsys):
    ro = mount_tmpfs("ro", "1m", readonly=True)
    code, out = _main(capsys, "--data", str(data_dir), "--run-dir", str(ro / "run"), *TINY,
                      "--steps", "4")
    assert code == 2 and "Cannot write to run directory" in out.err
    assert "Read-only file system" in out.err


# --------------------------------------------------------------------------- bad data


def test_training_on_a_folder_of_bad_files(tmp_path, helpers, cpu_data):
    """Corrupt, empty, non-audio, silent, NaN, short, 20-minute, 96 kHz 6-channel and oddly
    named files: the run trains on the good ones, reports the rest, and its statistics
    are those of the good files alone."""
    from tfgan.data import pipeline

    good = tmp_path / "good"
    helpers.write_good_files(good)  # includes spaces and non-ASCII names
    rate = 96000
    helpers.write_audio(good / "birds" / "surround 96k 6ch ünï.wav",
                        helpers.tone(1000.0, 0.6, rate, channels=6, noise=0.01), rate, "WAV",
                        "PCM_16")
    rng = np.random.default_rng(0)
    # 20 minutes of quiet noise (about -60 dBFS): real audio, cheap to write as FLAC.
    long_noise = (0.001 * rng.standard_normal(20 * 60 * 8000)).astype(np.float32)
    helpers.write_audio(good / "drums" / "twenty minutes.flac", long_noise, 8000, "FLAC",
                        "PCM_16")
    mixed = tmp_path / "mixed"
    shutil.copytree(good, mixed)
    bad = helpers.write_bad_files(mixed)
    (mixed / "birds" / "random bytes.flac").write_bytes(rng.bytes(3000))

    run = tmp_path / "run"
    res = run_cli("--data", str(mixed), "--run-dir", str(run), *TINY, "--steps", "4",
                  "--log-every", "2", "--checkpoint-every", "4", "--sample-every", "4")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    n_good = len(helpers.GOOD_FILES) + 2
    assert f"{n_good} usable audio files" in res.stdout
    assert f"{len(bad) + 1} skipped" in res.stdout
    assert f"Skipped {len(bad) + 1} of {n_good + len(bad) + 1} audio files" in res.stderr
    assert logged_steps(run) == [2, 4] and helpers.newest_step(run) == 4

    expected = pipeline.compute_stats(pipeline.scan_folder(good, cpu_data), cpu_data)
    saved = json.loads((run / "stats.json").read_text())
    np.testing.assert_allclose(saved["mean"], expected.mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(saved["std"], expected.std, rtol=1e-5, atol=1e-5)
