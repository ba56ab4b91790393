"""python -m export.saved_model: a run's generator as a SavedModel for TensorFlow Serving.

Writes `DIR/<version>/saved_model.pb + variables/ + assets.extra/{config,stats}.json` in
TF Serving's layout. The version directory is built under a temporary name and renamed
into place only when complete, so a server watching DIR never loads half a model, and an
existing version is never overwritten.

Signatures (pure TF ops; the model loads without this project installed):
  serving_default: z float32 [batch, latent_dim] -> spectrogram [batch, H, W, 1] in [-1, 1],
                   log_magnitude [batch, H, W, 1] (natural-log magnitudes)
  audio:           z -> audio float32 [batch, samples] in [-1, 1] (Griffin-Lim in the graph)
  generate:        seed int64 [], count int32 [] -> z [count, latent_dim], spectrogram

A class-conditional run's signatures take a class as well (its names, in label order, are
in assets.extra/classes.txt and config.json); -1 (by index) or "" (by name) asks for
class i mod K in row i, so every class comes out in turn:
  serving_default:     z, label int32 [batch] -> spectrogram, log_magnitude, label
  audio:               z, label -> audio
  generate:            seed, count, label int32 [] -> z, label [count], spectrogram
  spectrogram_by_name, audio_by_name, generate_by_name: the same with class_name (string)
                       in place of label, mapped to the index inside the graph; an unknown
                       name fails with INVALID_ARGUMENT naming the known classes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":  # before TensorFlow is imported: see tfgan/console.py
    from tfgan.console import quiet_native_logs

    quiet_native_logs()

import tensorflow as tf  # noqa: E402

from tfgan import audio  # noqa: E402
from tfgan.rundir import RunDir, RunError, load_generator  # noqa: E402

MAX_COUNT = 64  # most samples one `generate` call may ask for


class GeneratorModule(tf.Module):
    """The generator, the run's statistics and the inverse path, with fixed signatures."""

    def __init__(self, generator, stats: audio.Stats, griffin_lim_iters: int,
                 max_count: int = MAX_COUNT):
        super().__init__()
        self.generator = generator
        self.latent_dim = int(generator.latent_dim)
        self.stats = stats
        self.griffin_lim_iters = griffin_lim_iters
        self.max_count = max_count
        z_spec = tf.TensorSpec([None, self.latent_dim], tf.float32, name="z")
        self.serving_default = tf.function(self._spectrogram, input_signature=[z_spec])
        self.audio = tf.function(self._audio, input_signature=[z_spec])
        self.generate = tf.function(self._generate, input_signature=[
            tf.TensorSpec([], tf.int64, name="seed"), tf.TensorSpec([], tf.int32, name="count")])

    def signatures(self) -> dict:
        return {"serving_default": self.serving_default, "audio": self.audio,
                "generate": self.generate}

    def _g(self, z, labels=None):
        return self.generator(z, training=False)

    def _spectrogram(self, z, labels=None):
        spec = self._g(z, labels)
        log_mag = audio.denormalise(spec[..., 0], self.stats)[..., None]
        return {"spectrogram": spec, "log_magnitude": log_mag}

    def _audio(self, z, labels=None):
        spec = self._g(z, labels)
        return {"audio": audio.to_waveform(spec, self.stats, self.griffin_lim_iters)}

    def _latents(self, seed, count):
        checks = [
            tf.debugging.assert_positive(count, message="count must be at least 1"),
            tf.debugging.assert_less_equal(
                count, self.max_count, message=f"count must be at most {self.max_count}"),
        ]
        with tf.control_dependencies(checks):
            return tf.random.stateless_normal(tf.stack([count, self.latent_dim]),
                                              seed=tf.stack([seed, tf.constant(0, tf.int64)]))

    def _generate(self, seed, count):
        z = self._latents(seed, count)
        return {"z": z, "spectrogram": self._g(z)}


class ConditionalGeneratorModule(GeneratorModule):
    """A class-conditional generator: every signature takes a class, by index or by name."""

    def __init__(self, generator, stats, griffin_lim_iters: int, classes,
                 max_count: int = MAX_COUNT):
        super().__init__(generator, stats, griffin_lim_iters, max_count)
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(self.classes),
                                                tf.range(self.num_classes, dtype=tf.int32)),
            default_value=-2)
        z = tf.TensorSpec([None, self.latent_dim], tf.float32, name="z")
        label = tf.TensorSpec([None], tf.int32, name="label")
        name = tf.TensorSpec([None], tf.string, name="class_name")
        seed, count = (tf.TensorSpec([], tf.int64, name="seed"),
                       tf.TensorSpec([], tf.int32, name="count"))
        one_label = tf.TensorSpec([], tf.int32, name="label")
        one_name = tf.TensorSpec([], tf.string, name="class_name")
        self.serving_default = tf.function(self._spectrogram_at, input_signature=[z, label])
        self.audio = tf.function(self._audio, input_signature=[z, label])
        self.generate = tf.function(self._generate_at, input_signature=[seed, count, one_label])
        self.spectrogram_by_name = tf.function(
            lambda z, class_name: self._spectrogram_at(z, self._index(class_name)),
            input_signature=[z, name])
        self.audio_by_name = tf.function(
            lambda z, class_name: self._audio(z, self._index(class_name)),
            input_signature=[z, name])
        self.generate_by_name = tf.function(
            lambda seed, count, class_name: self._generate_at(seed, count,
                                                              self._index(class_name)),
            input_signature=[seed, count, one_name])

    def signatures(self) -> dict:
        return {**super().signatures(), "spectrogram_by_name": self.spectrogram_by_name,
                "audio_by_name": self.audio_by_name, "generate_by_name": self.generate_by_name}

    def _index(self, names):
        """Class names -> indices ("" -> -1, every class in turn); unknown names fail."""
        idx = tf.where(tf.equal(names, ""), tf.constant(-1, tf.int32), self.table.lookup(names))
        known = ", ".join(self.classes)
        flat_names, flat_idx = tf.reshape(names, [-1]), tf.reshape(idx, [-1])
        bad = tf.boolean_mask(flat_names, tf.equal(flat_idx, -2))
        check = tf.debugging.Assert(tf.size(bad) == 0, [tf.strings.join([
            "unknown class name: ", tf.strings.reduce_join(bad[:1]),
            f" (the classes of this model are: {known})"])])
        with tf.control_dependencies([check]):
            return tf.identity(idx)

    def _labels(self, labels):
        """Row i's class: its label, or i mod K where the label is -1; others fail."""
        labels = tf.reshape(labels, [-1])
        ok = tf.reduce_all((labels >= -1) & (labels < self.num_classes))
        check = tf.debugging.Assert(ok, [
            f"label must be a class index in [0, {self.num_classes - 1}] or -1 (every class "
            f"in turn); the classes of this model are: {', '.join(self.classes)}"])
        with tf.control_dependencies([check]):
            turn = tf.math.floormod(tf.range(tf.size(labels), dtype=tf.int32),
                                    self.num_classes)
            return tf.where(labels < 0, turn, labels)

    def _g(self, z, labels=None):
        return self.generator(z, labels, training=False)

    def _row_labels(self, z, labels):
        """`_labels`, after checking there is one label per row of z."""
        labels = tf.reshape(labels, [-1])
        check = tf.debugging.Assert(tf.equal(tf.size(labels), tf.shape(z)[0]), [
            "give one label (or class_name) per row of z; -1 (or an empty name) in a row "
            "asks for every class in turn"])
        with tf.control_dependencies([check]):
            return self._labels(labels)

    def _spectrogram_at(self, z, labels):
        labels = self._row_labels(z, labels)
        return {**self._spectrogram(z, labels), "label": labels}

    def _audio(self, z, labels=None):
        return super()._audio(z, self._row_labels(z, labels))

    def _generate_at(self, seed, count, label):
        z = self._latents(seed, count)  # after the checks of count
        labels = self._labels(tf.fill(tf.shape(z)[:1], label))
        return {"z": z, "label": labels, "spectrogram": self._g(z, labels)}


def next_version(base: Path) -> int:
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] \
        if base.exists() else []
    return max(versions, default=0) + 1


def export(run_dir, model_base_path, version: int | None = None, checkpoint: str | None = None,
           griffin_lim_iters: int | None = None, prefer_ema: bool = True,
           best: bool = True) -> Path:
    """Exports the run's generator; returns the version directory.

    Args:
      checkpoint: a checkpoint prefix; by default the best step by in-training FD
        (checkpoints/best) when the run kept one and `best`, else the newest.

    Raises:
      RunError: the run cannot be read, or the version already exists.
    """
    run = RunDir(run_dir)
    source = "given"
    if checkpoint is None:
        checkpoint = run.best_checkpoint() if best else None
        source = "best" if checkpoint else "newest"
    generator, config, stats, step = load_generator(run, checkpoint, prefer_ema=prefer_ema)
    base = Path(model_base_path)
    base.mkdir(parents=True, exist_ok=True)
    version = version if version is not None else next_version(base)
    if version < 1:
        raise RunError(f"version must be a positive integer. Received: version={version}")
    final = base / str(version)
    if final.exists():
        raise RunError(f"Version {version} already exists in {base}; versions are never "
                       "overwritten. Omit --version to use the next free one.")
    tmp = base / f".tmp-{version}-{os.getpid()}"  # not an integer: servers ignore it
    shutil.rmtree(tmp, ignore_errors=True)
    iters = griffin_lim_iters or config.train.griffin_lim_iters
    classes = config.model.classes if config.model.conditional else ()
    module = (ConditionalGeneratorModule(generator, stats, iters, classes) if classes
              else GeneratorModule(generator, stats, iters))
    try:
        tf.saved_model.save(module, str(tmp), signatures=module.signatures())
        extra = tmp / "assets.extra"
        extra.mkdir()
        if classes:  # one name per line, in label order: index i is line i
            (extra / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
        (extra / "config.json").write_text(config.to_json())
        stats.save(extra / "stats.json")
        (extra / "export.json").write_text(json.dumps(
            {"run_dir": str(Path(run_dir).resolve()), "step": step, "griffin_lim_iters": iters,
             "checkpoint": source}) + "\n")
        os.rename(tmp, final)  # atomic on one filesystem; fails if `final` appeared meanwhile
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.saved_model", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True, help="a run written by training.run")
    p.add_argument("--model-base-path", required=True, metavar="DIR",
                   help="TF Serving model base path; the version goes in DIR/<N>")
    p.add_argument("--version", type=int, help="version number (default: next free integer)")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="checkpoint prefix (default: the best step by in-training FD, "
                        "checkpoints/best, else the newest)")
    p.add_argument("--last", action="store_true",
                   help="export the newest checkpoint even when the run kept a best one")
    p.add_argument("--griffin-lim-iters", type=int,
                   help="Griffin-Lim iterations baked into the audio signature "
                        "(default: the run's setting)")
    p.add_argument("--no-ema", action="store_true",
                   help="export G's raw weights even when the run kept an EMA copy")
    p.add_argument("--quiet", action="store_true", help="do not print the signature summary")
    args = p.parse_args(argv)
    try:
        path = export(args.run_dir, args.model_base_path, args.version, args.checkpoint,
                      args.griffin_lim_iters, prefer_ema=not args.no_ema, best=not args.last)
    except (RunError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    info = json.loads((path / "assets.extra" / "export.json").read_text())
    print(f"Exported {path} (step {info['step']}, {info['checkpoint']} checkpoint)")
    if not args.quiet:
        subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show",
                        "--dir", str(path), "--all"], check=False,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
