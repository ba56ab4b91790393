"""The ResNet-9 baseline discriminator the earlier attempt found "too smart"."""

from __future__ import annotations

import keras
from keras import layers

from tfgan.models.batchnorm import batch_norm
from tfgan.models.generator import _check_size
from tfgan.models.spectral import (Projection, check_norm, logit_head, maybe_spectral,
                                   neutral_logit)


class ConvBlock(layers.Layer):
    """Conv2D(3x3, stride 1) -> BatchNorm -> ReLU, optionally followed by MaxPool(2).

    Without normalisation (`norm="none"`) the convolution gets a bias, and the last block
    of a residual branch (`zero_init`) starts with a zero kernel and no ReLU, so the block
    starts as the identity (R3GAN; Goyal et al., 2017 for the same idea with BatchNorm's
    scale).
    """

    def __init__(self, width, pool=False, spectral_norm=False, sync_batchnorm=False,
                 norm="batch", zero_init=False, **kwargs):
        super().__init__(**kwargs)
        batch = norm == "batch"
        # (A zero kernel has no direction for spectral normalisation to normalise.)
        init = "zeros" if zero_init and not batch and not spectral_norm else "glorot_uniform"
        self.conv = maybe_spectral(layers.Conv2D(width, 3, padding="same", use_bias=not batch,
                                                 kernel_initializer=init), spectral_norm)
        self.norm = batch_norm(sync_batchnorm) if batch else None
        self.pool = layers.MaxPooling2D(2) if pool else None
        # A zero-initialised last layer must be linear: ReLU's gradient at 0 is 0, so the
        # branch would stay at zero for ever.
        self.linear = init == "zeros"

    def call(self, x, labels=None, training=False):
        x = self.conv(x, training=training)
        if self.norm is not None:
            x = self.norm(x, training=training)
        if not self.linear:
            x = keras.ops.relu(x)
        return self.pool(x) if self.pool is not None else x


@keras.saving.register_keras_serializable(package="tfgan")
class ResNet9Discriminator(keras.Model):
    """ResNet-9 (Page's DAWNBench network) with a single logit.

    `[batch, size, size, 1]` -> `[batch, 1]` float32 logit. With c = base_width, size 64:
    prep 64x64xc -> 32x32x2c -> +res -> 16x16x4c -> 8x8x8c -> +res -> global max -> 1.

    The logit layer starts at zero (see `neutral_logit`): every logit is 0 at any seed.

    Args:
      size: input height and width, 64 or 128.
      base_width: `c`.
      spectral_norm: spectral normalisation on every Conv/Dense (balance control).
      sync_batchnorm: synchronise BatchNorm statistics across replicas.
      num_classes: 0 for an unconditional D; otherwise projection conditioning
        (`Projection`): logit = psi(phi(x)) + embed(y) . phi(x).
      norm: "batch" (the reference) or "none" (no normalisation, zero-initialised
        residual branches, as R3GAN's D).
    """

    def __init__(self, size: int = 64, base_width: int = 64, spectral_norm: bool = False,
                 sync_batchnorm: bool = False, norm: str = "batch", num_classes: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        _check_size("size", size)
        if base_width < 1:
            raise ValueError(f"base_width must be positive. Received: base_width={base_width}")
        check_norm(norm)
        self.size, self.base_width, self.norm = size, base_width, norm
        self.spectral_norm, self.sync_batchnorm = spectral_norm, sync_batchnorm
        c = base_width

        def block(width, pool=False, zero_init=False):
            return ConvBlock(width, pool, spectral_norm, sync_batchnorm, norm, zero_init)

        self.prep = block(c)                                  # [b, s, s, c]
        self.layer1 = block(2 * c, pool=True)                 # [b, s/2, s/2, 2c]
        self.res1 = [block(2 * c), block(2 * c, zero_init=True)]  # same, added to its input
        self.layer2 = block(4 * c, pool=True)                 # [b, s/4, s/4, 4c]
        self.layer3 = block(8 * c, pool=True)                 # [b, s/8, s/8, 8c]
        self.res3 = [block(8 * c), block(8 * c, zero_init=True)]  # same, added to its input
        self.pool = layers.GlobalMaxPooling2D()               # [b, 8c]
        self.flatten = layers.Flatten()
        self.logit = neutral_logit(spectral_norm)
        self.num_classes = num_classes
        self.projection = Projection(num_classes) if num_classes else None

    def call(self, x, labels=None, training=False):
        x = self.layer1(self.prep(x, training=training), training=training)
        x = x + self.res1[1](self.res1[0](x, training=training), training=training)
        x = self.layer3(self.layer2(x, training=training), training=training)
        x = x + self.res3[1](self.res3[0](x, training=training), training=training)
        return self._head(self.flatten(self.pool(x)), labels, training)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "base_width": self.base_width,
                "spectral_norm": self.spectral_norm, "sync_batchnorm": self.sync_batchnorm,
                "norm": self.norm, "num_classes": self.num_classes}

    _head = logit_head
