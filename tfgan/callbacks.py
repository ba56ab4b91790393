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


class NonFiniteLoss(RuntimeError):
    """A loss or gradient norm became NaN or infinite."""


class StepCounter(keras.callbacks.Callback):
    """Counts global steps from where a resumed run left off; other callbacks read it."""

    def __init__(self, start_step: int, total_steps: int):
        super().__init__()
        self.step, self.total = start_step, total_steps

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1

    def due(self, every: int) -> bool:
        return self.step % every == 0 or self.step == self.total


class MetricsLogger(keras.callbacks.Callback):
    """Every `every` steps: one JSON line in metrics.jsonl, a console line, TB scalars.

    Values are means over the interval since the last line (the trackers are reset after
    each line). A non-finite loss stops training with NonFiniteLoss.
    """

    def __init__(self, counter: StepCounter, every: int, path, writer=None, stream=sys.stdout):
        super().__init__()
        self.counter, self.every, self.path, self.writer = counter, every, path, writer
        self.stream = stream
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
        record["steps_per_sec"] = (step - self._last_step) / max(now - self._last_t, 1e-9)
        record["wall_time"] = time.time()
        self._last_t, self._last_step = now, step
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
              f"{record['d_fake_acc']:.2f}  {record['steps_per_sec']:.1f} steps/s",
              file=self.stream, flush=True)
        bad = [k for k in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm")
               if not math.isfinite(record[k])]
        if bad:
            raise NonFiniteLoss(f"Non-finite {', '.join(bad)} in the {self.every} steps up to "
                                f"step {step}.")


class SampleWriter(keras.callbacks.Callback):
    """Every `every` steps: G(z_fixed) as a PNG grid, WAV files and TensorBoard summaries."""

    def __init__(self, counter: StepCounter, every: int, run, stats: audio.Stats, z_fixed,
                 sampler, n_iter: int = 32, writer=None, num_wavs: int = 4):
        super().__init__()
        self.counter, self.every, self.run, self.stats = counter, every, run, stats
        self.z, self.sampler, self.n_iter = z_fixed, sampler, n_iter
        self.writer, self.num_wavs = writer, num_wavs

    def on_train_batch_end(self, batch, logs=None):
        if self.counter.due(self.every):
            self.write(self.counter.step)

    def write(self, step: int):
        specs = self.sampler(self.z, training=False).numpy()
        name = f"step_{step:06d}"
        plots.save_grid(self.run.samples / f"{name}.png", specs, title=f"step {step}")
        waves = audio.to_waveform(specs[: self.num_wavs], self.stats, self.n_iter).numpy()
        rate = self.stats.data.sample_rate
        for k, wave in enumerate(waves):
            audio.write_wav(self.run.samples / f"{name}_{k}.wav", wave, rate)
        if self.writer is not None:
            with self.writer.as_default(step=step):
                tf.summary.image("samples", plots.grid_image(specs)[None], max_outputs=1)
                tf.summary.audio("samples", waves[..., None], rate, max_outputs=self.num_wavs)
        return specs, waves


class Checkpointer(keras.callbacks.Callback):
    """Every `every` steps and at the end: a checkpoint via tf.train.CheckpointManager.

    The manager writes the data files first and the `checkpoint` index last, so a run
    killed mid-save leaves the previous checkpoint as the newest complete one.
    """

    def __init__(self, counter: StepCounter, every: int, manager, step_var, is_chief=True):
        super().__init__()
        self.counter, self.every, self.manager, self.step_var = counter, every, manager, step_var
        self.is_chief = is_chief

    def on_train_batch_end(self, batch, logs=None):
        if self.counter.due(self.every):
            self.save()

    def save(self):
        self.step_var.assign(self.counter.step)
        return self.manager.save(checkpoint_number=self.counter.step)
