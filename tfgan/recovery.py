"""Checkpoints, stop signals and the checks that let a training run survive faults.

Faults a run survives:

* Killed at any moment (SIGKILL, power loss): `resume=True` restarts from the newest
  complete checkpoint. tf.train.CheckpointManager writes a checkpoint's files first and its
  `checkpoint` index file last (atomically), so a half-written one is never listed; a
  listed one that no longer reads back is skipped for the one before it. Metrics logged
  after the restored step are dropped, so nothing is logged twice.
* SIGINT / SIGTERM: the step in progress finishes, a checkpoint is written and `train`
  returns with `stopped_by` set (training.run exits with 128 + the signal number).
  A second signal stops at once, as without the handler.
* A non-finite loss, gradient norm or weight: caught within one logging interval (the
  logged values are means over it) and before any checkpoint of it is written. The last
  good checkpoint is restored; then `on_nan="stop"` raises NonFiniteLoss, and
  `on_nan="lower-lr"` divides both learning rates by 10 (saved in config.json) and goes
  on, at most MAX_LR_LOWERINGS times.
* Too little free disk, an unwritable run directory or a run of other shapes: refused
  with RunError before any data is read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import signal
import sys
import threading
from typing import Optional

import numpy as np
import tensorflow as tf

from tfgan import callbacks as cb
from tfgan import checkpoint_layout as layout
from tfgan.config import Config
from tfgan.gan import GAN
from tfgan.rundir import RunDir, RunError

MAX_LR_LOWERINGS = 3
CHECKPOINTS_KEPT = 3
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def check_compatible(saved: Config, config: Config) -> None:
    """Refuses to resume a run whose saved config has other shapes or models."""
    fields = {"model": saved.model, "data": dataclasses.replace(saved.data, data_dir=None)}
    ours = {"model": config.model, "data": dataclasses.replace(config.data, data_dir=None)}
    diffs = [f"{sec}.{k}: run has {v!r}, asked {getattr(ours[sec], k)!r}"
             for sec, obj in fields.items()
             for k, v in dataclasses.asdict(obj).items() if getattr(ours[sec], k) != v]
    if diffs:
        raise RunError("The run directory holds a run with an incompatible config; use a new "
                       "--run-dir or the same settings. Differences: " + "; ".join(diffs))


def estimate_run_bytes(config: Config, gan: GAN) -> int:
    """A generous estimate of the disk space a run needs: checkpoints, samples, logs."""
    variables = list(gan.generator.weights) + list(gan.discriminator.weights)
    variables += list(gan.g_optimizer.variables) + list(gan.d_optimizer.variables)
    if gan.ema_generator is not None:
        variables += list(gan.ema_generator.weights)
    checkpoint = 4 * sum(int(np.prod(v.shape)) for v in variables)  # float32 everywhere
    t = config.train
    # Each sample write: a PNG grid and 4 WAVs, and the same again in TensorBoard's events.
    per_sample_write = 2 * (256 * 1024 + 4 * 4 * config.data.clip_samples)
    # One more checkpoint than kept: the newest is written before the oldest is deleted.
    return ((CHECKPOINTS_KEPT + 1) * checkpoint
            + (t.steps // t.sample_every + 1) * per_sample_write + 16 * 2 ** 20)


def restore_newest(restore, directory, stream=sys.stdout) -> Optional[str]:
    """Restores the newest checkpoint listed in `directory` that reads back whole.

    Args:
      restore: `restore(path)` reads one checkpoint, raising if it cannot.

    Returns:
      Its path, or None when none is listed.

    Raises:
      RunError: checkpoints are listed but none of them reads back.
    """
    state = tf.train.get_checkpoint_state(str(directory))
    listed = list(state.all_model_checkpoint_paths) if state else []
    for path in reversed(listed):
        try:
            restore(path)
            return path
        except (tf.errors.OpError, ValueError, AssertionError) as e:
            # Files damaged after they were written; the one before is still a good run.
            print(f"warning: cannot read checkpoint {path} "
                  f"({str(e).strip().splitlines()[0][:200]}); trying the one before",
                  file=stream, flush=True)
    if listed:
        raise RunError(f"None of the checkpoints in {directory} can be read: {listed}")
    return None


def set_learning_rates(gan: GAN, config: Config) -> None:
    """The config's learning rates: a checkpoint restores the rates it was saved with."""
    gan.g_optimizer.learning_rate = config.train.lr
    gan.d_optimizer.learning_rate = config.train.d_lr


@contextlib.contextmanager
def stop_on_signals(request: cb.StopRequest):
    """While inside, SIGINT and SIGTERM only set `request` (checked between steps).

    The first signal puts the previous handlers back, so a second one acts at once.
    Signal handlers can only be set from the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, _frame):
        request.signum = signum  # only a flag: a handler may run in the middle of anything
        for s, h in previous.items():
            signal.signal(s, h)

    for s in STOP_SIGNALS:
        previous[s] = signal.getsignal(s)
        if previous[s] is None:  # set outside Python; the default is the closest we can do
            previous[s] = signal.SIG_DFL
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def any_worker_signal(strategy: tf.distribute.Strategy):
    """`f(signum) -> signum`: the stop signal any worker got (0: none), by one all-gather,
    so that every worker stops at the same step; one that stopped alone would hang the
    others in their next collective op."""
    @tf.function
    def gather(signum):
        per_replica = strategy.run(tf.identity, args=(signum,))
        return tf.reduce_max(strategy.gather(per_replica, axis=0))

    return lambda signum: int(gather(tf.constant([signum or 0], tf.int32)))


class RunCheckpoints:
    """What a checkpoint holds, where this worker saves it, and restoring the newest.

    Only the chief's checkpoints are kept. Other workers must join every save (it may run
    collective ops) and write it to a scratch directory deleted after each save: the
    standard MultiWorkerMirroredStrategy pattern.
    """

    def __init__(self, gan: GAN, run: RunDir, every: int, chief: bool = True, task_id: int = 0):
        self.gan, self.run, self.every = gan, run, every
        self.step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
        # What a checkpoint holds, by name: the models, the optimisers (with the model each
        # trains), and the rest.
        self.models = {"generator": gan.generator, "discriminator": gan.discriminator}
        if gan.ema_generator is not None:
            self.models["ema_generator"] = gan.ema_generator
        self.optimizers = {"g_optimizer": (gan.g_optimizer, gan.generator),
                           "d_optimizer": (gan.d_optimizer, gan.discriminator)}
        self.others = {"ada_p": gan.ada_p, "step": self.step_var}
        self.ckpt = tf.train.Checkpoint(
            **{name: layout.trackable_weights(m) for name, m in self.models.items()},
            **{name: opt for name, (opt, _) in self.optimizers.items()}, **self.others)
        self.scratch = None if chief else run.checkpoints / f".worker-{task_id}-tmp"
        if chief:
            for stale in run.checkpoints.glob("*_temp"):  # a save cut short by a kill
                shutil.rmtree(stale, ignore_errors=True)
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)
        self.manager = tf.train.CheckpointManager(
            self.ckpt, str(self.scratch or run.checkpoints), max_to_keep=CHECKPOINTS_KEPT,
            checkpoint_name="ckpt")

        self._best = None  # made on the first save_best

    def save_best(self, step: int, fd: float) -> str:
        """Saves G (and its EMA) as checkpoints/best, the best step by in-training FD.

        Only the generators: export needs nothing else. The previous best is replaced;
        best.json records its step and FD, and a resumed run keeps both.
        """
        best_dir = self.run.checkpoints / "best"
        if self._best is None:
            self._best_step = tf.Variable(0, dtype=tf.int64, trainable=False)
            tracked = {name: layout.trackable_weights(self.models[name])
                       for name in ("generator", "ema_generator") if name in self.models}
            tracked["step"] = self._best_step
            self._best = tf.train.CheckpointManager(tf.train.Checkpoint(**tracked),
                                                    str(best_dir), max_to_keep=1,
                                                    checkpoint_name="best")
        self._best_step.assign(step)
        path = self._best.save(checkpoint_number=step)
        tmp = best_dir / ".best.json.tmp"
        tmp.write_text(json.dumps({"step": int(step), "fd": float(fd), "checkpoint": path}))
        tmp.replace(best_dir / "best.json")
        return path

    @property
    def step(self) -> int:
        """The step of the checkpoint last saved or restored."""
        return int(self.step_var.numpy())

    def checkpointer(self, counter: cb.StepCounter) -> cb.Checkpointer:
        saver = cb.Checkpointer(counter, self.every, self.manager, self.step_var,
                                scratch_dir=self.scratch)
        saver.set_model(self.gan)
        return saver

    def restore(self, stream=sys.stdout) -> Optional[str]:
        """Restores the chief's newest readable checkpoint (see `restore_newest`)."""
        return restore_newest(self._restore, self.run.checkpoints, stream)

    def _restore(self, path: str) -> None:
        if not layout.is_index_keyed(path):
            self.ckpt.restore(path).assert_existing_objects_matched()
            return
        # Written before checkpoints were keyed by variable path.
        layout.restore_index_keyed(path, self.models, self.optimizers, self.others)


def lower_learning_rates(gan: GAN, config: Config, run: Optional[RunDir], step: int) -> Config:
    """Both learning rates / 10, in the optimisers and in config.json (so a resume keeps
    them); the metrics logged past the restored `step` are dropped. `run`: None on workers
    other than the chief."""
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, lr=config.train.lr / 10))
    set_learning_rates(gan, config)
    for tracker in gan.metrics:
        tracker.reset_state()
    if run is not None:
        run.save_config(config)
        run.truncate_metrics(step)
    return config
