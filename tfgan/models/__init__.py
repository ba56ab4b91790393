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


__all__ = ["Generator", "SimpleDiscriminator", "ResNet9Discriminator", "build_discriminator"]
