"""`train(config, run_dir)`: everything `python -m training.run` does, as a function.

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

Training on several machines (MultiWorkerMirroredStrategy)
----------------------------------------------------------
Start the same command on every machine, each with a TF_CONFIG naming all workers and
its own place among them, and with `--strategy multiworker`::

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}'     # index 1 on host2
    python -m training.run --strategy multiworker --run-dir /shared/runs/a --data /shared/audio

* `--run-dir` and `--data` must be the same path on every machine (a shared file
  system). Worker 0 (or the "chief" task, if the cluster has one) is the chief: it alone
  writes checkpoints, metrics, samples, logs, config.json and stats.json. The other
  workers take part in every checkpoint save (saving may need collective ops), write it
  to a scratch directory under RUN/checkpoints and delete it at once.
* `--batch-size` is the global batch: each worker computes the whole input pipeline and
  keeps its share of every global batch (auto-shard policy DATA), so N workers train on
  exactly the batches one process would, and give the same weights up to float round-off.
  BatchNorm statistics are synchronised across all replicas.
* Training runs in a plain `strategy.run` loop (`loop="custom"`; Keras's fit fails under
  this strategy, keras-team/keras#20585).
* `--resume` works the same on every worker: all restore the chief's newest checkpoint.
  Stop or restart all workers together; a stop signal to any worker stops all of them at
  the same step.
* Cluster schedulers that set TF_CONFIG themselves (Kubeflow's TFJob, Vertex AI, ...)
  need nothing more; on others (e.g. Slurm), build TF_CONFIG from the host list and the
  task's rank before starting Python.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import signal
import sys
import threading
from typing import Optional, Sequence

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

ON_NAN = ("stop", "lower-lr")
MAX_LR_LOWERINGS = 3
CHECKPOINTS_KEPT = 3
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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


def worker_role(strategy: tf.distribute.Strategy) -> tuple[bool, int]:
    """(is this process the chief, its task index). A lone process is the chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster:
        return True, 0
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    chief = task_type in (None, "chief") or (
        task_type == "worker" and task_id == 0 and "chief" not in cluster)
    return chief, task_id


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


def restore_newest(ckpt: tf.train.Checkpoint, directory, stream=sys.stdout) -> Optional[str]:
    """Restores the newest checkpoint listed in `directory` that reads back whole.

    Returns:
      Its path, or None when none is listed.

    Raises:
      RunError: checkpoints are listed but none of them reads back.
    """
    state = tf.train.get_checkpoint_state(str(directory))
    listed = list(state.all_model_checkpoint_paths) if state else []
    for path in reversed(listed):
        try:
            ckpt.restore(path).assert_existing_objects_matched()
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


def _any_worker(strategy: tf.distribute.Strategy):
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
        tracked = dict(generator=trackable_weights(gan.generator),
                       discriminator=trackable_weights(gan.discriminator),
                       g_optimizer=gan.g_optimizer, d_optimizer=gan.d_optimizer,
                       ada_p=gan.ada_p, step=self.step_var)
        if gan.ema_generator is not None:
            tracked["ema_generator"] = trackable_weights(gan.ema_generator)
        self.ckpt = tf.train.Checkpoint(**tracked)
        self.scratch = None if chief else run.checkpoints / f".worker-{task_id}-tmp"
        if chief:
            for stale in run.checkpoints.glob("*_temp"):  # a save cut short by a kill
                shutil.rmtree(stale, ignore_errors=True)
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)
        self.manager = tf.train.CheckpointManager(
            self.ckpt, str(self.scratch or run.checkpoints), max_to_keep=CHECKPOINTS_KEPT,
            checkpoint_name="ckpt")

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
        return restore_newest(self.ckpt, self.run.checkpoints, stream)


def _lower_learning_rates(gan: GAN, config: Config, run: Optional[RunDir], step: int) -> Config:
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


def train(config: Config, run_dir, resume: bool = False, loop: str = "fit",
          strategy: Optional[tf.distribute.Strategy] = None, stream=sys.stdout,
          on_nan: str = "stop", callbacks: Sequence[keras.callbacks.Callback] = ()) -> dict:
    """Trains a GAN as `config` says and writes the run directory.

    Args:
      config: the resolved config (presets applied, flags filled in).
      run_dir: where the run lives; created if missing.
      resume: continue from the newest checkpoint of `run_dir`.
      loop: "fit" (keras.Model.fit) or "custom" (a plain strategy.run loop).
      strategy: a tf.distribute strategy; by default from `config.train.strategy`.
      stream: where progress lines go.
      on_nan: "stop" or "lower-lr": what to do after restoring the last good checkpoint
        when a loss, gradient norm or weight becomes NaN or infinite.
      callbacks: more Keras callbacks, called after the built-in ones at every step.

    Returns:
      The last logged metrics record plus "run_dir", "start_step", "stopped_by" (the
      signal name, or None) and "step" of the last checkpoint when stopped by a signal.

    Raises:
      RunError: the run directory cannot be used as asked (see `RunDir`).
      NonFiniteLoss: training diverged (after restoring the last good checkpoint).
    """
    config.validate()
    if on_nan not in ON_NAN:
        raise ValueError(f"on_nan must be one of {ON_NAN}. Received: on_nan={on_nan!r}")
    run = RunDir(run_dir)
    precision = resolve_precision(config.train.precision)
    keras.mixed_precision.set_global_policy(precision)
    if strategy is None:
        # First: MultiWorkerMirroredStrategy must exist before any other TF op runs.
        strategy = make_strategy(config.train.strategy)
    chief, task_id = worker_role(strategy)
    multiworker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if multiworker:
        loop = "custom"  # keras-team/keras#20585: fit fails under MultiWorkerMirroredStrategy
    # The chief may already have written config.json when another worker looks, so only
    # the chief refuses a directory that holds a run.
    if chief and run.exists() and not resume:
        raise RunError(f"{run.path} already holds a run. Pass --resume to continue it, or "
                       "choose another --run-dir.")
    if resume and run.exists():
        check_compatible(run.load_config(), config)
    run.prepare()
    if config.train.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size must divide evenly over {strategy.num_replicas_in_sync} "
                         f"replicas. Received: batch_size={config.train.batch_size}")
    keras.utils.set_random_seed(config.train.seed)

    gan = build_gan(config, strategy, precision)
    run.check_free_space(estimate_run_bytes(config, gan))

    data_root = pipeline.builtin_or(config.data.data_dir)
    scan = pipeline.scan_folder(data_root, config.data)
    print(scan.summary(), file=stream, flush=True)
    if resume and run.stats_path.exists():
        stats = run.load_stats()
    else:
        stats = pipeline.compute_stats(scan, config.data)  # from the good files only
        if chief:
            stats.save(run.stats_path)
    if chief:
        run.save_config(config)

    checkpoints = RunCheckpoints(gan, run, config.train.checkpoint_every, chief, task_id)
    start_step = 0
    restored = checkpoints.restore(stream) if resume else None
    if restored:
        start_step = checkpoints.step
        print(f"Resumed from {restored} at step {start_step}", file=stream, flush=True)
    else:
        # Step 0 is a good checkpoint too: a run that diverges early has one to go back to.
        checkpoints.checkpointer(cb.StepCounter(0, config.train.steps)).save()
    set_learning_rates(gan, config)
    if chief:
        run.truncate_metrics(start_step)
    total = config.train.steps
    if start_step >= total:
        print(f"Nothing to do: the run is at step {start_step} of {total}.", file=stream)
        return {"run_dir": str(run.path), "start_step": start_step, "stopped_by": None}

    writer = tf.summary.create_file_writer(str(run.logs)) if chief else None
    if chief:
        _log_hparams(writer, config)
    request = cb.StopRequest()
    any_worker = _any_worker(strategy) if multiworker else None
    first_step, lowered = start_step, 0
    with stop_on_signals(request):
        while True:
            counter = cb.StepCounter(start_step, total)
            saver = checkpoints.checkpointer(counter)
            stopper = cb.GracefulStop(counter, saver, request, any_worker)
            cbs = [counter,
                   cb.MetricsLogger(counter, config.train.log_every, run.metrics_path, writer,
                                    stream, write=chief)]
            if chief:
                cbs.append(cb.SampleWriter(counter, config.train.sample_every, run, stats,
                                           fixed_latents(config), gan.sampler(),
                                           config.train.griffin_lim_iters, writer))
            cbs += [saver, stopper, *callbacks]
            ds = pipeline.make_dataset(scan, config.data, stats, config.train.batch_size,
                                       training=True, seed=config.train.seed + start_step)
            ds = gan_dataset(ds, config, start_step)
            try:
                _run_loop(loop, gan, ds, strategy, total - start_step, cbs)
                break
            except cb.NonFiniteLoss as e:
                restored = checkpoints.restore(stream)
                if not restored:
                    raise cb.NonFiniteLoss(f"{e} No good checkpoint to go back to.") from None
                start_step = checkpoints.step
                if on_nan == "stop" or lowered >= MAX_LR_LOWERINGS:
                    why = (f" (still, after lowering the learning rates {lowered} times)"
                           if lowered else "")
                    raise cb.NonFiniteLoss(
                        f"{e}{why} Restored the last good checkpoint, step {start_step} "
                        f"({restored}), which stays the newest. Resume with --resume and a "
                        "lower --lr, or run with --on-nan lower-lr.") from None
                lowered += 1
                config = _lower_learning_rates(gan, config, run if chief else None, start_step)
                print(f"{e} Restored the last good checkpoint, step {start_step}, and lowered "
                      f"both learning rates 10x (lr {config.train.lr:g}, d_lr "
                      f"{config.train.d_lr:g}); continuing.", file=stream, flush=True)
    if writer is not None:
        writer.flush()
    result = {"run_dir": str(run.path), "start_step": first_step, "stopped_by": None}
    if stopper.stopped_at is not None:
        name = signal.Signals(stopper.signum).name
        where = "" if request.signum else ", sent to another worker"
        print(f"stopped by signal at step {stopper.stopped_at} ({name}{where}); resume with "
              "--resume", file=stream, flush=True)
        result.update(stopped_by=name, step=stopper.stopped_at)
    records = run.read_metrics()
    return {**(records[-1] if records else {}), **result}


def _run_loop(loop: str, gan: GAN, ds, strategy, steps: int, callbacks) -> None:
    if loop == "fit":
        gan.fit(ds, epochs=1, steps_per_epoch=steps, callbacks=callbacks, verbose=0,
                shuffle=False)  # the pipeline shuffles; Keras would only warn
    elif loop == "custom":
        custom_loop(gan, ds, strategy, steps, callbacks)
    else:
        raise ValueError(f"loop must be 'fit' or 'custom'. Received: loop={loop!r}")


def custom_loop(gan: GAN, ds: tf.data.Dataset, strategy, steps: int, callbacks) -> None:
    """Drives `gan.train_step` with `strategy.run`, calling Keras callbacks like fit does.

    Stops early when a callback sets `gan.stop_training`, as fit does.
    """
    options = tf.data.Options()
    # DATA, not FILE: every worker runs the whole pipeline and keeps its slice of each
    # global batch, so the global batches are exactly those of a single process.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dist = iter(strategy.experimental_distribute_dataset(ds.with_options(options)))

    @tf.function
    def step_fn(iterator):
        strategy.run(gan.train_step, args=(next(iterator),))

    cbs = keras.callbacks.CallbackList(callbacks, model=gan)
    gan.stop_training = False
    cbs.on_train_begin()
    for i in range(steps):
        cbs.on_train_batch_begin(i)
        step_fn(dist)
        cbs.on_train_batch_end(i)
        if gan.stop_training:
            break
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
