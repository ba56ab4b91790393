"""Pieces both discriminators share: spectral normalisation, the neutral logit, norm names."""

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
