"""BatchNorm whose training call is one fused kernel.

Keras 3's BatchNormalization computes batch statistics with separate moments and normalise
ops: about a dozen kernels and passes over the activations forward, more backward. TF's
`FusedBatchNormV3` does each direction in one kernel. `python -m training.perf` measured
the switch at x1.19 per ResNet-9 train step (BatchNorm's unfused ops were a third of its
kernel time) and x1.07 for the simple discriminator (docs/perf/perf.md).

The layer keeps Keras's variables, checkpoints and moving-statistics update (biased
variance), so it is a drop-in replacement; it falls back to Keras's own call for
inference, synchronised (cross-replica) statistics, masks and non-NHWC inputs.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfgan")
class FusedBatchNorm(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that trains through `FusedBatchNormV3`."""

    def _fusable(self, inputs, training, mask) -> bool:
        return (bool(training) and not self.synchronized and mask is None
                and len(inputs.shape) == 4 and self.axis in (-1, 3)
                and inputs.dtype in (tf.float32, tf.float16, tf.bfloat16))

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        scale = (tf.cast(self.gamma, tf.float32) if self.scale
                 else tf.ones_like(self.moving_mean, tf.float32))
        offset = (tf.cast(self.beta, tf.float32) if self.center
                  else tf.zeros_like(self.moving_mean, tf.float32))
        y, mean, var, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=scale, offset=offset, mean=tf.constant([], tf.float32),
            variance=tf.constant([], tf.float32), epsilon=self.epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
        # The kernel returns the unbiased variance; Keras's moving variance is biased.
        n = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
        var = var * (n - 1.0) / n
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + tf.cast(mean, self.moving_mean.dtype)
                                * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m
                                    + tf.cast(var, self.moving_variance.dtype) * (1.0 - m))
        return y


def batch_norm(synchronized: bool = False, affine: bool = True) -> keras.layers.BatchNormalization:
    """The models' BatchNorm: momentum 0.9, epsilon 1e-5 (DESIGN.md), fused when it can be.
    `affine=False` leaves out the learned scale and offset (a class-conditional layer
    supplies its own)."""
    return FusedBatchNorm(momentum=0.9, epsilon=1e-5, synchronized=synchronized,
                          center=affine, scale=affine)
