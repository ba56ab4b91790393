"""How much of a BatchNorm discriminator's lead comes from batch statistics?

The clean balance measure (tfgan.eval.live.CleanBalance) asks D what the train step asks:
a batch of real clips and a batch of G(z), each normalised by its own BatchNorm
statistics. A BatchNorm D can then tell the batches apart by their statistics as a whole
(their spread, say), not only clip by clip. This probe loads a finished run's last
checkpoint and measures how often D ranks a real clip above its paired fake three ways:

  apart      real and fake in separate training-mode batches (`--d-batch apart`, the
             default train step, and what its logs report)
  mixed      one training-mode batch holding both, so both share its statistics
             (`--d-batch joint`)
  inference  BatchNorm's moving statistics, each clip on its own

For a D without normalisation the three agree. Usage:

  python training/experiments/bn_probe.py RUN [RUN ...] [--batches 8] [--out FILE.md]
"""
import argparse
import io
from pathlib import Path

import numpy as np


def probe(run_dir: str, batches: int) -> dict:
    import keras
    import tensorflow as tf

    from tfgan import trainer
    from tfgan.data import pipeline
    from tfgan.models import with_labels
    from tfgan.recovery import RunCheckpoints
    from tfgan.rundir import RunDir

    run = RunDir(run_dir)
    config = run.load_config()
    precision = trainer.resolve_precision(config.train.precision)
    keras.mixed_precision.set_global_policy(precision)
    scan = trainer.open_data(config)
    config = trainer.with_classes(config, scan, config)
    gan = trainer.build_gan(config, tf.distribute.get_strategy(), precision)
    checkpoints = RunCheckpoints(gan, run, config.train.checkpoint_every)
    if not checkpoints.restore(io.StringIO()):
        raise SystemExit(f"{run_dir} has no checkpoint")
    ds = pipeline.make_dataset(scan, config.data, run.load_stats(), config.train.batch_size,
                               training=True, seed=123, with_labels=True)
    g, d = gan.generator, gan.discriminator
    conditional = bool(getattr(g, "num_classes", 0))
    saved = [(v, v.numpy()) for v in g.non_trainable_variables + d.non_trainable_variables]

    def ranked(real, fake, labels, joint, training=True):
        gan.joint_batch = joint
        r, f = (tf.reshape(tf.cast(x, tf.float32), [-1])
                for x in gan.d_pair(real, fake, labels, training=training))
        return float(tf.reduce_mean(tf.cast(r > f, tf.float32)))

    out = {"apart": [], "mixed": [], "inference": []}
    for i, (real, labels) in enumerate(ds.take(batches)):
        real = tf.cast(real, tf.float32)
        n = int(real.shape[0])
        labels = tf.cast(labels, tf.int32) if conditional else None
        z = tf.random.stateless_normal([n, config.model.latent_dim], seed=[7, i])
        fake = tf.cast(with_labels(g, z, labels, training=True), tf.float32)
        out["apart"].append(ranked(real, fake, labels, joint=False))
        out["mixed"].append(ranked(real, fake, labels, joint=True))
        out["inference"].append(ranked(real, fake, labels, joint=False, training=False))
        for v, value in saved:  # training-mode calls moved the moving statistics
            v.assign(value)
    return {"run": run_dir, "d_norm": config.model.d_norm, "step": checkpoints.step,
            **{k: float(np.mean(v)) for k, v in out.items()}}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--out", help="also write the table to this markdown file")
    a = p.parse_args(argv)
    lines = ["| run | D norm | step | ranks real above fake: apart | mixed | inference |",
             "|---|---|---|---|---|---|"]
    for r in a.runs:
        x = probe(r, a.batches)
        lines.append(f"| {Path(r).name} | {x['d_norm']} | {x['step']} | {x['apart']:.3f} | "
                     f"{x['mixed']:.3f} | {x['inference']:.3f} |")
        print(lines[-1], flush=True)
    if a.out:
        Path(a.out).write_text(
            f"# {__doc__.splitlines()[0]}\n\nCommand: `python training/experiments/bn_probe.py "
            f"{' '.join(a.runs)} --batches {a.batches} --out {a.out}`\n\n"
            + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
