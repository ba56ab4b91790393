"""Slicing: which clips of a file are training examples (DESIGN.md, "Slicing").

What a training example is decides what the GAN learns. A uniformly random crop of a
one-shot file (a hit, a note, a word: mostly decay and silence) usually misses the
sound; on 400 instrument notes 62% of such crops were silent, and the generator learned
to make silence. So each decoded file gets a list of allowed clip starts, computed once
in the graph when the file is decoded:

* ``start``: the onset (the first sample within ONSET_DB of the file's peak, less a
  hop of lead-in), so the clip opens with the attack and is padded at the end with
  silence when the file is short. WaveGAN's author gives the same advice for one-shots
  (chrisdonahue/wavegan issues #40, #67).
* ``random``: every hop-aligned start (the earlier behaviour).
* ``energy``: the hop-aligned starts whose clip's mean power is within ENERGY_DB of the
  file's loudest clip, so long recordings give random slices where there is sound and
  their silent stretches are never chosen.
* ``auto``: ``start`` for one-shots, files up to AUTO_START_CLIPS clip lengths or
  AUTO_START_SECONDS, whichever is longer; ``energy`` beyond. The seconds matter at short
  clips: with the cpu preset's 0.52 s clips, two clips would make a 1.5 s drum hit or a
  3 s piano note a "long recording" and slice it mid-decay. One-shot libraries are
  mostly shorter than 4 s (NSynth's notes are exactly 4 s).

A file also gets a weight, how many examples it contributes per pass: 1 for ``start``,
its length in clips otherwise, so long recordings count in proportion to their length.
Training picks a uniformly random allowed start; evaluation takes the middle one
(`EVAL_FRACTION`); statistics take evenly spaced ones.
"""

from __future__ import annotations

import tensorflow as tf

from tfgan.config import DataConfig

ONSET_DB = -40.0  # an onset is the first sample within 40 dB of the file's peak
ENERGY_DB = -15.0  # "loud part": clips within 15 dB of the loudest clip's mean power
AUTO_START_CLIPS = 2.0  # files up to this many clips long are one-shots ...
AUTO_START_SECONDS = 4.0  # ... and so are files up to this long
EVAL_FRACTION = 0.5


def one_shot_limit(cfg: DataConfig) -> float:
    """Longest file, in samples at the configured rate, that `auto` treats as a one-shot."""
    return max(AUTO_START_CLIPS * cfg.clip_samples, AUTO_START_SECONDS * cfg.sample_rate)


def resolve(policy: str, length: tf.Tensor, cfg: DataConfig) -> tf.Tensor:
    """The policy a file of `length` samples gets, as a scalar string tensor."""
    if policy != "auto":
        return tf.constant(policy)
    one_shot = tf.cast(length, tf.float32) <= one_shot_limit(cfg)
    return tf.where(one_shot, tf.constant("start"), tf.constant("energy"))


def onset(wave: tf.Tensor, cfg: DataConfig) -> tf.Tensor:
    """Start of the clip that opens at the sound's onset: int32 scalar (0 for silence)."""
    mag = tf.abs(wave)
    threshold = tf.reduce_max(mag) * 10.0 ** (ONSET_DB / 20.0)
    first = tf.argmax(tf.cast(mag >= threshold, tf.int32), output_type=tf.int32)
    # A hop of lead-in: the first STFT frames see the attack arrive, as in the real clips.
    return tf.maximum(first - cfg.hop_length, 0)


def _grid(length: tf.Tensor, cfg: DataConfig) -> tf.Tensor:
    """Hop-aligned starts of every whole clip of a `length`-sample file (at least [0])."""
    room = tf.maximum(length - cfg.clip_samples, 0)
    return tf.range(0, room + 1, cfg.hop_length, dtype=tf.int32)


def loud_starts(wave: tf.Tensor, cfg: DataConfig) -> tf.Tensor:
    """Hop-aligned starts whose clip's mean power is within ENERGY_DB of the loudest clip."""
    length = tf.shape(wave)[0]
    starts = _grid(length, cfg)
    # Clip powers from one cumulative sum (float64: a ten-minute file sums millions of
    # squares, and float32 would lose the quiet clips' power to rounding).
    energy = tf.concat([[0.0], tf.cumsum(tf.square(tf.cast(wave, tf.float64)))], axis=0)
    ends = tf.minimum(starts + cfg.clip_samples, length)
    power = (tf.gather(energy, ends) - tf.gather(energy, starts)) / float(cfg.clip_samples)
    keep = power >= tf.reduce_max(power) * 10.0 ** (ENERGY_DB / 10.0)
    return tf.boolean_mask(starts, keep)


def allowed_starts(wave: tf.Tensor, cfg: DataConfig, policy: str = None):
    """Allowed clip starts and the file's weight for a decoded mono `wave` `[samples]`.

    Args:
      wave: float32 `[samples]`, not padded.
      cfg: audio parameters (clip length, hop, slicing policy).
      policy: overrides `cfg.slice`.

    Returns:
      int32 `[k]` starts (k >= 1) and an int64 scalar weight (examples per pass).
    """
    policy = policy or cfg.slice
    length = tf.shape(wave)[0]
    chosen = resolve(policy, length, cfg)
    clips = tf.cast(tf.round(tf.cast(length, tf.float32) / cfg.clip_samples), tf.int64)
    by_length = tf.logical_and(cfg.weight_by_length, tf.not_equal(chosen, "start"))
    weight = tf.where(by_length, tf.maximum(clips, 1), tf.constant(1, tf.int64))
    starts = tf.case([
        (tf.equal(chosen, "start"), lambda: onset(wave, cfg)[None]),
        (tf.equal(chosen, "energy"), lambda: loud_starts(wave, cfg)),
    ], default=lambda: _grid(length, cfg))
    return starts, weight


def pad_for_slicing(wave: tf.Tensor, cfg: DataConfig) -> tf.Tensor:
    """`wave` padded with a clip of silence, so that a clip from any allowed start fits."""
    return tf.pad(wave, [[0, cfg.clip_samples]])


def slice_at(wave: tf.Tensor, starts: tf.Tensor, fraction: tf.Tensor,
             cfg: DataConfig) -> tf.Tensor:
    """The clip `[clip_samples]` at allowed start number floor(fraction * k) of `starts`.

    `wave` must be padded (`pad_for_slicing`); `fraction` in [0, 1].
    """
    k = tf.shape(starts)[0]
    index = tf.minimum(tf.cast(tf.cast(k, tf.float32) * fraction, tf.int32), k - 1)
    start = starts[index]
    return tf.ensure_shape(wave[start: start + cfg.clip_samples], [cfg.clip_samples])
