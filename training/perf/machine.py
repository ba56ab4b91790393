"""The machine section: versions, threads, load and the float32 matmul rate."""

from __future__ import annotations

import os
import platform

from training.perf.common import import_tf, intra_op_threads, load_avg, timed, torch_available


def matmul_rate(n: int, seconds: float = 2.0) -> dict:
    """Float32 GFLOP/s of an n x n matmul in TF on the default threads."""
    tf = import_tf()
    a = tf.random.normal([n, n], seed=1)
    b = tf.random.normal([n, n], seed=2)
    f = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    f(a, b).numpy()
    wall, _, _ = timed(lambda: f(a, b).numpy())
    reps = max(2, int(seconds / max(wall, 1e-4)))
    wall, cpu, _ = timed(lambda: [f(a, b).numpy() for _ in range(reps)])
    flops = 2.0 * n ** 3 * reps
    return {"n": n, "reps": reps, "gflops": flops / wall / 1e9,
            "gflops_per_cpu_s": flops / max(cpu, 1e-9) / 1e9, "cpu_per_wall": cpu / wall,
            "load": load_avg()}


def bench_machine(quick: bool) -> dict:
    tf = import_tf()
    import keras

    info = {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "intra_op_threads": intra_op_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "gpus": len(tf.config.list_physical_devices("GPU")), "load_start": load_avg(),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 CPUs)")}
    if torch_available():
        import torch

        info["torch"] = torch.__version__
    else:
        info["torch"] = None
    info["matmul"] = matmul_rate(256 if quick else 2048, 0.3 if quick else 3.0)
    return info
