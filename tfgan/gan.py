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
from tfgan.models import balanced_labels, with_labels

METRIC_NAMES = ("d_loss", "g_loss", "d_real_acc", "d_fake_acc", "d_real", "d_fake", "d_rank",
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
      r2_gamma: the same penalty on generated data (R2); R3GAN needs both for its
        convergence guarantee (R1 alone diverged in its ablation).
      reg_every: lazy regularisation (StyleGAN2, Karras et al., 2020, section 3.1): R1 and
        R2 are computed only on every `reg_every`-th D update, with gamma times `reg_every`, so
        that their average weight is unchanged; their double backward pass is most of the
        modern recipe's extra cost. 1 computes them every step.
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
      ema_rampup: the decay at step t is min(ema_decay, (1 + t) / (ema_rampup + t)), so the
        average forgets the random initialisation early on (0: constant decay).
      ema_generator: a model of G's architecture to hold that average. Its BatchNorm
        statistics are its own, re-estimated by `refresh_ema_statistics`.
      joint_batch: D judges each real batch and its fakes in one call, so that its
        BatchNorm layers normalise both with the same statistics. Apart (the default, and
        the earlier attempt's way), a BatchNorm D can tell the two batches apart by their
        statistics as a whole, not only example by example. With BatchNorm, R1's and R2's
        input gradients then also carry each example's share of the joint statistics.
        A D without normalisation computes the same either way (spectral norm aside: its
        power iteration then advances once per D call instead of twice). Under float16,
        when only one of R1/R2 is on, the other half's input gradient is still computed,
        and its overflow skips the step as any overflow does.
    """

    def __init__(self, generator, discriminator, latent_dim: int, n_critic: int = 1,
                 gp_weight: float = 10.0, r1_gamma: float = 0.0, r2_gamma: float = 0.0,
                 reg_every: int = 1, instance_noise: float = 0.0,
                 noise_anneal_steps: int = 1, label_smoothing: float = 0.0,
                 augment: tuple = (), ada_target: float = 0.0, ada_kimg: float = 20.0,
                 ema_decay: float = 0.0, ema_rampup: float = 0.0, ema_generator=None,
                 joint_batch: bool = False, **kwargs):
        super().__init__(**kwargs)
        if n_critic < 1:
            raise ValueError(f"n_critic must be at least 1. Received: n_critic={n_critic}")
        if reg_every < 1:
            raise ValueError(f"reg_every must be at least 1. Received: reg_every={reg_every}")
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5). Received: {label_smoothing}")
        if ema_decay > 0 and ema_generator is None:
            raise ValueError("ema_decay > 0 needs an ema_generator to hold the average.")
        self.generator, self.discriminator = generator, discriminator
        self.ema_generator = ema_generator
        self.latent_dim, self.n_critic = latent_dim, n_critic
        self.gp_weight, self.r1_gamma, self.r2_gamma = gp_weight, r1_gamma, r2_gamma
        self.reg_every, self.joint_batch = reg_every, joint_batch
        self.instance_noise, self.noise_anneal_steps = instance_noise, max(noise_anneal_steps, 1)
        self.real_label = 1.0 - label_smoothing
        self.augmentations = augment_lib.resolve(augment)
        self.ada_target, self.ada_kimg, self.ema_decay = ada_target, ada_kimg, ema_decay
        self.ema_rampup = ema_rampup
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
        self.relativistic = loss in losses_lib.RELATIVISTIC

    def call(self, z, training=False):
        return self.generator(z, training=training)

    def sampler(self):
        """The generator to sample from: the EMA copy when there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    # -- the step ---------------------------------------------------------------------------

    def _d(self, x, labels):
        return with_labels(self.discriminator, x, labels, training=True)

    def d_pair(self, real, fake, labels, training=True):
        """D's logits `[b, 1]` on a real batch and its paired fakes: in two calls, or in one
        when `joint_batch` (then both share BatchNorm's batch statistics)."""
        if not self.joint_batch:
            return (with_labels(self.discriminator, real, labels, training=training),
                    with_labels(self.discriminator, fake, labels, training=training))
        x, both = _joint(real, fake, labels)
        logits = with_labels(self.discriminator, x, both, training=training)
        return _halves(logits)

    def _g(self, z, labels):
        return with_labels(self.generator, z, labels, training=True)

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
    def _loss_scale(optimizer):
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return tf.cast(optimizer.dynamic_scale, tf.float32)
        return tf.constant(1.0)

    @classmethod
    def _grad_norm(cls, grads, optimizer):
        """Norm of the update's gradient: summed over replicas, as the optimizer applies it."""
        grads = [tf.cast(g, tf.float32) for g in grads if g is not None]
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            # Each replica holds only its share; the optimizer sums them. Logging one share
            # would under-report the norm by about sqrt(replicas) and hide spikes.
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        return tf.linalg.global_norm(grads) / cls._loss_scale(optimizer)

    def _penalised(self, x, labels, gamma, optimizer):
        """D(x) `[b, 1]` and the zero-centred penalty gamma/2 ||grad_x D(x)||^2 `[b]`; gamma
        is a number or a `[b]` tensor (one per example).

        Under mixed_float16 the input gradient runs back through float16 layers, where
        its small values underflow; it is taken of the loss-scaled sum and unscaled after,
        as the weight gradients are. An overflow makes the penalty (so the loss) infinite
        and the loss-scale optimizer skips the step and lowers the scale.
        """
        if not tf.is_tensor(gamma) and gamma <= 0:
            return self._d(x, labels), tf.zeros([tf.shape(x)[0]])
        scale = self._loss_scale(optimizer)
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = self._d(x, labels)
            # The sum must be taken while the tape records, or its gradient is None.
            total = tf.reduce_sum(tf.cast(logits, tf.float32)) * scale
        grad = tf.cast(tape.gradient(total, x), tf.float32) / scale
        return logits, 0.5 * gamma * tf.reduce_sum(tf.square(grad), axis=[1, 2, 3])

    def _d_step(self, real, z, labels, global_batch, step):
        # A conditional G draws the real batch's classes: each fake has its real pair's.
        fake = self._g(z, labels)
        real_in, fake_in = self._d_inputs(real, step), self._d_inputs(fake, step)
        args = (real, fake, real_in, fake_in, labels, global_batch)
        if self.reg_every > 1 and max(self.r1_gamma, self.r2_gamma) > 0:
            # Lazy R1/R2 on every k-th D update (n_critic per step; one skipped by loss
            # scaling is retried). Both branches only compute; the update is applied once.
            k = self.reg_every
            per_example, penalty, real_logits, fake_logits, grads = tf.cond(
                tf.equal(self.d_optimizer.iterations % k, 0),
                lambda: self._d_grads(*args, float(k)),
                lambda: self._d_grads(*args, 0.0))
        else:
            per_example, penalty, real_logits, fake_logits, grads = self._d_grads(*args, 1.0)
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(grads, variables))
        if isinstance(self.d_optimizer, keras.optimizers.LossScaleOptimizer):
            # A penalty whose loss-scaled input gradient overflowed is infinite; the
            # optimizer has skipped the step and lowered the scale, as with any overflow.
            # Log what the loss was without it, so that this routine event is not taken
            # for divergence.
            penalty = tf.where(tf.math.is_finite(penalty), penalty, tf.zeros_like(penalty))
        loss = tf.reduce_sum(per_example + penalty) / global_batch
        return loss, real_logits, fake_logits, self._grad_norm(grads, self.d_optimizer), penalty

    def _d_grads(self, real, fake, real_in, fake_in, labels, global_batch, reg_scale):
        """D's per-example loss and penalty, its logits, and the gradient of the (loss-scaled)
        mean on D's weights; R1 and R2 weigh `reg_scale` times their gamma."""
        r1, r2 = reg_scale * self.r1_gamma, reg_scale * self.r2_gamma
        with tf.GradientTape() as tape:
            if self.joint_batch:
                x, both = _joint(real_in, fake_in, labels)
                n = tf.shape(real_in)[0]
                gamma = tf.repeat(tf.constant([r1, r2]), [n, n]) if max(r1, r2) > 0 else 0.0
                logits, penalty = self._penalised(x, both, gamma, self.d_optimizer)
                (real_logits, fake_logits), (p1, p2) = _halves(logits), _halves(penalty)
            else:
                real_logits, p1 = self._penalised(real_in, labels, r1, self.d_optimizer)
                fake_logits, p2 = self._penalised(fake_in, labels, r2, self.d_optimizer)
            penalty = p1 + p2
            per_example = self.d_loss_fn(real_logits, fake_logits, self.real_label)
            if self.loss_name == "wgan-gp":
                gp = self._gradient_penalty(real, fake, labels)
                penalty = penalty + self.gp_weight * gp
            loss = tf.reduce_sum(per_example + penalty) / global_batch
            scaled = self.d_optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.discriminator.trainable_variables)
        return per_example, penalty, real_logits, fake_logits, grads

    def _gradient_penalty(self, real, fake, labels):
        """(||grad D(x_hat)|| - 1)^2 at random interpolates (Gulrajani et al., 2017)."""
        eps = tf.random.uniform([tf.shape(real)[0], 1, 1, 1])
        x_hat = eps * real + (1.0 - eps) * tf.cast(fake, real.dtype)
        with tf.GradientTape() as tape:
            tape.watch(x_hat)
            total = tf.reduce_sum(self._d(x_hat, labels))
        grads = tf.cast(tape.gradient(total, x_hat), tf.float32)
        norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
        return tf.square(norm - 1.0)

    def _g_step(self, real, z, labels, global_batch, step):
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            fake = self._g(z, labels)
            fake_in = self._d_inputs(fake, step)
            # A relativistic G loss compares each fake with its paired real example.
            if self.joint_batch:
                real_logits, fake_logits = self.d_pair(self._d_inputs(real, step), fake_in,
                                                       labels)
                real_logits = real_logits if self.relativistic else None
            else:
                fake_logits = self._d(fake_in, labels)
                real_logits = (self._d(self._d_inputs(real, step), labels)
                               if self.relativistic else None)
            loss = tf.reduce_sum(self.g_loss_fn(fake_logits, real_logits)) / global_batch
            scaled = self.g_optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        self.g_optimizer.apply_gradients(zip(grads, variables))
        return loss, self._grad_norm(grads, self.g_optimizer)

    def ema_decay_at(self, step):
        """The EMA decay after `step` updates: min(decay, (1 + t) / (rampup + t))."""
        t = tf.cast(step, tf.float32)
        if self.ema_rampup <= 0:
            return tf.constant(self.ema_decay, tf.float32)
        return tf.minimum(self.ema_decay, (1.0 + t) / (self.ema_rampup + t))

    def _update_ema(self, step):
        d = self.ema_decay_at(step)
        for avg, w in zip(self.ema_generator.trainable_variables,
                          self.generator.trainable_variables):
            avg.assign(d * avg + (1.0 - d) * tf.cast(w, avg.dtype))
        # BatchNorm's moving statistics are not averaged: those of G belong to G's weights,
        # not to the average's. `refresh_ema_statistics` measures the average's own.

    def refresh_ema_statistics(self, batch_size: int = 512, seed: int = 0) -> None:
        """Re-estimates the EMA generator's BatchNorm statistics on one large batch.

        Each BatchNorm's moving mean and variance become those of the EMA generator's own
        activations on `batch_size` latents (momentum 0 for one training-mode call). Called
        before the EMA generator is sampled, evaluated or checkpointed.
        """
        g = self.ema_generator
        if g is None:
            return
        norms = [layer for layer in g._flatten_layers()
                 if isinstance(layer, keras.layers.BatchNormalization)]
        if not norms:
            return
        z = tf.random.stateless_normal([batch_size, self.latent_dim], seed=[seed, 65537])
        labels = balanced_labels(batch_size, g.num_classes)
        momenta = [n.momentum for n in norms]
        try:
            for n in norms:
                n.momentum = 0.0
            with_labels(g, z, labels, training=True)
        finally:
            for n, m in zip(norms, momenta):
                n.momentum = m

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
        labels = tf.cast(data["labels"], tf.int32) if "labels" in data else None
        strategy = tf.distribute.get_strategy()
        global_batch = tf.cast(tf.shape(real)[0] * strategy.num_replicas_in_sync, tf.float32)
        step = self.g_optimizer.iterations

        for i in range(self.n_critic):
            d_loss, real_logits, fake_logits, d_norm, penalty = self._d_step(
                real, z[:, i], labels, global_batch, step)
        if self.ada_target > 0:
            self._update_ada(real_logits, global_batch)
        g_loss, g_norm = self._g_step(real, z[:, self.n_critic], labels, global_batch, step)
        if self.ema_decay > 0:
            self._update_ema(step)

        # The losses are each replica's share of the global mean; report the replica mean.
        replicas = float(strategy.num_replicas_in_sync)
        values = {
            "d_loss": d_loss * replicas, "g_loss": g_loss * replicas,
            "d_real_acc": tf.reduce_mean(tf.cast(real_logits > 0, tf.float32)),
            "d_fake_acc": tf.reduce_mean(tf.cast(fake_logits < 0, tf.float32)),
            "d_real": tf.reduce_mean(tf.sigmoid(real_logits)),
            "d_fake": tf.reduce_mean(tf.sigmoid(fake_logits)),
            # How often D ranks a real example above its paired fake (what a relativistic
            # D is trained to do; 0.5 is a draw).
            "d_rank": tf.reduce_mean(tf.cast(tf.reshape(real_logits, [-1])
                                             > tf.reshape(fake_logits, [-1]), tf.float32)),
            "d_grad_norm": d_norm, "g_grad_norm": g_norm,
            "gp": tf.reduce_mean(penalty), "ada_p": self.ada_p,
        }
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}


def _joint(real, fake, labels):
    """One batch of the real examples followed by their fakes, and its class labels."""
    x = tf.concat([real, tf.cast(fake, real.dtype)], 0)
    return x, None if labels is None else tf.concat([labels, labels], 0)


def _halves(x):
    """The real and the fake half of a joint batch's outputs."""
    n = tf.shape(x)[0] // 2
    return x[:n], x[n:]
