"""The run-directory contract (see DESIGN.md), read and written in one place.

RUN/config.json, RUN/stats.json, RUN/metrics.jsonl, RUN/checkpoints/, RUN/samples/,
RUN/logs/. Other commands (export, eval, benchmark) read a run only through this module.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Optional

import tensorflow as tf

from tfgan import audio
from tfgan.checkpoint_layout import index_keyed_weights, is_index_keyed, trackable_weights
from tfgan.config import Config


class RunError(ValueError):
    """A run directory that cannot be used as asked."""


class RunDir:
    def __init__(self, path):
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.json")
    stats_path = property(lambda self: self.path / "stats.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    checkpoints = property(lambda self: self.path / "checkpoints")
    samples = property(lambda self: self.path / "samples")
    logs = property(lambda self: self.path / "logs")

    def exists(self) -> bool:
        return self.config_path.exists()

    def load_config(self) -> Config:
        if not self.config_path.exists():
            raise RunError(f"Not a run directory (no config.json): {self.path}")
        return Config.from_json(self.config_path.read_text())

    def save_config(self, config: Config) -> None:
        _atomic_write(self.config_path, config.to_json())

    def load_stats(self) -> audio.Stats:
        if not self.stats_path.exists():
            raise RunError(f"Run has no stats.json: {self.path}")
        return audio.Stats.load(self.stats_path)

    def latest_checkpoint(self) -> Optional[str]:
        return tf.train.latest_checkpoint(str(self.checkpoints))

    def read_metrics(self, kind: str = "train") -> list[dict]:
        """The logged rows of `kind`: "train" (the log lines), "eval" (the in-training
        quality rows) or "all"."""
        rows = self._read_rows()
        if kind == "all":
            return rows
        return [r for r in rows if r.get("kind", "train") == kind]

    def best_checkpoint(self) -> Optional[str]:
        """The checkpoint of the best step by in-training FD, or None."""
        return tf.train.latest_checkpoint(str(self.checkpoints / "best"))

    def _read_rows(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        records = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a killed run
        return records

    def truncate_metrics(self, step: int) -> None:
        """Drops logged records past `step` (they belong to steps a resume will redo)."""
        kept = [r for r in self.read_metrics("all") if r.get("step", 0) <= step]
        _atomic_write(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    def prepare(self) -> None:
        """Creates the directories, refusing an unwritable location with a clear error."""
        try:
            for d in (self.path, self.checkpoints, self.samples, self.logs):
                d.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write_test.{os.getpid()}"  # workers may share the dir
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise RunError(f"Cannot write to run directory {self.path}: {e.strerror}") from None

    def check_free_space(self, needed: int) -> None:
        """Refuses a run that needs about `needed` bytes more than its file system has free.

        Checked up front: a disk that fills mid-run fails a checkpoint or sample write.
        """
        free = shutil.disk_usage(self.path).free
        if free < needed:
            mib = 2 ** 20
            raise RunError(f"Not enough free disk space for run directory {self.path}: "
                           f"{free / mib:.1f} MiB free, the run needs about "
                           f"{needed / mib:.1f} MiB (checkpoints, samples, logs). Free some "
                           "space or choose another --run-dir.")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def build_generator(config: Config, sync_batchnorm: bool = False):
    """The generator `config` describes, built (called once on one latent)."""
    from tfgan.models import Generator, balanced_labels, with_labels

    m = config.model
    g = Generator(latent_dim=m.latent_dim, size=m.height, base_width=m.generator_width,
                  sync_batchnorm=sync_batchnorm, num_classes=m.num_classes,
                  class_norm=m.g_cond == "norm" and m.num_classes > 0,
                  pixel_noise=m.g_noise == "pixel", last_up=m.g_last)
    with_labels(g, tf.zeros([1, m.latent_dim]), balanced_labels(1, m.num_classes),
                training=False)
    return g


def load_generator(run: RunDir, checkpoint: Optional[str] = None, prefer_ema: bool = True):
    """The trained generator of a run (its EMA copy when the run kept one).

    Args:
      run: the run directory.
      checkpoint: a checkpoint prefix; the newest of the run when None.
      prefer_ema: load the exponential moving average of G's weights when present.

    Returns:
      (generator, config, stats, step)
    """
    config = run.load_config()
    stats = run.load_stats()
    checkpoint = checkpoint or run.latest_checkpoint()
    if not checkpoint:
        raise RunError(f"Run has no checkpoint yet: {run.checkpoints}")
    g = build_generator(config)
    step = tf.Variable(0, dtype=tf.int64)
    use_ema = prefer_ema and config.train.ema_decay > 0
    # Only G (or its average) is restored; D and the optimisers stay in the file.
    try:
        weights = index_keyed_weights if is_index_keyed(checkpoint) else trackable_weights
        ckpt = tf.train.Checkpoint(**{("ema_generator" if use_ema else "generator"):
                                      weights(g), "step": step})
        ckpt.restore(checkpoint).expect_partial().assert_existing_objects_matched()
    except (tf.errors.NotFoundError, ValueError) as e:
        raise RunError(f"Cannot read checkpoint {checkpoint}: {str(e).splitlines()[0]}") from None
    return g, config, stats, int(step.numpy())
