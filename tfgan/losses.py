"""GAN losses as paired pure functions of discriminator logits.

Every function takes float32 logits `[batch, 1]` (or `[batch]`) and returns per-example
losses `[batch]`; the caller sums them and divides by the global batch, which keeps the
update identical however the batch is split over replicas. Generator losses take the real
logits too (`real_logits`), which only the relativistic loss uses: it pairs example i of
the real batch with example i of the fake batch.
"""

from __future__ import annotations

import tensorflow as tf


def _flat(logits):
    return tf.reshape(tf.cast(logits, tf.float32), [-1])


def nonsaturating_discriminator_loss(real_logits, fake_logits, real_label: float = 1.0):
    """Binary cross-entropy: -t log D(x) - (1 - t) log(1 - D(x)) - log(1 - D(G(z))).

    `real_label` < 1 is one-sided label smoothing (Salimans et al., 2016).
    softplus(-l) = -log sigmoid(l), computed stably.
    """
    real, fake = _flat(real_logits), _flat(fake_logits)
    return (real_label * tf.nn.softplus(-real) + (1.0 - real_label) * tf.nn.softplus(real)
            + tf.nn.softplus(fake))


def nonsaturating_generator_loss(fake_logits, real_logits=None):
    """-log D(G(z)) (Goodfellow et al., 2014, the non-saturating variant)."""
    del real_logits
    return tf.nn.softplus(-_flat(fake_logits))


def hinge_discriminator_loss(real_logits, fake_logits, real_label: float = 1.0):
    """max(0, t - D(x)) + max(0, 1 + D(G(z))) (Lim & Ye, 2017); t = 1 unless smoothed."""
    return tf.nn.relu(real_label - _flat(real_logits)) + tf.nn.relu(1.0 + _flat(fake_logits))


def hinge_generator_loss(fake_logits, real_logits=None):
    """-D(G(z))."""
    del real_logits
    return -_flat(fake_logits)


def wasserstein_discriminator_loss(real_logits, fake_logits, real_label: float = 1.0):
    """D(G(z)) - D(x): the critic's side of the Wasserstein loss (penalty added apart)."""
    del real_label  # no labels to smooth in a critic
    return _flat(fake_logits) - _flat(real_logits)


def wasserstein_generator_loss(fake_logits, real_logits=None):
    """-D(G(z))."""
    del real_logits
    return -_flat(fake_logits)


def rpgan_discriminator_loss(real_logits, fake_logits, real_label: float = 1.0):
    """softplus(D(G(z_i)) - D(x_i)) = -log sigmoid(D(x_i) - D(G(z_i))).

    The relativistic pairing loss (Jolicoeur-Martineau, 2019; R3GAN, Huang et al., 2024):
    D is asked only to rank each real example above its paired fake, so it has no
    absolute target to overshoot, and with R1 + R2 the game has a local convergence
    guarantee (R3GAN, section 3).
    """
    del real_label  # a ranking has no label to smooth
    return tf.nn.softplus(_flat(fake_logits) - _flat(real_logits))


def rpgan_generator_loss(fake_logits, real_logits):
    """softplus(D(x_i) - D(G(z_i))): G raises its sample above the paired real one."""
    return tf.nn.softplus(tf.stop_gradient(_flat(real_logits)) - _flat(fake_logits))


# name -> (generator loss, discriminator loss)
LOSSES = {
    "nonsaturating": (nonsaturating_generator_loss, nonsaturating_discriminator_loss),
    "hinge": (hinge_generator_loss, hinge_discriminator_loss),
    "wgan-gp": (wasserstein_generator_loss, wasserstein_discriminator_loss),
    "rpgan": (rpgan_generator_loss, rpgan_discriminator_loss),
}

# Losses whose discriminator output is only meaningful relative to its pair.
RELATIVISTIC = ("rpgan",)


def get(name: str):
    """(generator_loss, discriminator_loss) for `name`."""
    if name not in LOSSES:
        raise ValueError(f"Unknown loss. Expected one of {sorted(LOSSES)}. Received: name={name!r}")
    return LOSSES[name]
