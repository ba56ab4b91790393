"""The gpu section: mixed_float16 against float32, MirroredStrategy, TFLOP/s against peak."""

from __future__ import annotations

from training.perf.common import (forward_macs, import_tf, stats_of, step_flops, timed,
                                  variant_config)


def bench_gpu(enabled: bool, quick: bool) -> dict:
    tf = import_tf()
    gpus = tf.config.list_physical_devices("GPU")
    if not enabled:
        return {"skipped": True, "note": "GPU arms run only with --gpu"}
    if not gpus:
        return {"skipped": True, "note": "--gpu given but no GPU is visible to TensorFlow; "
                                         "GPU arms skipped"}
    import keras

    from tfgan.trainer import build_gan

    out = {"skipped": False, "gpus": len(gpus), "peak": {}, "precision": [], "mirrored": []}
    n = 1024 if quick else 8192
    for dtype in (tf.float32, tf.float16):
        with tf.device("/GPU:0"):
            a = tf.cast(tf.random.normal([n, n]), dtype)
            b = tf.cast(tf.random.normal([n, n]), dtype)
            f = tf.function(lambda a, b: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
            f(a, b).numpy()
            reps = 5 if quick else 50
            wall, _, _ = timed(lambda: [f(a, b) for _ in range(reps)][-1].numpy())
        out["peak"][dtype.name] = {"n": n, "tflops": 2.0 * n ** 3 * reps / wall / 1e12}
    steps = 2 if quick else 20
    for disc in ("simple", "resnet9"):
        for precision in ("float32", "mixed_float16"):
            cfg = variant_config("specgan", disc, batch=8 if quick else None,
                                 base_width=4 if quick else None)
            keras.mixed_precision.set_global_policy(precision)
            try:
                gan = build_gan(cfg, tf.distribute.get_strategy(), precision)
                m, b = cfg.model, cfg.train.batch_size
                batch = {"real": tf.random.uniform([b, m.height, m.width, 1], -1, 1),
                         "z": tf.random.normal([b, 2, m.latent_dim])}
                fn = tf.function(gan.train_step)
                for _ in range(3):
                    float(fn(batch)["d_loss"])
                walls = [timed(lambda: float(fn(batch)["d_loss"]))[0] for _ in range(steps)]
            finally:
                keras.mixed_precision.set_global_policy("float32")
            t = stats_of(walls)
            flops = step_flops(cfg, forward_macs(cfg))
            peak = out["peak"]["float16" if precision == "mixed_float16" else "float32"]["tflops"]
            out["precision"].append({"disc": disc, "precision": precision, "batch": b, **t,
                                     "steps_per_s": 1 / t["median_s"],
                                     "tflops": flops / t["median_s"] / 1e12,
                                     "fraction_of_peak": flops / t["median_s"] / 1e12 / peak})
    strategy = tf.distribute.MirroredStrategy()
    replicas = strategy.num_replicas_in_sync
    cfg = variant_config("specgan", "simple", batch=(8 if quick else 64) * replicas,
                         base_width=4 if quick else None)
    gan = build_gan(cfg, strategy, "float32")
    m, b = cfg.model, cfg.train.batch_size
    ds = tf.data.Dataset.from_tensors({"real": tf.random.uniform([b, m.height, m.width, 1], -1, 1),
                                       "z": tf.random.normal([b, 2, m.latent_dim])}).repeat()
    it = iter(strategy.experimental_distribute_dataset(ds))

    @tf.function
    def dist_step():
        return strategy.run(gan.train_step, args=(next(it),))["d_loss"]

    for _ in range(3):
        strategy.experimental_local_results(dist_step())[0].numpy()
    walls = [timed(lambda: strategy.experimental_local_results(dist_step())[0].numpy())[0]
             for _ in range(steps)]
    t = stats_of(walls)
    out["mirrored"].append({"replicas": strategy.num_replicas_in_sync, "global_batch": b, **t,
                            "examples_per_s": b / t["median_s"]})
    return out
