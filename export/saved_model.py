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

    def _spectrogram(self, z):
        spec = self.generator(z, training=False)
        log_mag = audio.denormalise(spec[..., 0], self.stats)[..., None]
        return {"spectrogram": spec, "log_magnitude": log_mag}

    def _audio(self, z):
        spec = self.generator(z, training=False)
        return {"audio": audio.to_waveform(spec, self.stats, self.griffin_lim_iters)}

    def _generate(self, seed, count):
        checks = [
            tf.debugging.assert_positive(count, message="count must be at least 1"),
            tf.debugging.assert_less_equal(
                count, self.max_count, message=f"count must be at most {self.max_count}"),
        ]
        with tf.control_dependencies(checks):
            z = tf.random.stateless_normal(tf.stack([count, self.latent_dim]),
                                           seed=tf.stack([seed, tf.constant(0, tf.int64)]))
        return {"z": z, "spectrogram": self.generator(z, training=False)}


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
    if run.exists() and run.load_config().model.conditional:
        raise RunError("This run is class-conditional; exporting conditional generators "
                       "(signatures with a class input) is not built yet.")
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
    module = GeneratorModule(generator, stats, iters)
    try:
        tf.saved_model.save(module, str(tmp), signatures={
            "serving_default": module.serving_default, "audio": module.audio,
            "generate": module.generate})
        extra = tmp / "assets.extra"
        extra.mkdir()
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
