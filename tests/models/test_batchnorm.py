"""FusedBatchNorm: the same numbers as Keras's BatchNormalization, through one kernel."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from tfgan.models.batchnorm import FusedBatchNorm, batch_norm


def _pair():
    x = tf.random.normal([8, 6, 6, 5], seed=3) * 2.0 + 0.5
    keras_bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    fused = batch_norm()
    for layer in (keras_bn, fused):
        layer.build(x.shape)
        layer.gamma.assign(tf.linspace(0.5, 1.5, 5))
        layer.beta.assign(tf.linspace(-0.2, 0.2, 5))
    return x, keras_bn, fused


def _run(layer, x):
    """Output, input gradient and the gradient-penalty gradient (second order)."""
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.cos(y))
        grad = inner.gradient(loss, x)
        penalty = tf.reduce_sum(tf.square(grad))
    return y, grad, outer.gradient(penalty, layer.gamma)


def test_training_call_matches_keras_outputs_gradients_and_moving_stats():
    x, keras_bn, fused = _pair()
    for _ in range(2):  # two updates of the moving statistics
        ref, got = _run(keras_bn, x), _run(fused, x)
    for a, b in zip(ref, got):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(fused.moving_mean.numpy(), keras_bn.moving_mean.numpy(),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fused.moving_variance.numpy(),
                               keras_bn.moving_variance.numpy(), rtol=1e-5)
    # Inference uses the moving statistics, as Keras's layer does.
    np.testing.assert_allclose(fused(x, training=False).numpy(),
                               keras_bn(x, training=False).numpy(), rtol=1e-5, atol=1e-5)


def test_training_graph_uses_the_fused_kernel_and_falls_back_when_synchronised():
    x = tf.random.normal([4, 4, 4, 3])

    def ops(layer):
        layer.build(x.shape)
        graph = tf.function(lambda v: layer(v, training=True)).get_concrete_function(x).graph
        return {op.type for op in graph.get_operations()}

    assert "FusedBatchNormV3" in ops(batch_norm())
    assert "FusedBatchNormV3" not in ops(batch_norm(synchronized=True))


def test_without_scale_and_offset_the_fused_call_matches_keras():
    x = tf.random.normal([8, 6, 6, 5], seed=5) * 3.0 - 1.0
    keras_bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, center=False,
                                               scale=False)
    fused = batch_norm(affine=False)
    assert fused.gamma is None and fused.beta is None
    graph = tf.function(lambda v: fused(v, training=True)).get_concrete_function(x).graph
    assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}
    np.testing.assert_allclose(fused(x, training=True).numpy(),
                               keras_bn(x, training=True).numpy(), rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(fused.moving_mean.numpy(), keras_bn.moving_mean.numpy(),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fused.moving_variance.numpy(),
                               keras_bn.moving_variance.numpy(), rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_inputs_keep_their_dtype(dtype):
    x = tf.random.normal([4, 4, 4, 3])
    layer = FusedBatchNorm(momentum=0.9, epsilon=1e-5, dtype=f"mixed_{dtype}")
    y = layer(tf.cast(x, dtype), training=True)
    assert y.dtype == dtype
    ref = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x, training=True)
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), ref.numpy(), atol=0.05)
    assert layer.moving_mean.dtype == "float32"
