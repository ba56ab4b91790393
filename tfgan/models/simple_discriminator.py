"""The new, deliberately simple discriminator: strided convolutions, no residuals."""

from __future__ import annotations

import keras
from keras import layers

from tfgan.models.batchnorm import batch_norm
from tfgan.models.generator import _check_size
from tfgan.models.spectral import (Projection, check_norm, logit_head, maybe_spectral,
                                   neutral_logit)


@keras.saving.register_keras_serializable(package="tfgan")
class SimpleDiscriminator(keras.Model):
    """Conv(4x4, stride 2) -> LeakyReLU(0.2) -> BatchNorm blocks down to 4x4, then a logit.

    `[batch, size, size, 1]` -> `[batch, 1]` float32 logit. Widths c, 2c, 4c, 8c (and 16c
    at 128x128); no BatchNorm in the first block. For size 64, c=64:
    64x64x1 -> 32x32x64 -> 16x16x128 -> 8x8x256 -> 4x4x512 -> 1.

    The logit layer starts at zero, so D starts neutral (every logit 0) at any seed; the
    other layers use Keras's default initialisers (Glorot uniform), not PyTorch's.

    Args:
      size: input height and width, 64 or 128.
      base_width: `c`.
      spectral_norm: wrap every Conv/Dense in spectral normalisation (a balance control,
        off by default so the architecture stays the reference one).
      sync_batchnorm: synchronise BatchNorm statistics across replicas.
      num_classes: 0 for an unconditional D; otherwise projection conditioning
        (`Projection`): logit = psi(phi(x)) + embed(y) . phi(x).
      norm: "batch" (the reference) or "none" (Conv -> LeakyReLU only, as R3GAN's D).
    """

    def __init__(self, size: int = 64, base_width: int = 64, spectral_norm: bool = False,
                 sync_batchnorm: bool = False, norm: str = "batch", num_classes: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        n_blocks = _check_size("size", size) + 1
        if base_width < 1:
            raise ValueError(f"base_width must be positive. Received: base_width={base_width}")
        check_norm(norm)
        self.size, self.base_width, self.norm = size, base_width, norm
        self.spectral_norm, self.sync_batchnorm = spectral_norm, sync_batchnorm
        # Flat lists, not tuples: tf.train.Checkpoint does not see inside tuples.
        self.convs, self.norms = [], []
        for i in range(n_blocks):                         # [b, size/2^(i+1), .., c*2^i]
            self.convs.append(maybe_spectral(layers.Conv2D(base_width * 2 ** i, 4, strides=2,
                                                           padding="same"), spectral_norm))
            if i > 0 and norm == "batch":  # no BatchNorm in the first block
                self.norms.append(batch_norm(sync_batchnorm))
        self.flatten = layers.Flatten()                   # [b, 4*4*c*2^(n-1)]
        self.logit = neutral_logit(spectral_norm)
        self.num_classes = num_classes
        self.projection = Projection(num_classes) if num_classes else None

    def call(self, x, labels=None, training=False):
        for i, conv in enumerate(self.convs):
            x = keras.ops.leaky_relu(conv(x, training=training), negative_slope=0.2)
            if i > 0 and self.norms:
                x = self.norms[i - 1](x, training=training)
        return self._head(self.flatten(x), labels, training)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "base_width": self.base_width,
                "spectral_norm": self.spectral_norm, "sync_batchnorm": self.sync_batchnorm,
                "norm": self.norm, "num_classes": self.num_classes}

    _head = logit_head
