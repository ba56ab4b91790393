"""`train(config, run_dir)`: everything `python -m training.run` does, as a function.

Faults a run survives are handled in `tfgan.recovery` (see its docstring).

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

import dataclasses
import logging
import signal
import sys
from typing import Optional, Sequence

import keras
import tensorflow as tf

from tfgan import callbacks as cb
from tfgan.checkpoint_layout import optimizer_variables
from tfgan.config import Config, reg_every_for
from tfgan.data import pipeline, shards
from tfgan.eval.live import CleanBalance, build_held_out, make_quality_monitor
from tfgan.gan import GAN
from tfgan.models import balanced_labels, build_discriminator, with_labels
from tfgan.recovery import (MAX_LR_LOWERINGS, RunCheckpoints, any_worker_signal,
                            check_compatible, estimate_run_bytes, lower_learning_rates,
                            set_learning_rates, stop_on_signals)
from tfgan.rundir import RunDir, RunError, build_generator

log = logging.getLogger(__name__)

ON_NAN = ("stop", "lower-lr")


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


def sync_summary(strategy: tf.distribute.Strategy) -> str:
    """"2 workers, 4 replicas": the machines and the model copies training together."""
    workers = 1
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        spec = strategy.cluster_resolver.cluster_spec()
        workers = sum(spec.num_tasks(job) for job in ("chief", "worker") if job in spec.jobs)
    replicas = strategy.num_replicas_in_sync
    return (f"{workers} worker{'s' * (workers != 1)}, "
            f"{replicas} replica{'s' * (replicas != 1)}")


def build_gan(config: Config, strategy: tf.distribute.Strategy, precision: str) -> GAN:
    """Builds and compiles G, D (and the EMA copy of G) under `strategy`'s scope."""
    m, t = config.model, config.train
    sync = strategy.num_replicas_in_sync > 1
    reg_every = reg_every_for(config, strategy.num_replicas_in_sync)  # or refused
    with strategy.scope():
        generator = build_generator(config, sync_batchnorm=sync)
        ema = None
        if t.ema_decay > 0:
            ema = build_generator(config, sync_batchnorm=sync)
            for a, b in zip(ema.weights, generator.weights):
                a.assign(b)
        disc = build_discriminator(m.disc, size=m.height, base_width=m.base_width,
                                   spectral_norm=m.spectral_norm, sync_batchnorm=sync,
                                   norm=m.d_norm, num_classes=m.num_classes)
        with_labels(disc, tf.zeros([1, m.height, m.width, 1]),
                    balanced_labels(1, m.num_classes), training=False)
        gan = GAN(generator, disc, m.latent_dim, n_critic=t.n_critic, gp_weight=t.gp_weight,
                  r1_gamma=t.r1_gamma, r2_gamma=t.r2_gamma, reg_every=reg_every,
                  instance_noise=t.instance_noise,
                  noise_anneal_steps=t.steps, label_smoothing=t.label_smoothing,
                  augment=t.augment, ada_target=t.ada_target, ada_kimg=t.ada_kimg,
                  ema_decay=t.ema_decay, ema_rampup=t.ema_rampup, ema_generator=ema,
                  joint_batch=t.d_batch == "joint")

        def optimizer(lr):
            opt = keras.optimizers.Adam(lr, beta_1=t.beta_1, beta_2=t.beta_2)
            if precision == "mixed_float16":
                opt = keras.optimizers.LossScaleOptimizer(opt)
            return opt

        d_opt, g_opt = optimizer(t.d_lr), optimizer(t.lr)
        gan.compile(d_optimizer=d_opt, g_optimizer=g_opt, loss=t.loss)
        # Optimiser slots must exist before a checkpoint is restored into them; built in
        # path order, slot k belongs to the same variable whatever order layers are made in.
        d_opt.build(optimizer_variables(disc))
        g_opt.build(optimizer_variables(generator))
    return gan


def gan_dataset(ds: tf.data.Dataset, config: Config, start_step: int,
                pipeline: Optional[tuple[int, int]] = None) -> tf.data.Dataset:
    """Adds latent noise to each batch: `{"real": x, "z": [b, n_critic + 1, latent]}`
    (and `"labels"` when `ds` yields `(x, labels)` pairs, for a conditional model).

    z depends only on (seed, step), so a resumed run continues the same noise sequence and
    every replica split of a global batch sees the same values. `pipeline` (count, id):
    `ds` is one of several input pipelines' share of each global batch, and gets the
    matching share of the global batch's z.
    """
    t, latent = config.train, config.model.latent_dim
    steps = tf.data.Dataset.counter(start=start_step)
    share = t.batch_size // pipeline[0] if pipeline else t.batch_size
    first = share * pipeline[1] if pipeline else 0

    def add_z(batch, step):
        z = tf.random.stateless_normal([t.batch_size, t.n_critic + 1, latent],
                                       seed=tf.stack([tf.cast(t.seed, tf.int64), step]))
        z = z[first:first + share]
        if isinstance(batch, tuple):
            return {"real": batch[0], "labels": batch[1], "z": z}
        return {"real": batch, "z": z}

    return tf.data.Dataset.zip((ds, steps)).map(add_z)


SAMPLES_PER_CLASS = 4  # a conditional run's sample grid: one row of this many per class


def fixed_latents(config: Config) -> tf.Tensor:
    """The latent batch every sample grid of a run is drawn from."""
    k = config.model.num_classes
    n = k * SAMPLES_PER_CLASS if k else config.train.num_samples
    return tf.random.stateless_normal([n, config.model.latent_dim],
                                      seed=[config.train.seed, 7919])


def fixed_labels(config: Config):
    """The classes of `fixed_latents`, class by class (None: unconditional)."""
    k = config.model.num_classes
    return tf.repeat(tf.range(k, dtype=tf.int32), SAMPLES_PER_CLASS) if k else None


def open_data(config: Config):
    """The run's data: a checked folder scan, or prepared shards (a folder with a
    manifest, `tfgan.data.prepare`) whose audio settings must match the run's."""
    if shards.is_prepared(config.data.data_dir):
        prepared = shards.Prepared.open(config.data.data_dir)
        prepared.check_config(config.data)
        return prepared
    return pipeline.scan_folder(pipeline.builtin_or(config.data.data_dir), config.data)


def with_classes(config: Config, scan, saved: Optional[Config] = None) -> Config:
    """`config` with its conditional model's classes: the data's class sub-folders.

    `conditional="auto"` becomes True when every file is in one of two or more class
    sub-folders, else False.
    """
    mode = config.model.conditional
    classes = tuple(scan.class_names)
    labelled = len(classes) >= 2 and min(scan.labels, default=-1) >= 0
    if mode == "auto":
        mode = labelled
        config = dataclasses.replace(config, model=dataclasses.replace(config.model,
                                                                      conditional=mode))
    if not mode and config.model.g_cond == "norm":
        raise RunError("--g-cond norm steers G by class and needs a conditional model: every "
                       f"file in one of two or more class sub-folders; {scan.root} has "
                       f"{len(classes)} ({', '.join(classes) or 'none'}).")
    if not mode:
        return config
    if not labelled:
        raise RunError("--conditional needs every file in a class sub-folder and at least "
                       f"two classes; {scan.root} has {len(classes)} "
                       f"({', '.join(classes) or 'none'}).")
    if saved is not None and saved.model.classes and saved.model.classes != classes:
        raise RunError(f"The run was trained on classes {list(saved.model.classes)}; the data "
                       f"now has {list(classes)}. Use the same data or a new --run-dir.")
    return dataclasses.replace(config, model=dataclasses.replace(config.model, classes=classes))


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
    saved = run.load_config() if resume and run.exists() else None
    if saved is not None:
        if config.model.conditional == "auto":  # the run already decided
            config = dataclasses.replace(config, model=dataclasses.replace(
                config.model, conditional=saved.model.conditional, classes=saved.model.classes))
        check_compatible(saved, config)
    run.prepare()
    if config.train.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size must divide evenly over {strategy.num_replicas_in_sync} "
                         f"replicas. Received: batch_size={config.train.batch_size}")
    keras.utils.set_random_seed(config.train.seed)

    scan = open_data(config)
    print(scan.summary(), file=stream, flush=True)
    config = with_classes(config, scan, saved)
    gan = build_gan(config, strategy, precision)
    run.check_free_space(estimate_run_bytes(config, gan))
    if chief and strategy.num_replicas_in_sync > 1:
        print(f"{sync_summary(strategy)} in sync", file=stream, flush=True)
    if chief and config.train.reg_every == 0 and max(gan.r1_gamma, gan.r2_gamma) > 0:
        print(f"R1/R2 on every {gan.reg_every} D update(s) (--reg-every 0, auto)",
              file=stream, flush=True)
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
    held = clean = None
    if chief:
        # One batch per log line: no cache and small buffers, so this second pipeline
        # does not hold a second copy of the decoded data.
        clean_data = dataclasses.replace(config.data, cache=False, shuffle_buffer=16)
        clean = CleanBalance(gan, pipeline.make_dataset(
            scan, clean_data, stats, config.train.batch_size, training=True,
            seed=config.train.seed + 7_000_003 + start_step, with_labels=True),
            config.model.latent_dim, config.train.seed)
        if config.train.eval_every and config.train.eval_every <= total:
            held = None
            if isinstance(scan, shards.Prepared):
                print("In-training evaluation off: it scores against held-out files, and "
                      "prepared shards train on every file (score the run afterwards with "
                      "python -m tfgan.eval).", file=stream, flush=True)
            else:
                held = build_held_out(scan, config.data, stats, seed=config.train.seed,
                                      stream=stream)
            if held is None and not isinstance(scan, shards.Prepared):
                print("In-training evaluation off: it needs at least two class sub-folders "
                      "with enough files to hold half out.", file=stream, flush=True)
    if chief:
        _log_hparams(writer, config)
    request = cb.StopRequest()
    any_worker = any_worker_signal(strategy) if multiworker else None
    first_step, lowered = start_step, 0
    with stop_on_signals(request):
        while True:
            counter = cb.StepCounter(start_step, total)
            saver = checkpoints.checkpointer(counter)
            stopper = cb.GracefulStop(counter, saver, request, any_worker)
            cbs = [counter,
                   *([cb.LearningRateSchedule(counter, config.train)]
                     if config.train.lr_scheduled else []),
                   cb.MetricsLogger(counter, config.train.log_every, run.metrics_path, writer,
                                    stream, write=chief, extra=clean)]
            if held is not None:
                # Under several workers saving means collective ops every worker must
                # join, so the best checkpoint is kept by single-process runs only.
                cbs.append(make_quality_monitor(
                    counter, config.train.eval_every, gan, held, stats, config, run,
                    best_saver=None if multiworker else checkpoints.save_best,
                    writer=writer, stream=stream))
            if chief:
                cbs.append(cb.SampleWriter(counter, config.train.sample_every, run, stats,
                                           fixed_latents(config), gan.sampler(),
                                           config.train.griffin_lim_iters, writer,
                                           labels=fixed_labels(config)))
            cbs += [saver, stopper, *callbacks]
            ds = training_data(scan, config, stats, strategy, start_step, stream)
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
                config = lower_learning_rates(gan, config, run if chief else None, start_step)
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


def training_data(scan, config: Config, stats, strategy, start_step: int, stream):
    """The training batches: one pipeline (a dataset), or, for prepared shards under
    several workers with one replica each, a distributed dataset in which each worker
    reads only its own shards (`shards.assigned_shards`) and its share of each batch."""
    seed = config.train.seed + start_step

    def one(source, batch, pipe=None):
        make = shards.make_dataset if pipe else pipeline.make_dataset
        kwargs = {"pipeline": pipe} if pipe else {}
        ds = make(source, config.data, stats, batch, training=True, seed=seed,
                  with_labels=config.model.conditional, **kwargs)
        return gan_dataset(ds, config, start_step, pipeline=pipe)

    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    if not isinstance(scan, shards.Prepared) or workers < 2:
        return one(scan, config.train.batch_size)
    if strategy.num_replicas_in_sync != workers:
        print("Every worker reads every shard: dividing them needs one replica per worker.",
              file=stream, flush=True)
        return one(scan, config.train.batch_size)

    def fn(ctx: tf.distribute.InputContext):
        pipe = (ctx.num_input_pipelines, ctx.input_pipeline_id)
        mine = shards.assigned_shards(len(scan.manifest["shards"]), *pipe)
        files = sum(scan.manifest["shards"][i]["files"] for i in mine)
        print(f"worker {pipe[1]} of {pipe[0]} reads shards {', '.join(map(str, mine))} "
              f"({files} files)", file=stream, flush=True)
        return one(scan, ctx.get_per_replica_batch_size(config.train.batch_size), pipe)

    return strategy.distribute_datasets_from_function(fn)


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
    if isinstance(ds, tf.data.Dataset):
        options = tf.data.Options()
        # DATA, not FILE: every worker runs the whole pipeline and keeps its slice of each
        # global batch, so the global batches are exactly those of a single process.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        dist = iter(strategy.experimental_distribute_dataset(ds.with_options(options)))
    else:  # already distributed: each worker reads its own shards (`training_data`)
        dist = iter(ds)

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
            if isinstance(v, (tuple, list)):
                v = ",".join(map(str, v))
            flat[f"{section}.{k}"] = "" if v is None else v
    with writer.as_default():
        hp.hparams(flat)
