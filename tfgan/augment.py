"""Differentiable augmentations for spectrograms, applied to D's real and fake inputs alike.

DiffAugment (Zhao et al., 2020) shows that augmenting both what D sees of real data and of
G's output, with operations gradients flow through, keeps D from memorising a small dataset.
The operations here respect what a spectrogram is: a circular time shift, a band of frames
set to silence (time mask) and a band of bins set to silence (frequency mask), as in
SpecAugment (Park et al., 2019). "Silence" is -1, the bottom of the normalised range.

Inputs are `[batch, bins, frames, 1]` in [-1, 1]; each operation is applied to each example
independently with probability `p` (1 for plain DiffAugment, tuned by ADA).
"""

from __future__ import annotations

import tensorflow as tf

MAX_SHIFT = 1 / 8  # of the frames
MASK_FRACTION = 1 / 8  # widest mask, as a fraction of the axis


def _chosen(batch, p):
    return tf.cast(tf.random.uniform([batch]) < p, tf.float32)[:, None, None, None]


def time_shift(x, p):
    """Rolls each example along time by up to MAX_SHIFT of its frames, either way."""
    b, w = tf.shape(x)[0], tf.shape(x)[2]
    limit = tf.maximum(tf.cast(tf.cast(w, tf.float32) * MAX_SHIFT, tf.int32), 1)
    shift = tf.random.uniform([b], -limit, limit + 1, dtype=tf.int32)
    shift = shift * tf.cast(tf.random.uniform([b]) < p, tf.int32)
    idx = tf.math.floormod(tf.range(w)[None, :] - shift[:, None], w)  # [b, frames]
    return tf.gather(x, idx, axis=2, batch_dims=1)


def _band_mask(x, p, axis):
    b, n = tf.shape(x)[0], tf.shape(x)[axis]
    width = tf.random.uniform([b], 1, tf.maximum(tf.cast(tf.cast(n, tf.float32) * MASK_FRACTION,
                                                         tf.int32), 1) + 1, dtype=tf.int32)
    start = tf.random.uniform([b], 0, n, dtype=tf.int32)
    pos = tf.range(n)[None, :]
    band = tf.cast((pos >= start[:, None]) & (pos < (start + width)[:, None]), tf.float32)
    band = band[:, :, None, None] if axis == 1 else band[:, None, :, None]
    band = band * _chosen(b, p)
    return x * (1.0 - band) - band  # masked cells become -1 (silence)


def time_mask(x, p):
    """Sets a random band of frames (up to MASK_FRACTION of them) to silence."""
    return _band_mask(x, p, axis=2)


def freq_mask(x, p):
    """Sets a random band of frequency bins (up to MASK_FRACTION of them) to silence."""
    return _band_mask(x, p, axis=1)


AUGMENTATIONS = {"shift": time_shift, "tmask": time_mask, "fmask": freq_mask}


def resolve(names) -> tuple:
    """Validates augmentation names (a sequence or a comma-separated string)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = tuple(names or ())
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"Unknown augmentation. Expected some of {sorted(AUGMENTATIONS)}. "
                         f"Received: {unknown}")
    return names


def apply(x, names, p):
    """Applies each named augmentation to each example of `x` with probability `p`."""
    p = tf.cast(p, tf.float32)
    for name in names:
        x = AUGMENTATIONS[name](x, p)
    return x
