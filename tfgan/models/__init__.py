"""Keras models: the generator and both discriminators."""

from tfgan.models.generator import Generator
from tfgan.models.resnet9_discriminator import ResNet9Discriminator
from tfgan.models.simple_discriminator import SimpleDiscriminator

DISCRIMINATORS = {"simple": SimpleDiscriminator, "resnet9": ResNet9Discriminator}


def build_discriminator(name: str, **kwargs):
    """The discriminator class named `name` ("simple" or "resnet9"), constructed."""
    if name not in DISCRIMINATORS:
        raise ValueError(f"Unknown discriminator. Expected one of {sorted(DISCRIMINATORS)}. "
                         f"Received: name={name!r}")
    return DISCRIMINATORS[name](**kwargs)


def with_labels(model, x, labels, training: bool):
    """`model(x, training=...)`, or `model(x, labels, training=...)` when `labels` is given.

    The one way G and D are called in training and evaluation: a class goes in only for a
    conditional model, so any unconditional Keras model with call(x, training) still fits.
    """
    if labels is None:
        return model(x, training=training)
    return model(x, labels, training=training)


def balanced_labels(n: int, num_classes: int):
    """`[n]` class indices cycling through every class (None when unconditional)."""
    if not num_classes:
        return None
    import tensorflow as tf

    return tf.range(n, dtype=tf.int32) % num_classes


__all__ = ["Generator", "SimpleDiscriminator", "ResNet9Discriminator", "balanced_labels",
           "build_discriminator", "with_labels"]
