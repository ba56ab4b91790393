"""Tests for tfgan.losses against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from tfgan import losses

LOG2 = math.log(2.0)


def sp(x):
    """softplus, by hand."""
    return math.log1p(math.exp(x))


def test_nonsaturating_discriminator_at_zero():
    out = losses.nonsaturating_discriminator_loss(tf.zeros([3, 1]), tf.zeros([3, 1]))
    assert out.shape == (3,)
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), 2 * LOG2, rtol=1e-6)  # -log(1/2) twice


def test_nonsaturating_discriminator_values():
    real = tf.constant([[2.0], [-1.0]])
    fake = tf.constant([[-1.0], [3.0]])
    out = losses.nonsaturating_discriminator_loss(real, fake)
    # -log sigmoid(r) - log(1 - sigmoid(f)) = log(1 + e^-r) + log(1 + e^f)
    expected = [sp(-2.0) + sp(-1.0), sp(1.0) + sp(3.0)]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


def test_nonsaturating_label_smoothing_formula():
    real = tf.constant([1.5, -0.5])
    fake = tf.constant([0.25, -2.0])
    t = 0.9
    out = losses.nonsaturating_discriminator_loss(real, fake, real_label=t)
    # -t log s(r) - (1 - t) log(1 - s(r)) - log(1 - s(f))
    expected = [t * sp(-r) + (1 - t) * sp(r) + sp(f) for r, f in [(1.5, 0.25), (-0.5, -2.0)]]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    # The smoothed loss is minimised at sigmoid(r) = t, not at r -> inf.
    r = tf.Variable([0.0])
    with tf.GradientTape() as tape:
        loss = losses.nonsaturating_discriminator_loss(r, tf.constant([0.0]), real_label=t)
    assert float(tape.gradient(loss, r)[0]) == pytest.approx(0.5 - t, rel=1e-5)
    r_star = math.log(t / (1 - t))
    with tf.GradientTape() as tape:
        r.assign([r_star])
        loss = losses.nonsaturating_discriminator_loss(r, tf.constant([0.0]), real_label=t)
    assert float(tape.gradient(loss, r)[0]) == pytest.approx(0.0, abs=1e-6)


def test_nonsaturating_is_stable_for_large_logits():
    out = losses.nonsaturating_discriminator_loss(tf.constant([100.0, -100.0]),
                                                  tf.constant([-100.0, 100.0])).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, [0.0, 200.0], atol=1e-5)
    g = losses.nonsaturating_generator_loss(tf.constant([-100.0, 100.0])).numpy()
    np.testing.assert_allclose(g, [100.0, 0.0], atol=1e-5)


def test_nonsaturating_generator_values():
    out = losses.nonsaturating_generator_loss(tf.constant([[0.0], [3.0], [-1.0]]))
    assert out.shape == (3,)
    np.testing.assert_allclose(out.numpy(), [LOG2, sp(-3.0), sp(1.0)], rtol=1e-6)


def test_hinge_discriminator_values():
    real = tf.constant([[0.5], [-2.0], [3.0]])
    fake = tf.constant([[-2.0], [0.5], [-0.25]])
    out = losses.hinge_discriminator_loss(real, fake)
    # max(0, 1 - r) + max(0, 1 + f)
    np.testing.assert_allclose(out.numpy(), [0.5 + 0.0, 3.0 + 1.5, 0.0 + 0.75], rtol=1e-6)
    smoothed = losses.hinge_discriminator_loss(real, fake, real_label=0.9)
    np.testing.assert_allclose(smoothed.numpy(), [0.4, 2.9 + 1.5, 0.75], rtol=1e-6)


def test_hinge_generator_values():
    out = losses.hinge_generator_loss(tf.constant([[0.5], [-2.0]]))
    np.testing.assert_allclose(out.numpy(), [-0.5, 2.0])


def test_wasserstein_values():
    real = tf.constant([[0.5], [-2.0]])
    fake = tf.constant([[-2.0], [0.5]])
    d = losses.wasserstein_discriminator_loss(real, fake)
    np.testing.assert_allclose(d.numpy(), [-2.5, 2.5])
    # A critic has no labels to smooth.
    np.testing.assert_allclose(
        losses.wasserstein_discriminator_loss(real, fake, real_label=0.9).numpy(), d.numpy())
    g = losses.wasserstein_generator_loss(fake)
    np.testing.assert_allclose(g.numpy(), [2.0, -0.5])


@pytest.mark.parametrize("name", ["nonsaturating", "hinge", "wgan-gp"])
def test_losses_accept_other_dtypes_and_shapes(name):
    g_loss, d_loss = losses.get(name)
    real16 = tf.constant([[0.5], [1.0]], tf.float16)
    fake64 = tf.constant([-0.5, 2.0], tf.float64)
    d = d_loss(real16, fake64)
    g = g_loss(real16)
    assert d.dtype == g.dtype == tf.float32
    assert d.shape == g.shape == (2,)
    ref = d_loss(tf.constant([0.5, 1.0]), tf.constant([-0.5, 2.0]))
    np.testing.assert_allclose(d.numpy(), ref.numpy(), rtol=1e-6)


def test_get():
    assert losses.get("nonsaturating") == (losses.nonsaturating_generator_loss,
                                           losses.nonsaturating_discriminator_loss)
    assert losses.get("hinge") == (losses.hinge_generator_loss, losses.hinge_discriminator_loss)
    assert losses.get("wgan-gp") == (losses.wasserstein_generator_loss,
                                     losses.wasserstein_discriminator_loss)


def test_get_unknown_raises():
    with pytest.raises(ValueError, match="Received: name='lsgan'"):
        losses.get("lsgan")


def test_config_accepts_exactly_the_registered_losses(monkeypatch):
    """The registry is the one list of loss names: adding to it is all the config needs."""
    from tfgan.config import TrainConfig

    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig(loss="lsgan").validate()
    monkeypatch.setitem(losses.LOSSES, "lsgan", losses.LOSSES["hinge"])
    TrainConfig(loss="lsgan").validate()
