"""python -m training.perf: how fast the pipeline, the train step and serving are, and why.

    python -m training.perf [--out DIR] [--quick] [--gpu] [--sections a,b,...]

Measures in one run, on one machine, and writes DIR/perf.json and DIR/perf.md:

  machine      versions, threads, load, the float32 matmul rate (the CPU's practical peak).
  pipeline     spectrogram examples/s of `tfgan.data.pipeline.make_dataset` on the built-in
               dataset, cold (decode + resample + STFT, cache off) and warm (cached), against
               a librosa + NumPy loop (what a PyTorch `Dataset` usually does), and against
               the train step's consumption.
  train        steps/s and examples/s of the real `GAN.train_step` (`build_gan`, tf.function,
               fixed in-memory batch, after warm-up) for both discriminators at both presets,
               against the same networks in a plain PyTorch eager loop (`training.perf_torch`)
               at the same thread count, interleaved round by round so both see the same
               machine load. FLOPs per step (analytic, cross-checked with tf.profiler) and the
               achieved fraction of the matmul rate.
  profile      the train step's kernel time by op type (tf.profiler trace).
  experiments  train-step variants in child processes: XLA, grappler remapping off, Keras's
               unfused BatchNorm, mixed_bfloat16, inter-op threads, oneDNN off; and the
               pipeline with tensorflow-io's resampler.
  serving      predict latency p50/p99 and throughput on `serving.server` (loopback), batch 1
               and 16, spectrogram and audio signatures, 1 and 8 concurrent clients.
  scaling      seconds per step against batch size and spectrogram size.
  gpu          mixed_float16 vs float32, MirroredStrategy, TFLOP/s vs peak; skipped with a
               note when no GPU is visible (and unless --gpu is given).

Timings on a shared machine vary with its load: each timing records wall and CPU seconds
and the load average, medians are reported, and arms that are compared run interleaved.
`--quick` runs every section with tiny models and counts (for the tests).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("machine", "pipeline", "train", "profile", "experiments", "serving", "scaling", "gpu")
CHILD_MARK = "PERF_CHILD_JSON "
TARGETS = {"train_vs_torch": 2.0, "pipeline_vs_librosa": 5.0, "pipeline_vs_train": 5.0,
           "serving_spec_p50_ms": 20.0, "serving_audio_p50_ms": 200.0}


# ----------------------------------------------------------------------------- helpers

def _tf():
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
    n = _tf().config.threading.get_intra_op_parallelism_threads()
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


# ----------------------------------------------------------------------------- FLOPs

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
    tf = _tf()
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


def matmul_rate(n: int, seconds: float = 2.0) -> dict:
    """Float32 GFLOP/s of an n x n matmul in TF on the default threads."""
    tf = _tf()
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


# ----------------------------------------------------------------------------- machine

def bench_machine(quick: bool) -> dict:
    tf = _tf()
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


# ----------------------------------------------------------------------------- pipeline

def _subset_root(root: Path, per_class: int, tmp: Path) -> Path:
    """A folder of symlinks to the first `per_class` files of each class (quick runs)."""
    sub = tmp / "data-subset"
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        (sub / cls.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(cls.glob("*.wav"))[:per_class]:
            (sub / cls.name / f.name).symlink_to(f)
    return sub


def numpy_spectrogram(wave: np.ndarray, data_cfg, mean: np.ndarray, std: np.ndarray):
    """`audio.normalise(audio.log_magnitude(wave))` in NumPy (linear scale), [bins, frames]."""
    from tfgan import audio

    n_fft, hop = data_cfg.n_fft, data_cfg.hop_length
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft)[::hop]
    # tf.signal.hann_window is periodic by default.
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    mag = np.abs(np.fft.rfft(frames * window, axis=-1))[:, :data_cfg.n_bins].T
    log_mag = np.log(mag + audio.LOG_EPS)
    return np.clip((log_mag - mean[:, None]) / (audio.CLIP_STDS * std[:, None]), -1.0, 1.0)


def librosa_loop(paths, data_cfg, stats, batch: int, n_examples: int, seed: int = 0) -> dict:
    """A PyTorch-style Dataset in a plain loop: librosa.load, random crop, NumPy STFT."""
    import librosa

    rng = np.random.default_rng(seed)
    mean, std = stats.mean.astype(np.float64), stats.std.astype(np.float64)
    clip = data_cfg.clip_samples
    librosa.load(paths[0], sr=data_cfg.sample_rate)  # imports and caches outside the timing

    def run():
        batches, current = 0, []
        for i in range(n_examples):
            wave, _ = librosa.load(paths[rng.integers(len(paths))], sr=data_cfg.sample_rate,
                                   mono=True)
            wave = np.pad(wave, (0, max(clip - wave.size, 0)))
            start = int(rng.integers(wave.size - clip + 1))
            current.append(numpy_spectrogram(wave[start:start + clip], data_cfg, mean, std))
            if len(current) == batch:
                np.stack(current)[..., None].astype(np.float32)
                batches, current = batches + 1, []
        return batches

    wall, cpu, _ = timed(run)
    return {"examples": n_examples, "seconds": wall, "cpu_seconds": cpu,
            "examples_per_s": n_examples / wall}


def _dataset_rate(scan, data_cfg, stats, batch: int, n_batches: int, warm: bool,
                  options: bool = False) -> dict:
    from tfgan.data import pipeline

    ds = pipeline.make_dataset(scan, data_cfg, stats, batch, training=True, seed=0)
    if options:
        opts = _tf().data.Options()
        opts.deterministic = False
        opts.experimental_optimization.parallel_batch = True
        ds = ds.with_options(opts)
    it = iter(ds)
    first, _, _ = timed(lambda: next(it))
    if warm:  # one pass over the files fills the cache (the shuffle buffer holds them all)
        for _ in range(max(1, math.ceil(len(scan.paths) / batch))):
            next(it)
    wall, cpu, _ = timed(lambda: [next(it) for _ in range(n_batches)])
    return {"first_batch_s": first, "batches": n_batches, "seconds": wall, "cpu_seconds": cpu,
            "examples_per_s": n_batches * batch / wall, "load": load_avg()}


def tfio_resample_graph(audio, rate, target_rate: int):
    """The graph decoder's former resampler: tensorflow-io's `io_audio_resample` kernel.

    (`tfio.audio.resample` wraps the same kernel in `vectorized_map`, which logs a warning on
    every trace; the kernel takes `[samples, channels]`.)
    """
    tf = _tf()
    from tensorflow_io.python.ops import core_ops

    out = core_ops.io_audio_resample(audio[:, None], rate_in=rate, rate_out=target_rate)
    return tf.reshape(out, [-1])


def bench_pipeline(quick: bool, tmp: Path) -> dict:
    from tfgan.config import preset
    from tfgan.data import decoders, pipeline

    cfg = preset("cpu", "reference")
    data_cfg, batch = cfg.data, cfg.train.batch_size if not quick else 8
    root = pipeline.builtin_or(None)
    if quick:
        root = _subset_root(root, 2, tmp)
    scan_wall, _, scan = timed(lambda: pipeline.scan_folder(root, data_cfg))
    stats_wall, _, stats = timed(lambda: pipeline.compute_stats(scan, data_cfg))
    n_cold, n_warm, n_lib = (2, 4, 8) if quick else (40, 200, 640)
    cold_cfg = dataclasses.replace(data_cfg, cache=False)
    out = {"preset": "cpu", "files": len(scan.paths), "batch": batch,
           "sample_rate": data_cfg.sample_rate, "tfio": decoders.tfio_available(),
           "scan_s": scan_wall, "stats_s": stats_wall}
    out["cold"] = _dataset_rate(scan, cold_cfg, stats, batch, n_cold, warm=False)
    out["warm"] = _dataset_rate(scan, data_cfg, stats, batch, n_warm, warm=True)
    # tf.data options: nondeterministic order and parallel batching (measured: no gain).
    out["warm_options"] = _dataset_rate(scan, data_cfg, stats, batch, n_warm, warm=True,
                                        options=True)
    out["librosa_loop"] = librosa_loop(scan.paths, data_cfg, stats, batch, n_lib)
    # The same spectrogram? One file through both paths (resamplers differ slightly).
    import librosa
    from tfgan import audio

    wave, _ = librosa.load(scan.paths[0], sr=data_cfg.sample_rate)
    wave = wave[:data_cfg.clip_samples]
    ours = audio.normalise(audio.log_magnitude(wave, data_cfg), stats).numpy()
    theirs = numpy_spectrogram(wave, data_cfg, stats.mean.astype(np.float64),
                               stats.std.astype(np.float64))
    out["numpy_vs_tf_max_abs_diff"] = float(np.max(np.abs(ours - theirs)))
    # Variant: tensorflow-io's resampling kernel instead of soxr in the graph decoder.
    if out["tfio"]:
        original = decoders.resample_graph
        decoders.resample_graph = tfio_resample_graph
        try:
            out["cold_tfio_resample"] = _dataset_rate(scan, cold_cfg, stats, batch, n_cold,
                                                      False)
        finally:
            decoders.resample_graph = original
        out["cold_vs_cold_tfio"] = (out["cold"]["examples_per_s"]
                                    / out["cold_tfio_resample"]["examples_per_s"])
    out["cold_vs_librosa"] = out["cold"]["examples_per_s"] / out["librosa_loop"]["examples_per_s"]
    out["warm_vs_librosa"] = out["warm"]["examples_per_s"] / out["librosa_loop"]["examples_per_s"]
    return out


# ----------------------------------------------------------------------------- train

class TFArm:
    """The real train step: build_gan, tf.function(train_step), a fixed in-memory batch."""

    framework = "tensorflow"

    def __init__(self, cfg, jit_compile: bool = False, seed: int = 0,
                 precision: str = "float32"):
        import keras

        tf = _tf()
        from tfgan.trainer import build_gan

        self.cfg = cfg
        b, m = cfg.train.batch_size, cfg.model
        keras.mixed_precision.set_global_policy(precision)
        try:
            self.gan = build_gan(cfg, tf.distribute.get_strategy(), precision)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        self.batch = {
            "real": tf.random.uniform([b, m.height, m.width, 1], -1.0, 1.0, seed=seed),
            "z": tf.random.normal([b, cfg.train.n_critic + 1, m.latent_dim], seed=seed + 1)}
        self.fn = tf.function(self.gan.train_step, jit_compile=jit_compile)
        self.trace_s, _, _ = timed(self.step)

    def activate(self):
        pass

    def step(self):
        return float(self.fn(self.batch)["d_loss"])  # .numpy() waits for the whole step


class TorchArm:
    framework = "pytorch"

    def __init__(self, cfg, threads: int, seed: int = 0):
        import torch

        from training import perf_torch

        self.threads = threads
        self.activate()
        m, b = cfg.model, cfg.train.batch_size
        t = cfg.train
        self.gan = perf_torch.TorchGAN(m.disc, m.height, m.base_width, m.latent_dim, lr=t.lr,
                                       d_lr=t.d_lr, betas=(t.beta_1, t.beta_2), seed=seed)
        gen = torch.Generator().manual_seed(seed)
        self.real = torch.rand(b, 1, m.height, m.width, generator=gen) * 2 - 1
        self.z = torch.randn(b, 2, m.latent_dim, generator=gen)
        self.trace_s, _, _ = timed(self.step)
        self.params = {"generator": perf_torch.param_count(self.gan.generator),
                       "discriminator": perf_torch.param_count(self.gan.discriminator)}

    def activate(self):
        import torch

        torch.set_num_threads(self.threads)

    def step(self):
        return self.gan.train_step(self.real, self.z)["d_loss"]


def run_interleaved(arms: dict, rounds: int, steps: dict, warmup: int = 1,
                    pause: float = 0.05) -> dict:
    """Per-step wall/CPU times of every arm, round-robin so all see the same load.

    The pause lets OpenMP/Eigen worker threads of the previous arm stop spinning.
    """
    walls = {k: [] for k in arms}
    cpus = {k: [] for k in arms}
    for key, arm in arms.items():
        arm.activate()
        for _ in range(warmup):
            arm.step()
    for _ in range(rounds):
        for key, arm in arms.items():
            arm.activate()
            time.sleep(pause)
            for _ in range(steps[key]):
                w, c, _ = timed(arm.step)
                walls[key].append(w)
                cpus[key].append(c)
    return {k: stats_of(walls[k], cpus[k]) for k in arms}


def bench_train(quick: bool, matmul: dict) -> tuple[dict, dict]:
    """Returns (section, the TF arms of the cpu preset for the profile section)."""
    threads = intra_op_threads()
    have_torch = torch_available()
    plans = []  # (preset, overrides, rounds, steps per round, warm-up steps after the first)
    if quick:
        plans.append(("cpu", dict(batch=8, base_width=4), 1, {"simple": 2, "resnet9": 1}, 1))
        plans.append(("specgan", dict(batch=2, base_width=2), 1, {"simple": 1, "resnet9": 1},
                      0))
    else:
        plans.append(("cpu", {}, 4, {"simple": 6, "resnet9": 2}, 1))
        # The specgan preset's batch of 64 takes minutes per step on two cores: batch 8, and
        # the first step (taken when an arm is built) is the only warm-up.
        plans.append(("specgan", dict(batch=8), 2, {"simple": 2, "resnet9": 1}, 0))
    section = {"threads": threads, "torch": have_torch, "arms": [], "ratios": []}
    if not have_torch:
        section["note"] = ("PyTorch is not installed (pip install torch==2.13.0): PyTorch "
                           "arms skipped")
    keep = {}
    for preset_name, overrides, rounds, per_disc, warmup in plans:
        arms, steps, cfgs = {}, {}, {}
        for disc in ("simple", "resnet9"):
            cfg = variant_config(preset_name, disc, **overrides)
            cfgs[disc] = cfg
            arms[("tensorflow", disc)] = TFArm(cfg)
            steps[("tensorflow", disc)] = per_disc[disc]
            if have_torch:
                arms[("pytorch", disc)] = TorchArm(cfg, threads)
                steps[("pytorch", disc)] = per_disc[disc]
                if preset_name == "cpu" and threads > 1 and not quick:
                    # Sensitivity check: OpenMP's spinning threads suffer most on a loaded
                    # machine; one thread shows what PyTorch does without that.
                    arms[("pytorch-1thread", disc)] = TorchArm(cfg, 1)
                    steps[("pytorch-1thread", disc)] = per_disc[disc]
        load0 = load_avg()
        timings = run_interleaved(arms, rounds, steps, warmup=warmup)
        for (framework, disc), t in timings.items():
            cfg = cfgs[disc]
            b = cfg.train.batch_size
            macs = forward_macs(cfg)
            flops = step_flops(cfg, macs)
            arm = arms[(framework, disc)]
            row = {"preset": preset_name, "disc": disc, "framework": framework, "batch": b,
                   "size": cfg.model.height, "base_width": cfg.model.base_width,
                   "first_step_s": arm.trace_s, **t,
                   "steps_per_s": 1.0 / t["median_s"], "examples_per_s": b / t["median_s"],
                   "flops_per_step": flops, "gflops": flops / t["median_s"] / 1e9,
                   "fraction_of_matmul": flops / t["median_s"] / 1e9 / matmul["gflops"],
                   "gflops_per_cpu_s": flops / t["cpu_median_s"] / 1e9,
                   "load": [load0, load_avg()]}
            row["fraction_of_matmul_per_cpu_s"] = (row["gflops_per_cpu_s"]
                                                   / matmul["gflops_per_cpu_s"])
            if framework == "tensorflow":
                row["forward_macs"] = macs
                row["profiled_forward_flops"] = profiled_forward_flops(arm.gan, cfg)
                row["params"] = {"generator": int(sum(np.prod(v.shape) for v in
                                                      arm.gan.generator.trainable_weights)),
                                 "discriminator": int(sum(np.prod(v.shape) for v in
                                                          arm.gan.discriminator.trainable_weights))}
            else:
                row["params"] = arm.params
            section["arms"].append(row)
        if have_torch:
            for disc in ("simple", "resnet9"):
                tf_t, pt_t = timings[("tensorflow", disc)], timings[("pytorch", disc)]
                ratio = {"preset": preset_name, "disc": disc,
                         "tf_over_torch_examples_per_s": pt_t["median_s"] / tf_t["median_s"],
                         "tf_over_torch_best_step": pt_t["min_s"] / tf_t["min_s"],
                         "tf_over_torch_cpu_s": pt_t["cpu_median_s"] / tf_t["cpu_median_s"]}
                one = timings.get(("pytorch-1thread", disc))
                if one:
                    ratio["tf_over_torch_1thread_examples_per_s"] = (one["median_s"]
                                                                     / tf_t["median_s"])
                section["ratios"].append(ratio)
        if preset_name == "cpu":
            keep = {d: arms[("tensorflow", d)] for d in ("simple", "resnet9")}
        del arms
    return section, keep


# ----------------------------------------------------------------------------- profile

BN_OPS = {"Mean", "SquaredDifference", "Sub", "Mul", "Rsqrt", "Tile", "Sum", "AddV2",
          "Reshape", "BroadcastTo", "StopGradient", "Square", "RealDiv", "AddN", "Neg"}


def _op_category(op_type: str) -> str:
    if "Conv2D" in op_type or "Conv3D" in op_type:
        return "convolution"
    if "MatMul" in op_type:
        return "matmul"
    if "BatchNorm" in op_type:
        return "fused_batchnorm"
    if op_type in ("Relu", "ReluGrad", "LeakyRelu", "LeakyReluGrad", "Tanh", "TanhGrad",
                   "MaxPool", "MaxPoolGrad", "Max", "_MklMaxPool", "_MklMaxPoolGrad"):
        return "activation_pooling"
    if op_type.startswith("Assign") or op_type in ("ReadVariableOp", "Sqrt", "Pow", "L2Loss",
                                                   "ResourceApplyAdam"):
        return "optimizer_state"
    if op_type in BN_OPS:
        return "elementwise_reductions"
    return "other"


def profile_step(arm, steps: int, logdir: Path) -> dict:
    """Kernel time by op type over `steps` train steps, from a tf.profiler trace."""
    tf = _tf()
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError:
        return {"error": "xplane_pb2 not importable"}
    shutil.rmtree(logdir, ignore_errors=True)
    tf.profiler.experimental.start(str(logdir))
    try:
        wall, cpu, _ = timed(lambda: [arm.step() for _ in range(steps)])
    finally:
        tf.profiler.experimental.stop()
    files = sorted(logdir.rglob("*.xplane.pb"))
    if not files:
        return {"error": "no trace written"}
    space = xplane_pb2.XSpace()
    space.ParseFromString(files[-1].read_bytes())
    by_type, counts = {}, {}
    for plane in space.planes:
        names = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for ev in line.events:
                name = names[ev.metadata_id].name
                if name.startswith("ExecutorState"):
                    continue
                op_type = name.rsplit(":", 1)[-1]
                by_type[op_type] = by_type.get(op_type, 0.0) + ev.duration_ps / 1e9 / steps
                counts[op_type] = counts.get(op_type, 0) + 1
    total = sum(by_type.values()) or 1.0
    cats = {}
    for op_type, ms in by_type.items():
        cat = _op_category(op_type)
        cats[cat] = cats.get(cat, 0.0) + ms
    top = sorted(by_type.items(), key=lambda kv: -kv[1])[:15]
    return {"steps": steps, "wall_ms_per_step": wall / steps * 1e3,
            "cpu_ms_per_step": cpu / steps * 1e3, "kernel_ms_per_step": total,
            "categories": {k: {"ms_per_step": v, "share": v / total}
                           for k, v in sorted(cats.items(), key=lambda kv: -kv[1])},
            "top_ops": [{"op": k, "ms_per_step": v, "share": v / total,
                         "calls_per_step": counts[k] / steps} for k, v in top]}


def bench_profile(quick: bool, arms: dict, tmp: Path) -> dict:
    return {disc: profile_step(arm, 1 if quick else (4 if disc == "simple" else 2),
                               tmp / f"profile-{disc}")
            for disc, arm in arms.items()}


# ----------------------------------------------------------------------------- experiments

@contextlib.contextmanager
def keras_batchnorm():
    """Builds the models with Keras's own (unfused) BatchNorm training call."""
    from tfgan.models.batchnorm import FusedBatchNorm

    fusable = FusedBatchNorm._fusable
    FusedBatchNorm._fusable = lambda self, *args: False
    try:
        yield
    finally:
        FusedBatchNorm._fusable = fusable


EXPERIMENTS = {
    "baseline": "the library as it is (jit_compile=False, Keras BatchNorm, default threads)",
    "jit_compile": "tf.function(train_step, jit_compile=True): XLA on CPU",
    "no_remapping": "tf.config.optimizer.set_experimental_options({'remapping': False})",
    "keras_batchnorm": "Keras's unfused BatchNorm instead of tfgan's FusedBatchNorm",
    "mixed_bfloat16": "mixed_bfloat16 policy (this CPU has AVX512_BF16)",
    "inter_op_1": "tf.config.threading.set_inter_op_parallelism_threads(1)",
    "onednn_off": "TF_ENABLE_ONEDNN_OPTS=0 (Eigen kernels instead of oneDNN)",
}


def child_train(spec: dict) -> dict:
    """One experiment arm, in its own process (threads and oneDNN are fixed at start-up)."""
    tf = _tf()
    variant = spec["variant"]
    if variant == "inter_op_1":
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if variant == "no_remapping":
        tf.config.optimizer.set_experimental_options({"remapping": False})
    cfg = variant_config("cpu", spec["disc"], batch=spec.get("batch"),
                         base_width=spec.get("base_width"))
    ctx = keras_batchnorm() if variant == "keras_batchnorm" else contextlib.nullcontext()
    with ctx:
        arm = TFArm(cfg, jit_compile=variant == "jit_compile",
                    precision="mixed_bfloat16" if variant == "mixed_bfloat16" else "float32")
    t = run_interleaved({"arm": arm}, rounds=1, steps={"arm": spec["steps"]},
                        warmup=spec.get("warmup", 2))["arm"]
    return {**t, "first_step_s": arm.trace_s, "load": load_avg()}


def run_child(spec: dict, timeout: float = 900) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    if spec["variant"] == "onednn_off":
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "training.perf", "--child", json.dumps(spec)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(CHILD_MARK):
            return {**json.loads(line[len(CHILD_MARK):]),
                    "process_s": time.perf_counter() - start}
    return {"error": (proc.stderr or proc.stdout)[-600:], "returncode": proc.returncode}


def bench_experiments(quick: bool) -> dict:
    if quick:
        plan = {"simple": ["baseline", "keras_batchnorm"]}
        base = dict(batch=8, base_width=4, steps=2, warmup=1)
        reps = 1
    else:
        plan = {"simple": list(EXPERIMENTS), "resnet9": ["baseline", "keras_batchnorm",
                                                         "mixed_bfloat16", "inter_op_1"]}
        base = dict(steps=6, warmup=2)
        reps = 2
    results = {}
    for disc, variants in plan.items():
        spec_base = dict(base, disc=disc)
        if disc == "resnet9" and not quick:
            spec_base["steps"] = 2
        runs = {v: [] for v in variants}
        specs = []
        for _ in range(reps):  # ABAB...: drift in the machine's load hits every variant
            for v in variants:
                spec = dict(spec_base, variant=v)
                if v == "jit_compile" and not quick:
                    spec["steps"] = 3
                specs.append(spec)
        if quick:  # timings do not matter in a quick run: start the children together
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(specs)) as pool:
                done = list(pool.map(run_child, specs))
        else:
            done = [run_child(spec) for spec in specs]
        for spec, result in zip(specs, done):
            runs[spec["variant"]].append(result)
        rows = {}
        for v, rs in runs.items():
            good = [r for r in rs if "median_s" in r]
            if not good:
                rows[v] = {"description": EXPERIMENTS[v], "error": rs[0].get("error", "")}
                continue
            rows[v] = {"description": EXPERIMENTS[v],
                       "median_s": float(np.median([r["median_s"] for r in good])),
                       "min_s": float(min(r["min_s"] for r in good)),
                       "cpu_median_s": float(np.median([r["cpu_median_s"] for r in good])),
                       "first_step_s": float(np.median([r["first_step_s"] for r in good])),
                       "runs": len(good), "load": [r["load"] for r in good]}
        if "median_s" in rows.get("baseline", {}):
            b = rows["baseline"]
            for v, r in rows.items():
                if "median_s" in r:
                    r["speedup_wall"] = b["median_s"] / r["median_s"]
                    r["speedup_best"] = b["min_s"] / r["min_s"]
                    r["speedup_cpu"] = b["cpu_median_s"] / r["cpu_median_s"]
        results[disc] = rows
    return {"preset": "cpu", "batch": base.get("batch", 32), "variants": results}


# ----------------------------------------------------------------------------- serving

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def export_fresh_generator(cfg, stats, tmp: Path) -> Path:
    """A run directory holding a freshly initialised G, exported as a SavedModel."""
    tf = _tf()
    from export.saved_model import export
    from tfgan.rundir import RunDir, build_generator, trackable_weights

    run = RunDir(tmp / "serving-run")
    run.prepare()
    run.save_config(cfg)
    stats.save(run.stats_path)
    ckpt = tf.train.Checkpoint(generator=trackable_weights(build_generator(cfg)),
                               step=tf.Variable(0, dtype=tf.int64))
    tf.train.CheckpointManager(ckpt, str(run.checkpoints), max_to_keep=1,
                               checkpoint_name="ckpt").save()
    base = tmp / "serving-models"
    export(run.path, base)
    return base


def _latencies(client, url: str, body: bytes, n: int, budget_s: float) -> list[float]:
    out = []
    deadline = time.perf_counter() + budget_s
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.post(url, content=body, headers={"content-type": "application/json"})
        out.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise RuntimeError(f"predict failed: {r.status_code} {r.text[:300]}")
        if time.perf_counter() > deadline:
            break
    return out


def bench_serving(quick: bool, tmp: Path) -> dict:
    import httpx

    from tfgan.config import preset
    from tfgan.data import pipeline

    cfg = preset("cpu", "reference")
    if quick:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, base_width=4),
                                  train=dataclasses.replace(cfg.train, griffin_lim_iters=4))
    root = pipeline.builtin_or(None)
    if quick:
        root = _subset_root(root, 1, tmp / "serving-data")
    stats = pipeline.compute_stats(pipeline.scan_folder(root, cfg.data), cfg.data)
    export_s, _, base = timed(lambda: export_fresh_generator(cfg, stats, tmp))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(tmp / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "serving.server", "--model-base-path", str(base),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    out = {"preset": "cpu", "base_width": cfg.model.base_width,
           "griffin_lim_iters": cfg.train.griffin_lim_iters, "export_s": export_s,
           "clients": 8, "results": []}
    url = f"http://127.0.0.1:{port}"
    try:
        start = time.perf_counter()
        with httpx.Client(timeout=120) as client:
            while True:
                try:
                    if client.get(url + "/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.perf_counter() - start > 180:
                    raise RuntimeError("the server did not come up: "
                                       + (tmp / "server.log").read_text()[-800:])
                time.sleep(0.2)
        out["startup_s"] = time.perf_counter() - start
        predict = f"{url}/v1/models/generator:predict"
        rng = np.random.default_rng(0)
        n_seq, n_conc, budget = (3, 1, 5.0) if quick else (40, 6, 25.0)
        for sig in ("serving_default", "audio"):
            for batch in (1, 16):
                z = rng.standard_normal([batch, cfg.model.latent_dim]).astype(np.float32)
                body = json.dumps({"signature_name": sig,
                                   "instances": z.round(6).tolist()}).encode()
                with httpx.Client(timeout=300) as client:
                    _latencies(client, predict, body, 2, 60)  # warm-up: traces, caches
                    seq = _latencies(client, predict, body, n_seq, budget)
                conc, errors = [], []

                def worker():
                    try:
                        with httpx.Client(timeout=300) as c:
                            conc.extend(_latencies(c, predict, body, n_conc, budget))
                    except Exception as e:  # noqa: BLE001
                        errors.append(repr(e))

                threads = [threading.Thread(target=worker) for _ in range(out["clients"])]
                t0 = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.perf_counter() - t0
                if errors:
                    raise RuntimeError(errors[0])
                row = {"signature": sig, "batch": batch, "request_bytes": len(body)}
                for name, lat, w in (("single_client", seq, sum(seq)),
                                     ("concurrent", conc, wall)):
                    lat_ms = np.asarray(lat) * 1e3
                    row[name] = {"requests": len(lat), "p50_ms": float(np.percentile(lat_ms, 50)),
                                 "p99_ms": float(np.percentile(lat_ms, 99)),
                                 "requests_per_s": len(lat) / w,
                                 "examples_per_s": len(lat) * batch / w}
                row["load"] = load_avg()
                out["results"].append(row)
        out["model_only"] = _model_only_latency(base, cfg, quick)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    return out


def _model_only_latency(base: Path, cfg, quick: bool) -> dict:
    """The same signatures called in-process: what the HTTP + JSON path adds on top."""
    tf = _tf()
    from serving.json_tensor import ROW, encode_outputs

    version = max(int(p.name) for p in base.iterdir() if p.name.isdigit())
    loaded = tf.saved_model.load(str(base / str(version)))
    out = {}
    for sig in ("serving_default", "audio"):
        fn = loaded.signatures[sig]
        for batch in (1, 16):
            z = tf.random.normal([batch, cfg.model.latent_dim], seed=5)
            fn(z=z)
            n = 3 if quick else 20
            runs = [timed(lambda: {k: v.numpy() for k, v in fn(z=z).items()}) for _ in range(n)]
            outputs = runs[-1][2]
            reps = 3 if quick else 7
            enc = [timed(lambda: encode_outputs(outputs, ROW)) for _ in range(reps)]
            out[f"{sig}/b{batch}"] = {
                "model_p50_ms": float(np.median([r[0] for r in runs]) * 1e3),
                "json_encode_p50_ms": float(np.median([e[0] for e in enc]) * 1e3),
                "response_bytes": len(enc[0][2])}
    return out


# ----------------------------------------------------------------------------- scaling

def bench_scaling(quick: bool) -> dict:
    if quick:
        batches, sizes, width, steps = (2, 4), (64, 128), 2, 1
    else:
        batches, sizes, width, steps = (8, 16, 32, 64), (64, 128), None, 4
    rows = []
    arms = {}
    for b in batches:
        arms[("batch", b, 64)] = TFArm(variant_config("cpu", "simple", batch=b,
                                                      base_width=width))
    for s in sizes:
        b = batches[-2] if len(batches) > 2 else batches[-1]
        key = ("size", b, s)
        if ("batch", b, s) not in arms:
            arms[key] = TFArm(variant_config("cpu", "simple", batch=b, base_width=width,
                                             size=s))
    timings = run_interleaved(arms, rounds=2 if not quick else 1,
                              steps={k: steps for k in arms})
    for (kind, b, s), t in timings.items():
        cfg = arms[(kind, b, s)].cfg
        flops = step_flops(cfg, forward_macs(cfg))
        rows.append({"sweep": kind, "disc": "simple", "batch": b, "size": s,
                     "base_width": cfg.model.base_width, **t,
                     "ms_per_example": t["median_s"] / b * 1e3,
                     "gflop_per_step": flops / 1e9, "gflops": flops / t["median_s"] / 1e9})
    if len(sizes) > 1 and any(r["size"] == sizes[-1] for r in rows):
        b = batches[-2] if len(batches) > 2 else batches[-1]
        small = next(r for r in rows if r["size"] == sizes[0] and r["batch"] == b)
        large = next(r for r in rows if r["size"] == sizes[-1] and r["batch"] == b)
        size_ratio = {"time": large["median_s"] / small["median_s"],
                      "flops": large["gflop_per_step"] / small["gflop_per_step"]}
    else:
        size_ratio = {}
    return {"rows": rows, "size_128_over_64": size_ratio}


# ----------------------------------------------------------------------------- gpu

def bench_gpu(enabled: bool, quick: bool) -> dict:
    tf = _tf()
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


# ----------------------------------------------------------------------------- report

def _f(x, digits=1):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:,.{digits}f}"


def summary_rows(r: dict) -> list[dict]:
    """Every target: value, threshold, met (None when not measured)."""
    rows = []
    train = r.get("train", {})
    for ratio in train.get("ratios", []):
        if ratio["preset"] != "cpu":
            continue
        v = ratio["tf_over_torch_examples_per_s"]
        rows.append({"target": f"train step examples/s, TF / PyTorch eager ({ratio['disc']})",
                     "value": v, "threshold": ">= 2.0", "met": v >= TARGETS["train_vs_torch"],
                     "also": f"best step {ratio['tf_over_torch_best_step']:.2f}x, "
                             f"CPU-seconds {ratio['tf_over_torch_cpu_s']:.2f}x"
                             + (f", vs PyTorch on 1 thread "
                                f"{ratio['tf_over_torch_1thread_examples_per_s']:.2f}x"
                                if "tf_over_torch_1thread_examples_per_s" in ratio else "")})
    pipe = r.get("pipeline", {})
    if "cold_vs_librosa" in pipe:
        for key, label in (("cold_vs_librosa", "cold"),
                           ("warm_vs_librosa", "warm (cached)")):
            v = pipe[key]
            rows.append({"target": f"pipeline {label} / librosa loop", "value": v,
                         "threshold": ">= 5", "met": v >= TARGETS["pipeline_vs_librosa"],
                         "also": ""})
    if "cold_vs_train" in pipe:
        for key, label in (("cold_vs_train", "cold"), ("warm_vs_train", "warm (cached)")):
            v = pipe[key]
            rows.append({"target": f"pipeline {label} / train step consumption (simple)",
                         "value": v, "threshold": ">= 5",
                         "met": v >= TARGETS["pipeline_vs_train"], "also": ""})
    for row in r.get("serving", {}).get("results", []):
        if row["batch"] != 1:
            continue
        spec = row["signature"] == "serving_default"
        limit = TARGETS["serving_spec_p50_ms" if spec else "serving_audio_p50_ms"]
        v = row["single_client"]["p50_ms"]
        rows.append({"target": f"serving batch-1 {'spectrogram' if spec else 'audio'} p50 ms "
                               "(one client)", "value": v, "threshold": f"< {limit:.0f}",
                     "met": v < limit,
                     "also": f"8 clients: p50 {row['concurrent']['p50_ms']:.1f} ms"})
    return rows


def recommendation_lines(r: dict) -> list[str]:
    """Library changes this run supports, each with its prediction and measured effect."""
    prof = r.get("profile", {})
    exp = r.get("experiments", {}).get("variants", {})
    pipe = r.get("pipeline", {})
    out = []

    def speedups(variant, invert=False):
        parts = []
        for disc, rows in exp.items():
            q = rows.get(variant, {})
            if "speedup_wall" in q:
                w, c = q["speedup_wall"], q["speedup_cpu"]
                if invert:
                    w, c = 1.0 / w, 1.0 / c
                parts.append(f"{disc} x{w:.2f} wall, x{c:.2f} CPU-seconds")
        return "; ".join(parts) or "not measured"

    if exp:
        out.append("- **Fused BatchNorm** (applied: `tfgan/models/batchnorm.py`, "
                   "`FusedBatchNormV3` in training calls). Measured against Keras's unfused "
                   "layer: " + speedups("keras_batchnorm", invert=True) + ".")
        out.append("- **mixed_bfloat16 on CPU** (`--precision mixed_bfloat16`; the default "
                   "stays float32, since bfloat16's 8-bit mantissa changes the numbers the "
                   "benchmark's results were measured with). Measured: "
                   + speedups("mixed_bfloat16") + ".")
        out.append("- **Keep `jit_compile=False`** on CPU (the library's default). Measured "
                   "with XLA: " + speedups("jit_compile") + ".")
        out.append("- **Keep oneDNN on** (TF's default on x86). Measured with it off: "
                   + speedups("onednn_off") + ".")
        out.append("- **Leave grappler's remapper on**: its `remapper failed ... LeakyReluGrad` "
                   "log line only means one fusion is skipped. Measured with remapping off: "
                   + speedups("no_remapping") + ".")
        out.append("- **Threads**: `inter_op_parallelism_threads=1` measured "
                   + speedups("inter_op_1") + "; no change recommended.")
    if pipe.get("cold_tfio_resample"):
        out.append("- **Resample with soxr in the graph decoder** (applied: "
                   "`decoders.resample_graph`, `tf.numpy_function` around soxr, instead of "
                   "tensorflow-io's `io_audio_resample`, whose build reports it was compiled "
                   "without SSE3/AVX). Measured cold pipeline "
                   f"x{pipe['cold_vs_cold_tfio']:.2f} "
                   f"({pipe['cold_tfio_resample']['examples_per_s']:,.0f} -> "
                   f"{pipe['cold']['examples_per_s']:,.0f} examples/s).")
    if pipe.get("warm_options"):
        gain = pipe["warm_options"]["examples_per_s"] / pipe["warm"]["examples_per_s"]
        out.append("- **tf.data options** (`deterministic=False`, `parallel_batch`): warm "
                   f"pipeline x{gain:.2f}; not applied: `deterministic=False` gives up the "
                   "reproducible example order (two runs with one seed train identically), "
                   "and the cached pipeline already feeds "
                   f"{pipe.get('warm_vs_train', float('nan')):.0f}x what the train step "
                   "consumes.")
    return (["", "## Changes and recommendations (measured in this run)", ""]
            + out) if out else []


def to_markdown(r: dict) -> str:
    m = r.get("machine", {})
    lines = ["# Performance report (`python -m training.perf`)", ""]
    lines.append(f"Machine: {m.get('platform', '?')}, {m.get('cpu_count', '?')} CPUs, "
                 f"TF {m.get('tensorflow', '?')} (intra-op threads "
                 f"{m.get('intra_op_threads', '?')}), PyTorch {m.get('torch') or 'not installed'}. "
                 f"Load average {m.get('load_start', '?')} at start, {r.get('load_end', '?')} "
                 f"at end. Float32 matmul: {_f(m.get('matmul', {}).get('gflops'))} GFLOP/s "
                 f"({_f(m.get('matmul', {}).get('gflops_per_cpu_s'))} GFLOP per CPU-second). "
                 f"Quick run: {r.get('quick')}. Total {_f(r.get('total_s'))} s.")
    lines += ["", "## Targets", "", "| target | value | threshold | met | notes |",
              "|---|---:|---|---|---|"]
    for row in summary_rows(r):
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        lines.append(f"| {row['target']} | {_f(row['value'], 2)} | {row['threshold']} | {met} "
                     f"| {row['also']} |")
    train = r.get("train", {})
    if train.get("arms"):
        lines += ["", "## Train step", "",
                  "Fixed in-memory batch, after warm-up, arms interleaved round by round. "
                  "GFLOP/s from analytic FLOPs (forward 1x, backward 2x); `% matmul` is the "
                  "achieved fraction of the measured float32 matmul rate.", "",
                  "| preset | D | framework | batch | ms/step (median) | best | CPU s/step | "
                  "steps/s | examples/s | GFLOP/step | GFLOP/s | % matmul |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for a in train["arms"]:
            lines.append(
                f"| {a['preset']} ({a['size']}, c={a['base_width']}) | {a['disc']} | "
                f"{a['framework']} | {a['batch']} | {_f(a['median_s'] * 1e3)} | "
                f"{_f(a['min_s'] * 1e3)} | {_f(a['cpu_median_s'], 3)} | "
                f"{_f(a['steps_per_s'], 2)} | "
                f"{_f(a['examples_per_s'])} | {_f(a['flops_per_step'] / 1e9, 2)} | "
                f"{_f(a['gflops'])} | {_f(100 * a['fraction_of_matmul'])} |")
        if train.get("ratios"):
            lines += ["", "TF / PyTorch at the same threads: by median examples/s (the "
                      "target), by best step, by CPU-seconds per step; and against PyTorch "
                      "on one thread (a sensitivity check).", "",
                      "| preset | D | TF / PyTorch (examples/s) | best step | CPU-seconds | "
                      "vs PyTorch 1 thread |", "|---|---|---:|---:|---:|---:|"]
            for q in train["ratios"]:
                lines.append(f"| {q['preset']} | {q['disc']} | "
                             f"{_f(q['tf_over_torch_examples_per_s'], 2)} | "
                             f"{_f(q['tf_over_torch_best_step'], 2)} | "
                             f"{_f(q['tf_over_torch_cpu_s'], 2)} | "
                             f"{_f(q.get('tf_over_torch_1thread_examples_per_s'), 2)} |")
        if train.get("note"):
            lines += ["", f"Note: {train['note']}"]
    pipe = r.get("pipeline", {})
    if pipe.get("cold"):
        lines += ["", "## Input pipeline", "",
                  f"Built-in dataset, {pipe['files']} files, cpu preset "
                  f"({pipe['sample_rate']} Hz), batch {pipe['batch']}; tensorflow-io decoders: "
                  f"{pipe['tfio']}. NumPy vs TF spectrogram max |diff| on one file: "
                  f"{pipe['numpy_vs_tf_max_abs_diff']:.2e}.", "",
                  "| arm | examples/s | first batch s | vs librosa | vs train step |",
                  "|---|---:|---:|---:|---:|"]
        lib = pipe["librosa_loop"]["examples_per_s"]
        train_rate = pipe.get("train_examples_per_s")
        for key, label in (("cold", "tf.data cold (cache off)"),
                           ("warm", "tf.data warm (cached)"),
                           ("warm_options", "tf.data warm, deterministic=False + parallel_batch"),
                           ("cold_tfio_resample",
                            "tf.data cold, tensorflow-io resampler (former default)")):
            if key not in pipe:
                continue
            v = pipe[key]["examples_per_s"]
            lines.append(f"| {label} | {_f(v)} | {_f(pipe[key]['first_batch_s'], 2)} | "
                         f"{_f(v / lib, 1)} | {_f(v / train_rate, 1) if train_rate else '-'} |")
        lines.append(f"| librosa + NumPy loop | {_f(lib)} | - | 1.0 | "
                     f"{_f(lib / train_rate, 2) if train_rate else '-'} |")
    prof = r.get("profile", {})
    if prof:
        lines += ["", "## Profile of the TF train step (cpu preset)", "",
                  "Kernel time by op category from a tf.profiler trace, summed over the "
                  "executor's threads (it exceeds the step's wall time: ops overlap, and a "
                  "loaded machine preempts them); the shares are what matter.", "",
                  "| D | category | ms/step | share |", "|---|---|---:|---:|"]
        for disc, p in prof.items():
            for cat, v in p.get("categories", {}).items():
                lines.append(f"| {disc} | {cat} | {_f(v['ms_per_step'])} | "
                             f"{_f(100 * v['share'])}% |")
    exp = r.get("experiments", {})
    if exp.get("variants"):
        lines += ["", "## Train-step experiments (cpu preset, child processes, ABAB order)", "",
                  "| D | variant | ms/step | best | CPU s/step | speed-up (median) | (best) | "
                  "(CPU) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for disc, rows in exp["variants"].items():
            for v, q in rows.items():
                if "median_s" not in q:
                    lines.append(f"| {disc} | {v} | error | | | | | |")
                    continue
                lines.append(f"| {disc} | {v} | {_f(q['median_s'] * 1e3)} | "
                             f"{_f(q['min_s'] * 1e3)} | {_f(q['cpu_median_s'], 3)} | "
                             f"{_f(q.get('speedup_wall'), 2)} | {_f(q.get('speedup_best'), 2)} | "
                             f"{_f(q.get('speedup_cpu'), 2)} |")
    srv = r.get("serving", {})
    if srv.get("results"):
        lines += ["", "## Serving (`serving.server`, loopback, JSON row format)", "",
                  f"Freshly initialised generator, cpu preset (c={srv['base_width']}), "
                  f"Griffin-Lim {srv['griffin_lim_iters']} iterations; "
                  f"{srv['clients']} concurrent clients.", "",
                  "| signature | batch | 1 client p50 ms | p99 ms | 8 clients p50 ms | p99 ms | "
                  "requests/s | examples/s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for row in srv["results"]:
            s, c = row["single_client"], row["concurrent"]
            lines.append(f"| {row['signature']} | {row['batch']} | {_f(s['p50_ms'])} | "
                         f"{_f(s['p99_ms'])} | {_f(c['p50_ms'])} | {_f(c['p99_ms'])} | "
                         f"{_f(c['requests_per_s'])} | {_f(c['examples_per_s'])} |")
        if srv.get("model_only"):
            lines += ["", "In-process: the signature alone, and the server's JSON encoding of "
                      "its outputs.", "",
                      "| signature/batch | model p50 ms | JSON encode ms | response bytes |",
                      "|---|---:|---:|---:|"]
            for k, v in srv["model_only"].items():
                lines.append(f"| {k} | {_f(v['model_p50_ms'])} | {_f(v['json_encode_p50_ms'])} | "
                             f"{v['response_bytes']:,} |")
    sc = r.get("scaling", {})
    if sc.get("rows"):
        lines += ["", "## Scaling (TF, simple D)", "",
                  "| sweep | batch | size | c | ms/step | ms/example | GFLOP/step | GFLOP/s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for q in sc["rows"]:
            lines.append(f"| {q['sweep']} | {q['batch']} | {q['size']} | {q['base_width']} | "
                         f"{_f(q['median_s'] * 1e3)} | {_f(q['ms_per_example'], 2)} | "
                         f"{_f(q['gflop_per_step'], 2)} | {_f(q['gflops'])} |")
        if sc.get("size_128_over_64"):
            q = sc["size_128_over_64"]
            lines.append(f"\n128x128 / 64x64: time x{q['time']:.2f}, FLOPs x{q['flops']:.2f}.")
    lines += recommendation_lines(r)
    gpu = r.get("gpu", {})
    lines += ["", "## GPU", ""]
    if gpu.get("skipped", True):
        lines.append(f"Skipped: {gpu.get('note', 'not run')}.")
    else:
        for p in gpu.get("precision", []):
            lines.append(f"- {p['disc']} {p['precision']}: {p['steps_per_s']:.2f} steps/s, "
                         f"{p['tflops']:.1f} TFLOP/s ({100 * p['fraction_of_peak']:.0f}% of peak)")
        for p in gpu.get("mirrored", []):
            lines.append(f"- MirroredStrategy x{p['replicas']}: {p['examples_per_s']:.0f} "
                         "examples/s")
    for name, err in r.get("errors", {}).items():
        lines.append(f"\nSection {name} failed: {err}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main

def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.perf", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/perf", help="where perf.json and perf.md go")
    p.add_argument("--quick", action="store_true", help="tiny models and counts (tests)")
    p.add_argument("--gpu", action="store_true", help="run the GPU arms (skipped without one)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(CHILD_MARK + json.dumps(child_train(json.loads(args.child))), flush=True)
        return 0
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {sorted(unknown)}")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="tfgan-perf-"))
    report = {"quick": args.quick, "sections": wanted, "errors": {}}
    start = time.perf_counter()
    tf_arms = {}

    def section(name, fn):
        if name not in wanted:
            return
        print(f"[perf] {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            report[name] = fn()
        except Exception as e:  # noqa: BLE001 - one broken section must not lose the rest
            import traceback

            traceback.print_exc()
            report["errors"][name] = f"{type(e).__name__}: {e}"[:500]
        print(f"[perf] {name} done in {time.perf_counter() - t0:.1f} s", flush=True)

    try:
        report["machine"] = bench_machine(args.quick)
        section("pipeline", lambda: bench_pipeline(args.quick, tmp))

        def train():
            result, arms = bench_train(args.quick, report["machine"]["matmul"])
            tf_arms.update(arms)
            return result

        section("train", train)
        if tf_arms:
            section("profile", lambda: bench_profile(args.quick, tf_arms, tmp))
        tf_arms.clear()
        section("experiments", lambda: bench_experiments(args.quick))
        section("serving", lambda: bench_serving(args.quick, tmp))
        section("scaling", lambda: bench_scaling(args.quick))
        section("gpu", lambda: bench_gpu(args.gpu, args.quick))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pipe, train = report.get("pipeline"), report.get("train")
    if pipe and train:
        simple = [a for a in train["arms"] if a["preset"] == "cpu" and a["disc"] == "simple"
                  and a["framework"] == "tensorflow"]
        if simple:
            rate = simple[0]["examples_per_s"]
            pipe["train_examples_per_s"] = rate
            pipe["cold_vs_train"] = pipe["cold"]["examples_per_s"] / rate
            pipe["warm_vs_train"] = pipe["warm"]["examples_per_s"] / rate
    report["load_end"] = load_avg()
    report["total_s"] = time.perf_counter() - start
    report["targets"] = summary_rows(report)
    (out_dir / "perf.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (out_dir / "perf.md").write_text(to_markdown(report))
    print(to_markdown(report))
    print(f"Wrote {out_dir / 'perf.json'} and {out_dir / 'perf.md'}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
