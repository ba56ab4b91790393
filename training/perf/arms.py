"""What the train-step sections time: the TF and PyTorch arms, run round by round."""

from __future__ import annotations

import time

from training.perf.common import import_tf, stats_of, timed


class TFArm:
    """The real train step: build_gan, tf.function(train_step), a fixed in-memory batch."""

    framework = "tensorflow"

    def __init__(self, cfg, jit_compile: bool = False, seed: int = 0,
                 precision: str = "float32"):
        import keras

        tf = import_tf()
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
