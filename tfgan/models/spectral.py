"""Pieces both discriminators share: spectral normalisation, the neutral logit, norm names,
class projection."""

import keras
from keras import layers

NORMS = ("batch", "none")


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}. Received: norm={norm!r}")
    return norm


def neutral_logit(spectral_norm: bool = False):
    """Dense(1) float32 logit layer starting at zero weight and bias.

    Under spectral normalisation a zero kernel has no direction to normalise (its
    singular value is 0), so that case keeps the default kernel.

    Every input then gets logit 0 at initialisation, whatever the seed. With a default
    (Glorot) kernel, ResNet-9's head, a global max pool of ReLU features, starts with an
    offset shared by every input and set by the seed (+7 at one seed, -2 at another, at
    base width 8), so D would begin by calling everything real or everything fake.
    """
    init = "glorot_uniform" if spectral_norm else "zeros"
    return maybe_spectral(layers.Dense(1, dtype="float32", kernel_initializer=init), spectral_norm)


def maybe_spectral(layer, enabled: bool):
    """`layer` wrapped in keras.layers.SpectralNormalization when `enabled`.

    The wrapper keeps a power-iteration estimate of the kernel's largest singular value
    and divides the kernel by it in training calls, so D is about 1-Lipschitz per layer.
    """
    if not enabled:
        return layer
    # The wrapped layer's dtype policy, so a float32 logit layer stays float32 under
    # mixed precision instead of taking the global mixed policy.
    return layers.SpectralNormalization(layer, power_iterations=1, dtype=layer.dtype_policy)


class Projection(layers.Layer):
    """The class term of a projection discriminator (Miyato & Koyama, 2018):
    `embed(y) . phi(x)`, added to the unconditional logit psi(phi(x)).

    The embedding starts at zero, so a conditional D starts as neutral as an
    unconditional one (every logit 0).
    """

    def __init__(self, num_classes: int, **kwargs):
        kwargs["dtype"] = "float32"  # the logit's precision, as the logit layer's
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def build(self, features_shape):
        self.embedding = layers.Embedding(self.num_classes, int(features_shape[-1]),
                                          embeddings_initializer="zeros", dtype="float32")
        self.embedding.build((None,))

    def call(self, features, labels):
        features = keras.ops.cast(features, "float32")
        return keras.ops.sum(self.embedding(labels) * features, axis=-1, keepdims=True)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def logit_head(d, features, labels, training):
    """A discriminator's output from its features: `d.logit`, plus `d.projection`'s class
    term when `d` is conditional (both discriminators use this as their `_head`)."""
    logit = d.logit(features, training=training)
    if d.projection is None:
        return logit
    if labels is None:
        raise ValueError(f"This discriminator is conditional on {d.num_classes} classes: "
                         "pass `labels`, the class of each input.")
    return logit + d.projection(features, labels)
