"""Keras callbacks that write the run directory: metrics, samples, checkpoints.

They read the GAN's metric trackers directly rather than the `logs` argument, so the
same callbacks serve `fit` and the plain `strategy.run` loop alike.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from tfgan import audio, plots
from tfgan.models import with_labels


class NonFiniteLoss(RuntimeError):
    """A loss, gradient norm or weight became NaN or infinite."""


def _fault_names(model) -> tuple[str, ...]:
    """The logged values whose non-finiteness means training broke.

    Under dynamic loss scaling (mixed_float16) an infinite gradient norm is routine: the
    optimizer skips that step and lowers the scale. Non-finite weights still get caught.
    """
    scaled = isinstance(getattr(model, "g_optimizer", None), keras.optimizers.LossScaleOptimizer)
    return ("d_loss", "g_loss") if scaled else ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm")


class StopRequest:
    """Set by a signal handler (`signum`), read between training steps."""

    def __init__(self):
        self.signum = None


class StepCounter(keras.callbacks.Callback):
    """Counts global steps from where a resumed run left off; other callbacks read it."""

    def __init__(self, start_step: int, total_steps: int):
        super().__init__()
        self.step, self.total = start_step, total_steps

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1

    def due(self, every: int) -> bool:
        return self.step % every == 0 or self.step == self.total


class LearningRateSchedule(keras.callbacks.Callback):
    """Before every step, sets both optimisers' learning rates from the schedule of `train`
    (a TrainConfig: `lr`, `d_lr`, `lr_factor`), so a resumed run goes on where it was."""

    def __init__(self, counter: StepCounter, train):
        super().__init__()
        self.counter, self.train = counter, train

    def on_train_batch_begin(self, batch, logs=None):
        factor = self.train.lr_factor(self.counter.step)
        self.model.g_optimizer.learning_rate = self.train.lr * factor
        self.model.d_optimizer.learning_rate = self.train.d_lr * factor


class MetricsLogger(keras.callbacks.Callback):
    """Every `every` steps: one JSON line in metrics.jsonl, a console line, TB scalars.

    Values are means over the interval since the last line (the trackers are reset after
    each line), so a NaN at any step of the interval shows. A non-finite loss or gradient
    norm stops training with NonFiniteLoss.

    With `write=False` (workers other than the chief) the values are still read, since
    reading them may be a collective op every worker must join, but nothing is written.
    """

    def __init__(self, counter: StepCounter, every: int, path, writer=None, stream=sys.stdout,
                 write: bool = True, extra=None):
        super().__init__()
        self.counter, self.every, self.path, self.writer = counter, every, path, writer
        self.stream, self.write, self.extra = stream, write, extra
        self._t0 = self._last_t = None
        self._last_step = counter.step

    def on_train_begin(self, logs=None):
        self._t0 = self._last_t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if not self.counter.due(self.every):
            return
        step = self.counter.step
        now = time.perf_counter()
        record = {"step": step}
        for tracker in self.model.metrics:
            record[tracker.name] = float(tracker.result())
            tracker.reset_state()
        interval = step - self._last_step
        # The rates the last step used (a schedule or --on-nan lower-lr changes them).
        # (Through a tensor: under several workers the rate is a MirroredVariable.)
        record["lr"] = float(tf.convert_to_tensor(self.model.g_optimizer.learning_rate))
        record["d_lr"] = float(tf.convert_to_tensor(self.model.d_optimizer.learning_rate))
        record["steps_per_sec"] = interval / max(now - self._last_t, 1e-9)
        record["wall_time"] = time.time()
        self._last_t, self._last_step = now, step
        if self.extra is not None and self.write:
            record.update(self.extra(step))  # e.g. D's verdict on clean inputs
        if self.write:
            self._write(record)  # a non-finite line too: it shows what went wrong
        bad = [k for k in _fault_names(self.model) if not math.isfinite(record[k])]
        if bad:
            raise NonFiniteLoss(f"Non-finite {', '.join(bad)} in the {interval} steps up to "
                                f"step {step}.")

    def _write(self, record: dict) -> None:
        step = record["step"]
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self.writer is not None:
            with self.writer.as_default(step=step):
                for k, v in record.items():
                    if k not in ("step", "wall_time"):
                        tf.summary.scalar(k, v)
        print(f"step {step:>6}/{self.counter.total}  d_loss {record['d_loss']:.3f}  "
              f"g_loss {record['g_loss']:.3f}  D(x) {record['d_real']:.2f}  "
              f"D(G(z)) {record['d_fake']:.2f}  acc real/fake {record['d_real_acc']:.2f}/"
              f"{record['d_fake_acc']:.2f}"
              + (f"  clean rank {record['clean_rank']:.2f}" if "clean_rank" in record else "")
              + f"  {record['steps_per_sec']:.1f} steps/s",
              file=self.stream, flush=True)


class SampleWriter(keras.callbacks.Callback):
    """Every `every` steps: G(z_fixed) as a PNG grid, WAV files and TensorBoard summaries."""

    def __init__(self, counter: StepCounter, every: int, run, stats: audio.Stats, z_fixed,
                 sampler, n_iter: int = 32, writer=None, num_wavs: int = 4, labels=None):
        super().__init__()
        self.counter, self.every, self.run, self.stats = counter, every, run, stats
        self.z, self.sampler, self.n_iter = z_fixed, sampler, n_iter
        self.labels = labels  # a conditional G's classes, class by class
        self.writer, self.num_wavs = writer, num_wavs

    def on_train_batch_end(self, batch, logs=None):
        if self.counter.due(self.every):
            self.write(self.counter.step)

    def write(self, step: int):
        if self.model is not None:
            self.model.refresh_ema_statistics()
        specs = with_labels(self.sampler, self.z, self.labels, training=False).numpy()
        name = f"step_{step:06d}"
        # A conditional G's grid: one row per class.
        columns = 0 if self.labels is None else int(np.sum(self.labels.numpy() == 0))
        plots.save_grid(self.run.samples / f"{name}.png", specs, title=f"step {step}",
                        columns=columns)
        if self.labels is None:
            heard = specs[: self.num_wavs]
        else:  # the first sample of each class
            heard = specs[np.unique(self.labels.numpy(), return_index=True)[1]]
        waves = audio.to_waveform(heard, self.stats, self.n_iter).numpy()
        rate = self.stats.data.sample_rate
        for k, wave in enumerate(waves):
            audio.write_wav(self.run.samples / f"{name}_{k}.wav", wave, rate)
        if self.writer is not None:
            with self.writer.as_default(step=step):
                tf.summary.image("samples", plots.grid_image(specs, columns)[None],
                                 max_outputs=1)
                tf.summary.audio("samples", waves[..., None], rate, max_outputs=len(waves))
        return specs, waves


class Checkpointer(keras.callbacks.Callback):
    """Every `every` steps and at the end: a checkpoint via tf.train.CheckpointManager.

    The manager writes the data files first and the `checkpoint` index last, so a run
    killed mid-save leaves the previous checkpoint as the newest complete one. Nothing
    non-finite is ever saved: the losses since the last log and every weight are checked
    first, and NonFiniteLoss is raised instead, so the newest checkpoint stays a good one.

    Args:
      counter: the step counter.
      every: steps between checkpoints.
      manager: the CheckpointManager to save with.
      step_var: the checkpointed step variable (set to the step before saving).
      scratch_dir: on workers other than the chief, the manager's directory, deleted after
        each save (they must join the save but their copy is not kept).
    """

    def __init__(self, counter: StepCounter, every: int, manager, step_var, scratch_dir=None):
        super().__init__()
        self.counter, self.every, self.manager, self.step_var = counter, every, manager, step_var
        self.scratch_dir = scratch_dir
        self.saved_step = None

    def on_train_batch_end(self, batch, logs=None):
        if self.counter.due(self.every):
            self.save()

    def save(self):
        """Saves the current step (once); returns the checkpoint path (None on scratch)."""
        step = self.counter.step
        if self.saved_step == step:
            return None
        bad = self._non_finite()
        if bad:
            raise NonFiniteLoss(f"Non-finite {bad} at step {step}; not saving a checkpoint of "
                                "it.")
        self.step_var.assign(step)
        self.model.refresh_ema_statistics()  # the EMA's own BatchNorm statistics go with it
        path = self.manager.save(checkpoint_number=step)
        if self.scratch_dir is not None:
            tf.io.gfile.rmtree(str(self.scratch_dir))
            path = None
        self.saved_step = step
        return path

    def _non_finite(self) -> str:
        """What is NaN or infinite among the losses since the last log and the weights."""
        gan = self.model
        bad = [t.name for t in gan.metrics
               if t.name in _fault_names(gan) and not math.isfinite(float(t.result()))]
        models = [gan.generator, gan.discriminator, gan.ema_generator]
        for model in filter(None, models):
            if not all(bool(tf.reduce_all(tf.math.is_finite(w))) for w in model.weights):
                bad.append(f"{model.name} weights")
        return ", ".join(bad)


class GracefulStop(keras.callbacks.Callback):
    """Ends training after the step during which a stop was requested (by a signal).

    The checkpoint is written here, between steps, where the weights are consistent.

    Args:
      counter: the step counter.
      checkpointer: saves the final checkpoint.
      request: the StopRequest a signal handler sets.
      any_worker: with several workers, `f(signum) -> signum` returning the signal any
        worker got (0: none), so that all stop at the same step.
    """

    def __init__(self, counter: StepCounter, checkpointer: Checkpointer, request: StopRequest,
                 any_worker=None):
        super().__init__()
        self.counter, self.checkpointer, self.request = counter, checkpointer, request
        self.any_worker = any_worker
        self.stopped_at = self.signum = None

    def on_train_batch_end(self, batch, logs=None):
        signum = self.request.signum
        if self.any_worker is not None:
            signum = self.any_worker(signum)
        if signum and self.counter.step < self.counter.total:
            self.checkpointer.save()
            self.stopped_at, self.signum = self.counter.step, signum
            self.model.stop_training = True
