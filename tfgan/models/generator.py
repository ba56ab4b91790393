"""The ConvTranspose generator of the earlier PyTorch attempt (DCGAN-style)."""

from __future__ import annotations

import math

import keras
from keras import layers

from tfgan.models.batchnorm import batch_norm


def _check_size(name: str, size: int) -> int:
    if size not in (64, 128):
        raise ValueError(f"{name} must be 64 or 128. Received: {name}={size}")
    return int(math.log2(size // 4)) - 1  # stride-2 blocks before the last upsampling


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
    """

    def __init__(self, latent_dim: int = 100, size: int = 64, base_width: int = 64,
                 sync_batchnorm: bool = False, num_classes: int = 0, **kwargs):
        super().__init__(**kwargs)
        k = _check_size("size", size)
        if latent_dim < 1 or base_width < 1:
            raise ValueError(f"latent_dim and base_width must be positive. Received: "
                             f"latent_dim={latent_dim}, base_width={base_width}")
        self.latent_dim, self.size, self.base_width = latent_dim, size, base_width
        self.sync_batchnorm, self.num_classes = sync_batchnorm, num_classes
        top = base_width * 2 ** k
        if num_classes:
            self.class_embedding = layers.Embedding(num_classes, latent_dim,
                                                    embeddings_initializer="random_normal")

        def bn():
            return batch_norm(sync_batchnorm)

        self.project = layers.Dense(4 * 4 * top, use_bias=False)       # [b, 16*top]
        self.reshape = layers.Reshape((4, 4, top))                     # [b, 4, 4, top]
        self.project_bn = bn()
        # Two flat lists, not a list of tuples: tf.train.Checkpoint does not see inside tuples.
        self.convs, self.norms = [], []
        for i in range(k):                                             # [b, 2^(i+3), .., top/2^(i+1)]
            self.convs.append(layers.Conv2DTranspose(top // 2 ** (i + 1), 4, strides=2,
                                                     padding="same", use_bias=False))
            self.norms.append(bn())
        self.to_image = layers.Conv2DTranspose(1, 4, strides=2, padding="same")  # [b, size, size, 1]
        # tanh in float32: under mixed precision the output must stay exact at +-1.
        self.out = layers.Activation("tanh", dtype="float32")

    @property
    def _default_save_signature(self):
        # Keras would add a SavedModel signature calling G on z alone, which a conditional
        # G refuses; export.saved_model writes the signatures, with the class.
        return None

    def call(self, z, labels=None, training=False):
        if self.num_classes:
            if labels is None:
                raise ValueError(f"This generator is conditional on {self.num_classes} "
                                 "classes: pass `labels`, a class index for each z.")
            z = keras.ops.concatenate(
                [z, keras.ops.cast(self.class_embedding(labels), z.dtype)], axis=-1)
        x = self.reshape(self.project(z))
        x = keras.ops.relu(self.project_bn(x, training=training))
        for conv, norm in zip(self.convs, self.norms):
            x = keras.ops.relu(norm(conv(x), training=training))
        return self.out(self.to_image(x))

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim, "size": self.size,
                "base_width": self.base_width, "sync_batchnorm": self.sync_batchnorm,
                "num_classes": self.num_classes}
