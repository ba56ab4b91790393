"""`training.run --strategy multiworker`: two real worker processes on 127.0.0.1 train in
step, only the chief writes the run, resume works across workers, and the result equals
single-process training at the same global batch; on prepared shards each worker reads
its own."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
# The reference recipe: its step draws no augmentation randomness, which workers would
# draw each their own (see README, known limitations), so the runs must agree exactly.
TINY = ["--batch-size", "8", "--base-width", "4", "--griffin-lim-iters", "4", "--log-every",
        "2", "--checkpoint-every", "2", "--sample-every", "4", "--precision", "float32",
        "--recipe", "reference", "--conditional", "on"]  # labels cross workers too

# training.run's main, with a callback that dumps this worker's copy of G's and D's weights
# when training ends (the non-chief's checkpoint copy is deleted by design).
WORKER = r"""
import os
import sys
import keras, numpy as np
from tfgan import trainer
from tfgan.checkpoint_layout import checkpoint_key, variable_paths
from training import run

class Dump(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        # Under the keys the checkpoint uses, so the two can be compared key by key.
        models = {"generator": self.model.generator, "discriminator": self.model.discriminator}
        np.savez(sys.argv[1], **{checkpoint_key(name, path): np.asarray(w.numpy())
                                 for name, m in models.items()
                                 for path, w in variable_paths(m).items()})

real_train = trainer.train
trainer.train = lambda *a, **k: real_train(*a, callbacks=[Dump()], **k)
if os.environ.get("REFERENCE_PIPELINES"):
    # The single-process reference for workers that read their own shards: the same
    # pipelines, each batch the concatenation of their shares, as the workers' replicas
    # together hold it.
    import tensorflow as tf
    from tfgan.data import shards

    n = int(os.environ["REFERENCE_PIPELINES"])

    def concatenated(scan, config, stats, strategy, start_step, stream):
        share = config.train.batch_size // n
        parts = [trainer.gan_dataset(
            shards.make_dataset(scan, config.data, stats, share, training=True,
                                seed=config.train.seed + start_step,
                                with_labels=config.model.conditional, pipeline=(n, i)),
            config, start_step, pipeline=(n, i)) for i in range(n)]
        return tf.data.Dataset.zip(tuple(parts)).map(
            lambda *bs: {k: tf.concat([b[k] for b in bs], 0) for k in bs[0]})

    trainer.training_data = concatenated
sys.exit(run.main(sys.argv[2:]))
"""


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start(dump: Path, log: Path, args, tf_config=None, **extra_env):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **extra_env}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    out = open(log, "w")
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(dump), *args], cwd=ROOT, env=env,
                            stdout=out, stderr=subprocess.STDOUT)
    proc.log = log
    return proc


def _wait_all(procs, timeout=400):
    try:
        for p in procs:
            p.wait(timeout)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p in procs:
        assert p.returncode == 0, f"{p.args[-1]} exited {p.returncode}:\n" + \
            p.log.read_text()[-4000:]


def _workers(tmp_path, tag, args):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return [_start(tmp_path / f"{tag}{i}.npz", tmp_path / f"{tag}{i}.log",
                   [*args, "--strategy", "multiworker"],
                   {"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(2)]


def _load(path):
    """{checkpoint key: weight} as a worker dumped them."""
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _relative_difference(a, b, start):
    """|a - b| over |a - start|, all weights together: how much the updates differ."""
    diff = np.sqrt(sum(float(np.sum((x - y) ** 2)) for x, y in zip(a, b)))
    size = np.sqrt(sum(float(np.sum((x - s) ** 2)) for x, s in zip(a, start)))
    return diff / size


def _steps(run):
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def data_dir(synth_folder):
    """Two classes of real synthesised sounds, four files each."""
    return synth_folder


@pytest.mark.slow
def test_two_workers_train_in_step_like_one_process(tmp_path, data_dir):
    run, ref = tmp_path / "run", tmp_path / "ref"
    # With a learning-rate decay: every worker must set the same (mirrored) rates each step.
    common = ["--data", str(data_dir), *TINY, "--lr-decay", "0.25"]
    # Step 0 of the reference is the shared starting point (same seed, same init).
    procs = _workers(tmp_path, "a", [*common, "--run-dir", str(run), "--steps", "4"])
    procs.append(_start(tmp_path / "ref.npz", tmp_path / "ref.log",
                        [*common, "--run-dir", str(ref), "--steps", "4", "--loop", "custom",
                         "--strategy", "default"]))
    _wait_all(procs)

    chief, other, single = (_load(tmp_path / n) for n in ("a0.npz", "a1.npz", "ref.npz"))
    keys = sorted(chief)
    assert len(keys) > 10 and sorted(other) == sorted(single) == keys
    for k in keys:  # the same all-reduced update on both workers
        np.testing.assert_allclose(chief[k], other[k], rtol=0, atol=1e-6)

    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(ref / "checkpoints" / "ckpt-0"))
    start = [reader.get_tensor(k) for k in keys]  # every dumped weight is in the file
    assert [w.shape for w in start] == [chief[k].shape for k in keys]
    moved = _relative_difference([single[k] for k in keys], [chief[k] for k in keys], start)
    # Float round-off only (measured: ~5e-7 relative).
    assert moved < 1e-4, f"2 workers vs 1 process: the updates differ by {moved:.2e}"

    # Only the chief wrote the run; the other worker's scratch checkpoints are gone.
    assert _steps(run) == [2, 4]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # Step 4 of 4 ran with 3 done: 2e-4 x (0.25 + 0.375 x (1 + cos(3 pi / 4))) = 7.197e-5.
    assert [r["lr"] for r in rows if r["step"] == 4] == [pytest.approx(7.197e-5, rel=1e-3)]
    assert (run / "samples" / "step_000004.png").exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir()) == []
    assert (run / "checkpoints" / "ckpt-4.index").exists()
    assert "Done." in procs[1].log.read_text()
    assert "2 workers, 2 replicas in sync" in procs[0].log.read_text()

    # Resume on both workers (both restore the chief's step-4 checkpoint), then SIGTERM
    # the non-chief only: both stop at the same step, and the chief saves that step.
    procs = _workers(tmp_path, "b", [*common, "--run-dir", str(run), "--steps", "100000",
                                     "--resume"])
    try:
        _wait_for(lambda: run_steps_past(run, 6), procs)
        procs[1].send_signal(signal.SIGTERM)
        codes = [p.wait(300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    logs = [p.log.read_text() for p in procs]
    assert codes == [128 + signal.SIGTERM] * 2, [log[-3000:] for log in logs]
    stops = [re.search(r"stopped by signal at step (\d+) \(SIGTERM(, sent to another "
                       r"worker)?\); resume with --resume", log) for log in logs]
    assert all(stops), [log[-2000:] for log in logs]
    assert stops[0][1] == stops[1][1] and stops[0][2] and not stops[1][2]
    stopped = int(stops[0][1])
    for log in logs:
        assert "Resumed from" in log and "at step 4" in log
    chief, other = _load(tmp_path / "b0.npz"), _load(tmp_path / "b1.npz")
    assert sorted(chief) == sorted(other)
    for k in chief:
        np.testing.assert_allclose(chief[k], other[k], rtol=0, atol=1e-6)
    steps = _steps(run)
    assert steps == list(range(2, max(steps) + 1, 2)) and max(steps) <= stopped
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run / "checkpoints")))
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == stopped
    assert reader.get_tensor("g_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == stopped
    assert not any(p.is_dir() for p in (run / "checkpoints").iterdir())


def run_steps_past(run: Path, step: int) -> bool:
    try:
        return max(_steps(run)) >= step
    except (OSError, ValueError):
        return False


def _wait_for(predicate, procs, timeout=300):
    deadline = time.monotonic() + timeout
    while not predicate():
        for p in procs:
            assert p.poll() is None, f"exited {p.returncode}:\n" + p.log.read_text()[-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_workers_read_their_own_shards_and_train_like_one_process(tmp_path, data_dir):
    """Prepared shards under two workers: each reads half the shards (disjoint, together
    all), and the result equals one process fed the same two pipelines' shares."""
    from tfgan.data.prepare import prepare

    prepared = tmp_path / "shards"
    prepare(data_dir, prepared, shards=4, workers=1, stream=io.StringIO())
    common = ["--data", str(prepared), *TINY]
    procs = _workers(tmp_path, "s", [*common, "--run-dir", str(tmp_path / "run"),
                                     "--steps", "4"])
    procs.append(_start(tmp_path / "ref.npz", tmp_path / "ref.log",
                        [*common, "--run-dir", str(tmp_path / "ref"), "--steps", "4",
                         "--loop", "custom", "--strategy", "default"],
                        REFERENCE_PIPELINES="2"))
    _wait_all(procs)
    logs = [p.log.read_text() for p in procs[:2]]
    reads = [re.search(r"worker (\d) of 2 reads shards ([\d, ]+) \((\d+) files\)", log)
             for log in logs]
    assert all(reads), [log[-2000:] for log in logs]
    mine = [{int(x) for x in r[2].split(", ")} for r in reads]
    assert not mine[0] & mine[1] and mine[0] | mine[1] == {0, 1, 2, 3}
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert sum(int(r[3]) for r in reads) == manifest["files"]  # per-worker record counts
    chief, other, single = (_load(tmp_path / n) for n in ("s0.npz", "s1.npz", "ref.npz"))
    keys = sorted(chief)
    for k in keys:
        np.testing.assert_allclose(chief[k], other[k], rtol=0, atol=1e-6)
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(tmp_path / "ref" / "checkpoints" / "ckpt-0"))
    start = [reader.get_tensor(k) for k in keys]
    moved = _relative_difference([single[k] for k in keys], [chief[k] for k in keys], start)
    assert moved < 1e-4, f"2 workers on shards vs 1 process: the updates differ by {moved:.2e}"
