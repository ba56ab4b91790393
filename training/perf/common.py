"""Shared by the sections: timing, load, the variant configs and the analytic FLOP count."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def import_tf():
    """TensorFlow, imported on first use (`--help` and the report renderer never need it)."""
    import tensorflow as tf

    return tf


def stats_of(walls, cpus=None) -> dict:
    """Median/min/p90 of wall seconds (and median CPU seconds) of repeated calls."""
    walls = np.asarray(walls, np.float64)
    out = {"n": int(walls.size), "median_s": float(np.median(walls)),
           "min_s": float(walls.min()), "p90_s": float(np.percentile(walls, 90))}
    if cpus is not None and len(cpus):
        out["cpu_median_s"] = float(np.median(cpus))
    return out


def timed(fn):
    """(wall seconds, process CPU seconds over all threads, result) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, time.process_time() - c0, result


def load_avg() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return -1.0


def intra_op_threads() -> int:
    """TF's intra-op pool size (0 in the config means one per usable core)."""
    n = import_tf().config.threading.get_intra_op_parallelism_threads()
    if n:
        return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def variant_config(preset_name: str, disc: str, batch=None, base_width=None, size=None):
    from tfgan.config import preset

    cfg = preset(preset_name, "reference")  # the recipe both frameworks implement
    m, d, t = cfg.model, cfg.data, cfg.train
    if size is not None and size != m.height:
        d = dataclasses.replace(d, n_fft=2 * size, hop_length=size, n_bins=size, n_frames=size)
        m = dataclasses.replace(m, height=size, width=size)
    m = dataclasses.replace(m, disc=disc, base_width=base_width or m.base_width)
    t = dataclasses.replace(t, batch_size=batch or t.batch_size, precision="float32")
    return dataclasses.replace(cfg, model=m, data=d, train=t).validate()


def forward_macs(cfg) -> dict:
    """Multiply-accumulates of one forward pass per example, from DESIGN.md's shapes."""
    m = cfg.model
    size, c = m.height, m.base_width
    k = int(math.log2(size // 4)) - 1
    top = c * 2 ** k
    g = m.latent_dim * 16 * top
    side, ch = 4, top
    for _ in range(k):  # ConvTranspose 4x4 stride 2: every input pixel meets 16 taps
        g += side * side * 16 * ch * (ch // 2)
        side, ch = side * 2, ch // 2
    g += side * side * 16 * ch * 1
    if m.disc == "simple":
        d, side, ch = 0, size, 1
        for i in range(k + 1):  # Conv 4x4 stride 2: every output pixel has 16 taps
            side //= 2
            d += side * side * 16 * ch * c * 2 ** i
            ch = c * 2 ** i
        d += side * side * ch
    else:
        def conv(s, cin, cout):
            return s * s * 9 * cin * cout
        s = size
        d = conv(s, 1, c) + conv(s, c, 2 * c)
        s //= 2
        d += 2 * conv(s, 2 * c, 2 * c) + conv(s, 2 * c, 4 * c)
        s //= 2
        d += conv(s, 4 * c, 8 * c)
        s //= 2
        d += 2 * conv(s, 8 * c, 8 * c) + 8 * c
    return {"generator": int(g), "discriminator": int(d)}


def step_flops(cfg, macs: dict) -> float:
    """FLOPs of one train step: forward 1x, backward 2x (weights and inputs).

    Per example: D step = G forward (1) + D on real (3) + D on fake (3); G step = G forward
    and backward (3) + D forward and an input-only backward (2). So 4 G + 8 D passes.
    """
    per_example = 2.0 * (4 * macs["generator"] + 8 * macs["discriminator"])
    return per_example * cfg.train.batch_size


def profiled_forward_flops(gan, cfg) -> dict:
    """tf.compat.v1.profiler's float-op count of G's and D's forward graphs (batch 1)."""
    tf = import_tf()
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    def count(fn, spec):
        frozen = convert_variables_to_constants_v2(tf.function(fn).get_concrete_function(spec))
        opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        return int(tf.compat.v1.profiler.profile(graph=frozen.graph, options=opts)
                   .total_float_ops)

    m = cfg.model
    try:
        return {"generator": count(lambda z: gan.generator(z, training=False),
                                   tf.TensorSpec([1, m.latent_dim])),
                "discriminator": count(lambda x: gan.discriminator(x, training=False),
                                       tf.TensorSpec([1, m.height, m.width, 1]))}
    except Exception as e:  # noqa: BLE001 - a cross-check, never a reason to fail
        return {"error": f"{type(e).__name__}: {e}"[:200]}


def subset_root(root: Path, per_class: int, tmp: Path) -> Path:
    """A folder of symlinks to the first `per_class` files of each class (quick runs)."""
    sub = tmp / "data-subset"
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        (sub / cls.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(cls.glob("*.wav"))[:per_class]:
            (sub / cls.name / f.name).symlink_to(f)
    return sub
