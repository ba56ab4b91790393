"""`train(config, run_dir)`: everything `python -m training.run` does, as a function."""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tfgan import callbacks as cb
from tfgan.config import Config
from tfgan.data import pipeline
from tfgan.gan import GAN
from tfgan.models import Generator, build_discriminator
from tfgan.rundir import RunDir, RunError, trackable_weights

log = logging.getLogger(__name__)


def resolve_precision(name: str) -> str:
    """auto -> mixed_float16 on a GPU, float32 otherwise."""
    if name == "auto":
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    return name


def make_strategy(name: str) -> tf.distribute.Strategy:
    """auto: MirroredStrategy when more than one GPU is visible, else the default strategy."""
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy. Received: strategy={name!r}")


def build_gan(config: Config, strategy: tf.distribute.Strategy, precision: str) -> GAN:
    """Builds and compiles G, D (and the EMA copy of G) under `strategy`'s scope."""
    m, t = config.model, config.train
    sync = strategy.num_replicas_in_sync > 1
    with strategy.scope():
        def make_g():
            g = Generator(m.latent_dim, m.height, m.base_width, sync_batchnorm=sync)
            g(tf.zeros([1, m.latent_dim]))
            return g

        generator = make_g()
        ema = None
        if t.ema_decay > 0:
            ema = make_g()
            for a, b in zip(ema.weights, generator.weights):
                a.assign(b)
        disc = build_discriminator(m.disc, size=m.height, base_width=m.base_width,
                                   spectral_norm=m.spectral_norm, sync_batchnorm=sync)
        disc(tf.zeros([1, m.height, m.width, 1]))
        gan = GAN(generator, disc, m.latent_dim, n_critic=t.n_critic, gp_weight=t.gp_weight,
                  r1_gamma=t.r1_gamma, instance_noise=t.instance_noise,
                  noise_anneal_steps=t.steps, label_smoothing=t.label_smoothing,
                  augment=t.augment, ada_target=t.ada_target, ada_kimg=t.ada_kimg,
                  ema_decay=t.ema_decay, ema_generator=ema)

        def optimizer(lr):
            opt = keras.optimizers.Adam(lr, beta_1=t.beta_1, beta_2=t.beta_2)
            if precision == "mixed_float16":
                opt = keras.optimizers.LossScaleOptimizer(opt)
            return opt

        d_opt, g_opt = optimizer(t.d_lr), optimizer(t.lr)
        gan.compile(d_optimizer=d_opt, g_optimizer=g_opt, loss=t.loss)
        # Optimiser slots must exist before a checkpoint is restored into them.
        d_opt.build(disc.trainable_variables)
        g_opt.build(generator.trainable_variables)
    return gan


def gan_dataset(ds: tf.data.Dataset, config: Config, start_step: int) -> tf.data.Dataset:
    """Adds latent noise to each batch: `{"real": x, "z": [b, n_critic + 1, latent]}`.

    z depends only on (seed, step), so a resumed run continues the same noise sequence and
    every replica split of a global batch sees the same values.
    """
    t, latent = config.train, config.model.latent_dim
    steps = tf.data.Dataset.counter(start=start_step)

    def add_z(x, step):
        z = tf.random.stateless_normal([t.batch_size, t.n_critic + 1, latent],
                                       seed=tf.stack([tf.cast(t.seed, tf.int64), step]))
        return {"real": x, "z": z}

    return tf.data.Dataset.zip((ds, steps)).map(add_z)


def fixed_latents(config: Config) -> tf.Tensor:
    """The latent batch every sample grid of a run is drawn from."""
    return tf.random.stateless_normal([config.train.num_samples, config.model.latent_dim],
                                      seed=[config.train.seed, 7919])


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


def train(config: Config, run_dir, resume: bool = False, loop: str = "fit",
          strategy: Optional[tf.distribute.Strategy] = None, stream=sys.stdout) -> dict:
    """Trains a GAN as `config` says and writes the run directory.

    Args:
      config: the resolved config (presets applied, flags filled in).
      run_dir: where the run lives; created if missing.
      resume: continue from the newest checkpoint of `run_dir`.
      loop: "fit" (keras.Model.fit) or "custom" (a plain strategy.run loop).
      strategy: a tf.distribute strategy; by default from `config.train.strategy`.
      stream: where progress lines go.

    Returns:
      The last logged metrics record plus "run_dir" and "start_step".
    """
    config.validate()
    run = RunDir(run_dir)
    if run.exists() and not resume:
        raise RunError(f"{run.path} already holds a run. Pass --resume to continue it, or "
                       "choose another --run-dir.")
    if resume and run.exists():
        check_compatible(run.load_config(), config)
    run.prepare()

    precision = resolve_precision(config.train.precision)
    keras.mixed_precision.set_global_policy(precision)
    if strategy is None:
        strategy = make_strategy(config.train.strategy)
    if config.train.strategy == "multiworker":
        loop = "custom"  # keras-team/keras#20585: fit fails under MultiWorkerMirroredStrategy
    if config.train.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size must divide evenly over {strategy.num_replicas_in_sync} "
                         f"replicas. Received: batch_size={config.train.batch_size}")
    tf.keras.utils.set_random_seed(config.train.seed) if hasattr(tf, "keras") else None
    keras.utils.set_random_seed(config.train.seed)

    data_root = pipeline.builtin_or(config.data.data_dir)
    scan = pipeline.scan_folder(data_root, config.data)
    print(scan.summary(), file=stream, flush=True)
    if resume and run.stats_path.exists():
        stats = run.load_stats()
    else:
        stats = pipeline.compute_stats(scan, config.data)
        stats.save(run.stats_path)
    run.save_config(config)

    gan = build_gan(config, strategy, precision)
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    tracked = dict(generator=trackable_weights(gan.generator),
                   discriminator=trackable_weights(gan.discriminator),
                   g_optimizer=gan.g_optimizer, d_optimizer=gan.d_optimizer,
                   ada_p=gan.ada_p, step=step_var)
    if gan.ema_generator is not None:
        tracked["ema_generator"] = trackable_weights(gan.ema_generator)
    ckpt = tf.train.Checkpoint(**tracked)
    manager = tf.train.CheckpointManager(ckpt, str(run.checkpoints), max_to_keep=3,
                                         checkpoint_name="ckpt")
    start_step = 0
    if resume and manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        start_step = int(step_var.numpy())
        print(f"Resumed from {manager.latest_checkpoint} at step {start_step}",
              file=stream, flush=True)
    run.truncate_metrics(start_step)
    total = config.train.steps
    if start_step >= total:
        print(f"Nothing to do: the run is at step {start_step} of {total}.", file=stream)
        return {"run_dir": str(run.path), "start_step": start_step}

    ds = pipeline.make_dataset(scan, config.data, stats, config.train.batch_size,
                               training=True, seed=config.train.seed + start_step)
    ds = gan_dataset(ds, config, start_step)

    writer = tf.summary.create_file_writer(str(run.logs))
    _log_hparams(writer, config)
    counter = cb.StepCounter(start_step, total)
    logger = cb.MetricsLogger(counter, config.train.log_every, run.metrics_path, writer, stream)
    callbacks = [
        counter,
        logger,
        cb.SampleWriter(counter, config.train.sample_every, run, stats, fixed_latents(config),
                        gan.sampler(), config.train.griffin_lim_iters, writer),
        cb.Checkpointer(counter, config.train.checkpoint_every, manager, step_var),
    ]
    steps = total - start_step
    if loop == "fit":
        gan.fit(ds, epochs=1, steps_per_epoch=steps, callbacks=callbacks, verbose=0)
    elif loop == "custom":
        custom_loop(gan, ds, strategy, steps, callbacks)
    else:
        raise ValueError(f"loop must be 'fit' or 'custom'. Received: loop={loop!r}")
    writer.flush()
    records = run.read_metrics()
    return {**(records[-1] if records else {}), "run_dir": str(run.path),
            "start_step": start_step}


def custom_loop(gan: GAN, ds: tf.data.Dataset, strategy, steps: int, callbacks) -> None:
    """Drives `gan.train_step` with `strategy.run`, calling Keras callbacks like fit does."""
    dist = iter(strategy.experimental_distribute_dataset(ds))

    @tf.function
    def step_fn(iterator):
        strategy.run(gan.train_step, args=(next(iterator),))

    cbs = keras.callbacks.CallbackList(callbacks, model=gan)
    cbs.on_train_begin()
    for i in range(steps):
        cbs.on_train_batch_begin(i)
        step_fn(dist)
        cbs.on_train_batch_end(i)
    cbs.on_train_end()


def _log_hparams(writer, config: Config) -> None:
    """The config as TensorBoard hparams, so runs can be compared in its HParams tab."""
    try:
        from tensorboard.plugins.hparams import api as hp
    except ImportError:
        return
    flat = {}
    for section in ("data", "model", "train"):
        for k, v in dataclasses.asdict(getattr(config, section)).items():
            flat[f"{section}.{k}"] = "" if v is None else v
    with writer.as_default():
        hp.hparams(flat)
