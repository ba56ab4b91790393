"""The GAN as one keras.Model: compile(d_optimizer, g_optimizer, loss) and a custom train_step.

`train_step` is the whole per-step logic. Keras's `fit` drives it (default and Mirrored
strategies), and so does a plain `strategy.run` loop (`tfgan.train`, needed under
MultiWorkerMirroredStrategy where Keras 3's `fit` fails: keras-team/keras#20585).

Each batch is a dict: `real` `[batch, H, W, 1]` spectrograms and `z` `[batch, n_critic + 1,
latent_dim]` latent noise, drawn in the input pipeline so that every replica split of a
global batch sees exactly the same noise (1 and N replicas then give the same update).
Losses are summed per example and divided by the global batch size.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfgan import augment as augment_lib
from tfgan import losses as losses_lib

METRIC_NAMES = ("d_loss", "g_loss", "d_real_acc", "d_fake_acc", "d_real", "d_fake",
                "d_grad_norm", "g_grad_norm", "gp", "ada_p")


class GAN(keras.Model):
    """Holds the generator G and discriminator D and trains them against each other.

    Args:
      generator: maps `[b, latent_dim]` to `[b, H, W, 1]`.
      discriminator: maps `[b, H, W, 1]` to float32 logits `[b, 1]`.
      latent_dim: length of z.
      n_critic: discriminator updates per generator update.
      gp_weight: WGAN-GP penalty weight (loss "wgan-gp" only).
      r1_gamma: R1 penalty gamma/2 E||grad_x D(x)||^2 on real data (Mescheder et al., 2018);
        0 disables it.
      instance_noise: initial std of Gaussian noise added to D's inputs, annealed linearly
        to 0 over `noise_anneal_steps` (Sonderby et al., 2016); 0 disables it.
      label_smoothing: one-sided: D's real target becomes 1 - label_smoothing.
      augment: differentiable augmentations applied to D's real and fake inputs
        (names from `tfgan.augment.AUGMENTATIONS`).
      ada_target: when > 0, each augmentation is applied with a probability p tuned so
        that E[sign(D(x))] stays near this target (StyleGAN2-ADA, Karras et al., 2020).
      ada_kimg: thousands of images for p to move from 0 to 1.
      ema_decay: when > 0, keeps an exponential moving average of G's weights in
        `ema_generator`, used for sampling and export.
      ema_generator: a model of G's architecture to hold that average.
    """

    def __init__(self, generator, discriminator, latent_dim: int, n_critic: int = 1,
                 gp_weight: float = 10.0, r1_gamma: float = 0.0, instance_noise: float = 0.0,
                 noise_anneal_steps: int = 1, label_smoothing: float = 0.0,
                 augment: tuple = (), ada_target: float = 0.0, ada_kimg: float = 20.0,
                 ema_decay: float = 0.0, ema_generator=None, **kwargs):
        super().__init__(**kwargs)
        if n_critic < 1:
            raise ValueError(f"n_critic must be at least 1. Received: n_critic={n_critic}")
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5). Received: {label_smoothing}")
        if ema_decay > 0 and ema_generator is None:
            raise ValueError("ema_decay > 0 needs an ema_generator to hold the average.")
        self.generator, self.discriminator = generator, discriminator
        self.ema_generator = ema_generator
        self.latent_dim, self.n_critic = latent_dim, n_critic
        self.gp_weight, self.r1_gamma = gp_weight, r1_gamma
        self.instance_noise, self.noise_anneal_steps = instance_noise, max(noise_anneal_steps, 1)
        self.real_label = 1.0 - label_smoothing
        self.augmentations = augment_lib.resolve(augment)
        self.ada_target, self.ada_kimg, self.ema_decay = ada_target, ada_kimg, ema_decay
        # p: probability of each augmentation; 1 without ADA, tuned from 0 with it.
        self.ada_p = self.add_weight(shape=(), initializer="zeros" if ada_target > 0 else "ones",
                                     trainable=False, name="ada_p")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRIC_NAMES}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compile(self, d_optimizer, g_optimizer, loss: str = "nonsaturating", **kwargs):
        kwargs.setdefault("jit_compile", False)  # XLA was measured slower on CPU for this model
        super().compile(**kwargs)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        self.loss_name = loss
        self.g_loss_fn, self.d_loss_fn = losses_lib.get(loss)

    def call(self, z, training=False):
        return self.generator(z, training=training)

    def sampler(self):
        """The generator to sample from: the EMA copy when there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    # -- the step ---------------------------------------------------------------------------

    def _d_inputs(self, x, step):
        """What D sees: augmented (DiffAugment/ADA) and noised copies of `x`."""
        if self.augmentations:
            x = augment_lib.apply(x, self.augmentations, self.ada_p)
        if self.instance_noise > 0:
            frac = tf.cast(step, tf.float32) / float(self.noise_anneal_steps)
            std = self.instance_noise * tf.maximum(0.0, 1.0 - frac)
            x = x + std * tf.random.normal(tf.shape(x))
        return x

    @staticmethod
    def _grad_norm(grads, optimizer):
        norm = tf.linalg.global_norm([tf.cast(g, tf.float32) for g in grads if g is not None])
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            norm = norm / tf.cast(optimizer.dynamic_scale, tf.float32)
        return norm

    def _d_step(self, real, z, global_batch, step):
        fake = self.generator(z, training=True)
        real_in = self._d_inputs(real, step)
        with tf.GradientTape() as tape:
            if self.r1_gamma > 0:
                with tf.GradientTape() as r1_tape:
                    r1_tape.watch(real_in)
                    real_logits = self.discriminator(real_in, training=True)
                    # The sum must be taken while the tape records, or its gradient is None.
                    total = tf.reduce_sum(real_logits)
                grad_x = r1_tape.gradient(total, real_in)
                penalty = 0.5 * self.r1_gamma * tf.reduce_sum(tf.square(grad_x), axis=[1, 2, 3])
            else:
                real_logits = self.discriminator(real_in, training=True)
                penalty = tf.zeros([tf.shape(real)[0]])
            fake_logits = self.discriminator(self._d_inputs(fake, step), training=True)
            per_example = self.d_loss_fn(real_logits, fake_logits, self.real_label)
            if self.loss_name == "wgan-gp":
                gp = self._gradient_penalty(real, fake)
                penalty = penalty + self.gp_weight * gp
            loss = tf.reduce_sum(per_example + penalty) / global_batch
            scaled = self.d_optimizer.scale_loss(loss)
        variables = self.discriminator.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.d_optimizer.apply_gradients(zip(grads, variables))
        return loss, real_logits, fake_logits, self._grad_norm(grads, self.d_optimizer), penalty

    def _gradient_penalty(self, real, fake):
        """(||grad D(x_hat)|| - 1)^2 at random interpolates (Gulrajani et al., 2017)."""
        eps = tf.random.uniform([tf.shape(real)[0], 1, 1, 1])
        x_hat = eps * real + (1.0 - eps) * tf.cast(fake, real.dtype)
        with tf.GradientTape() as tape:
            tape.watch(x_hat)
            total = tf.reduce_sum(self.discriminator(x_hat, training=True))
        grads = tf.cast(tape.gradient(total, x_hat), tf.float32)
        norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
        return tf.square(norm - 1.0)

    def _g_step(self, z, global_batch, step):
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            fake_logits = self.discriminator(self._d_inputs(fake, step), training=True)
            loss = tf.reduce_sum(self.g_loss_fn(fake_logits)) / global_batch
            scaled = self.g_optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        self.g_optimizer.apply_gradients(zip(grads, variables))
        return loss, self._grad_norm(grads, self.g_optimizer)

    def _update_ema(self):
        d = self.ema_decay
        for avg, w in zip(self.ema_generator.trainable_variables,
                          self.generator.trainable_variables):
            avg.assign(d * avg + (1.0 - d) * w)
        # BatchNorm's moving statistics are copied, not averaged: they already are averages.
        for avg, w in zip(self.ema_generator.non_trainable_variables,
                          self.generator.non_trainable_variables):
            avg.assign(w)

    def _update_ada(self, real_logits, global_batch):
        """Moves p towards the value where E[sign(D(x))] on real data equals the target."""
        ctx = tf.distribute.get_replica_context()
        signs = tf.reduce_sum(tf.sign(tf.reshape(real_logits, [-1])))
        r_t = ctx.all_reduce(tf.distribute.ReduceOp.SUM, signs) / global_batch if ctx else signs
        step_size = global_batch / (self.ada_kimg * 1000.0)
        self.ada_p.assign(tf.clip_by_value(
            self.ada_p + tf.sign(r_t - self.ada_target) * step_size, 0.0, 1.0))

    def train_step(self, data):
        real = tf.cast(data["real"], tf.float32)
        z = tf.cast(data["z"], tf.float32)
        strategy = tf.distribute.get_strategy()
        global_batch = tf.cast(tf.shape(real)[0] * strategy.num_replicas_in_sync, tf.float32)
        step = self.g_optimizer.iterations

        for i in range(self.n_critic):
            d_loss, real_logits, fake_logits, d_norm, penalty = self._d_step(
                real, z[:, i], global_batch, step)
        if self.ada_target > 0:
            self._update_ada(real_logits, global_batch)
        g_loss, g_norm = self._g_step(z[:, self.n_critic], global_batch, step)
        if self.ema_decay > 0:
            self._update_ema()

        # The losses are each replica's share of the global mean; report the replica mean.
        replicas = float(strategy.num_replicas_in_sync)
        values = {
            "d_loss": d_loss * replicas, "g_loss": g_loss * replicas,
            "d_real_acc": tf.reduce_mean(tf.cast(real_logits > 0, tf.float32)),
            "d_fake_acc": tf.reduce_mean(tf.cast(fake_logits < 0, tf.float32)),
            "d_real": tf.reduce_mean(tf.sigmoid(real_logits)),
            "d_fake": tf.reduce_mean(tf.sigmoid(fake_logits)),
            "d_grad_norm": d_norm, "g_grad_norm": g_norm,
            "gp": tf.reduce_mean(penalty), "ada_p": self.ada_p,
        }
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}
