"""The ConvTranspose generator of the earlier PyTorch attempt (DCGAN-style)."""

from __future__ import annotations

import math

import keras
from keras import layers

from tfgan.config import G_LASTS
from tfgan.models.batchnorm import batch_norm

# The pixel noise's scale at the start, before the tanh. Of the order of the real clips'
# finest texture in the normalised spectrogram: neighbour differences have a standard
# deviation of 0.21-0.25 on the built-in clips and 0.09-0.12 on the recordings
# (docs/quality/gnoise/texture.md). A map that starts at zero barely moved in 1500 steps:
# its gradient is the correlation of the noise with D's verdict, which averages out.
NOISE_START = 0.1


def _check_size(name: str, size: int) -> int:
    if size not in (64, 128):
        raise ValueError(f"{name} must be 64 or 128. Received: {name}={size}")
    return int(math.log2(size // 4)) - 1  # stride-2 blocks before the last upsampling


@keras.saving.register_keras_serializable(package="tfgan")
class ClassBatchNorm(keras.layers.Layer):
    """BatchNorm with a scale and offset per class (conditional BatchNorm, as in the
    generators of Miyato & Koyama, 2018, and BigGAN).

    The batch is normalised with statistics shared by every class; then each example is
    scaled by 1 + gain[class] and shifted by offset[class] over `channels`, in place of a
    BatchNorm's one learned scale and offset. Both tables start at zero, so the layer starts
    as a plain BatchNorm does (scale 1, offset 0).
    """

    def __init__(self, num_classes: int, channels: int, sync_batchnorm: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.channels, self.sync_batchnorm = num_classes, channels, sync_batchnorm
        self.norm = batch_norm(sync_batchnorm, affine=False)
        self.gain = layers.Embedding(num_classes, channels, embeddings_initializer="zeros")
        self.offset = layers.Embedding(num_classes, channels, embeddings_initializer="zeros")

    def call(self, x, labels, training=False):
        y = self.norm(x, training=training)
        shape = [-1] + [1] * (len(y.shape) - 2) + [self.channels]  # broadcast over H, W
        gain = keras.ops.reshape(keras.ops.cast(self.gain(labels), y.dtype), shape)
        offset = keras.ops.reshape(keras.ops.cast(self.offset(labels), y.dtype), shape)
        return y + y * gain + offset  # y * (1 + gain), without rounding 1 + gain in float16

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "channels": self.channels, "sync_batchnorm": self.sync_batchnorm}


@keras.saving.register_keras_serializable(package="tfgan")
class Generator(keras.Model):
    """Maps latent vectors to normalised log-magnitude spectrograms.

    z `[batch, latent_dim]` ~ N(0, I) -> `[batch, size, size, 1]` float32 in [-1, 1].
    For size 64 and base_width c=64:
    4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64x1.

    Args:
      latent_dim: length of z.
      size: output height and width, 64 or 128.
      base_width: `c`, the channels of the last hidden block; the first has `c * 2**k`.
      sync_batchnorm: synchronise BatchNorm statistics across replicas (set by the
        trainer when a strategy has more than one replica).
      num_classes: 0 for an unconditional generator; otherwise a class index in
        `[0, num_classes)` goes with each z, as a learned embedding (of z's length)
        concatenated to z before the first layer.
      class_norm: with classes, every BatchNorm's scale and offset are per class
        (`ClassBatchNorm`), so the class steers every block, not only the input.
      pixel_noise: add Gaussian noise to every output pixel before the tanh, scaled per
        pixel by a second output map (`to_noise`, NOISE_START everywhere at the start).
        The noise is a function of z (`pixel_noise_for`): one z gives one sample.
      last_up: how the last layer doubles the size: "transpose" (a 4x4 stride-2
        transposed convolution) or "resize" (nearest-neighbour x2, then a 3x3 convolution,
        which draws no checkerboard: Odena et al., 2016, "Deconvolution and Checkerboard
        Artifacts").
    """

    def __init__(self, latent_dim: int = 100, size: int = 64, base_width: int = 64,
                 sync_batchnorm: bool = False, num_classes: int = 0,
                 class_norm: bool = False, pixel_noise: bool = False,
                 last_up: str = "transpose", **kwargs):
        # No autocast of z under a mixed policy: the pixel noise hashes z's float32 bits, and
        # must hash the same bits in training (mixed) as in export and serving (float32).
        # Each layer still casts its own input.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        k = _check_size("size", size)
        if latent_dim < 1 or base_width < 1:
            raise ValueError(f"latent_dim and base_width must be positive. Received: "
                             f"latent_dim={latent_dim}, base_width={base_width}")
        self.latent_dim, self.size, self.base_width = latent_dim, size, base_width
        if class_norm and not num_classes:
            raise ValueError("class_norm needs a conditional generator (num_classes >= 2).")
        self.sync_batchnorm, self.num_classes = sync_batchnorm, num_classes
        if last_up not in G_LASTS:
            raise ValueError(f"last_up must be one of {G_LASTS}. Received: last_up={last_up!r}")
        self.class_norm, self.pixel_noise, self.last_up = class_norm, pixel_noise, last_up
        top = base_width * 2 ** k
        if num_classes:
            self.class_embedding = layers.Embedding(num_classes, latent_dim,
                                                    embeddings_initializer="random_normal")

        def bn(channels):
            if class_norm:
                return ClassBatchNorm(num_classes, channels, sync_batchnorm)
            return batch_norm(sync_batchnorm)

        self.project = layers.Dense(4 * 4 * top, use_bias=False)       # [b, 16*top]
        self.reshape = layers.Reshape((4, 4, top))                     # [b, 4, 4, top]
        self.project_bn = bn(top)
        # Two flat lists, not a list of tuples: tf.train.Checkpoint does not see inside tuples.
        self.convs, self.norms = [], []
        for i in range(k):                                             # [b, 2^(i+3), .., top/2^(i+1)]
            self.convs.append(layers.Conv2DTranspose(top // 2 ** (i + 1), 4, strides=2,
                                                     padding="same", use_bias=False))
            self.norms.append(bn(top // 2 ** (i + 1)))
        if last_up == "resize":
            self.upsample = layers.UpSampling2D(2, interpolation="nearest")

        def last(**kwargs):  # [b, size, size, 1]
            if last_up == "resize":
                return layers.Conv2D(1, 3, padding="same", **kwargs)
            return layers.Conv2DTranspose(1, 4, strides=2, padding="same", **kwargs)

        self.to_image = last()
        if pixel_noise:  # the noise's scale at each pixel; constants draw no random numbers
            self.to_noise = last(kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant(NOISE_START))
        # tanh in float32: under mixed precision the output must stay exact at +-1.
        self.out = layers.Activation("tanh", dtype="float32")

    @property
    def _default_save_signature(self):
        # Keras would add a SavedModel signature calling G on z alone, which a conditional
        # G refuses; export.saved_model writes the signatures, with the class.
        return None

    def call(self, z, labels=None, training=False):
        seeds = z
        if self.num_classes:
            if labels is None:
                raise ValueError(f"This generator is conditional on {self.num_classes} "
                                 "classes: pass `labels`, a class index for each z.")
            z = keras.ops.concatenate(
                [z, keras.ops.cast(self.class_embedding(labels), z.dtype)], axis=-1)
        x = self.reshape(self.project(z))
        x = keras.ops.relu(self._norm(self.project_bn, x, labels, training))
        for conv, norm in zip(self.convs, self.norms):
            x = keras.ops.relu(self._norm(norm, conv(x), labels, training))
        if self.last_up == "resize":
            x = self.upsample(x)
        image = self.to_image(x)
        if self.pixel_noise:
            noise = pixel_noise_for(seeds, (self.size, self.size, 1))
            image = image + self.to_noise(x) * keras.ops.cast(noise, image.dtype)
        return self.out(image)

    def _norm(self, layer, x, labels, training):
        if self.class_norm:
            return layer(x, labels, training=training)
        return layer(x, training=training)

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim, "size": self.size,
                "base_width": self.base_width, "sync_batchnorm": self.sync_batchnorm,
                "num_classes": self.num_classes, "class_norm": self.class_norm,
                "pixel_noise": self.pixel_noise, "last_up": self.last_up}


def _mix32(x):
    """A 32-bit integer hash (lowbias32: two xor-shift-multiply rounds) of uint32 `x`."""
    import tensorflow as tf

    for shift, factor in ((16, 0x7FEB352D), (15, 0x846CA68B)):
        x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(shift, tf.uint32)))
        x = x * tf.constant(factor, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.uint32)))


def pixel_noise_for(z, shape):
    """Standard normal noise `[b, *shape]`, float32, that is a function of each row of z.

    Each example's noise hashes the float32 bits of its first and last latent values (two
    z's that share both get the same noise; drawn from N(0, I), they do not) with the pixel
    index (counter-based, as stateless generators are) and turns pairs of uniforms into
    normals (Box-Muller), all in a few elementwise ops on the batch. So the same z gives
    the same noise in any batch, in training, evaluation and a served SavedModel alike,
    with no random state to carry between calls.
    """
    import math

    import tensorflow as tf

    n = math.prod(shape)
    bits = tf.bitcast(tf.cast(tf.stack([z[:, 0], z[:, -1]], axis=1), tf.float32), tf.uint32)
    key = _mix32(tf.bitwise.bitwise_xor(bits[:, :1], _mix32(bits[:, 1:] + 0x9E3779B9)))
    counter = tf.range(2 * n, dtype=tf.int32)[None]  # [1, 2n]
    h = _mix32(tf.bitwise.bitwise_xor(_mix32(tf.cast(counter, tf.uint32)), key))  # [b, 2n]
    u = (tf.cast(h, tf.float32) + 0.5) * (1.0 / 2 ** 32)  # in (0, 1)
    u = tf.minimum(u, 1.0 - 2.0 ** -24)  # float32 rounds the top uniforms up to 1
    radius = tf.sqrt(-2.0 * tf.math.log(u[:, :n]))
    normal = radius * tf.cos((2 * math.pi) * u[:, n:])
    return tf.reshape(normal, [-1, *shape])
