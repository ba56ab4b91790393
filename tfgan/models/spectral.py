"""Spectral normalisation (Miyato et al., 2018) as an opt-in wrapper."""

from keras import layers


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
