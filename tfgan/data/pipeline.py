"""From a folder of audio files to batches of normalised spectrograms.

Two steps. `scan_folder` runs once per run in Python: it finds the audio files, reads each
header, decodes each file once to reject the bad ones (unreadable, empty, truncated, NaN,
silent, too short) and returns the good ones with their class labels. `compute_stats`
measures per-bin statistics over the good files through the same graph decoder the
training pipeline uses. `make_dataset` is the `tf.data` pipeline itself.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from tfgan import audio
from tfgan.config import DataConfig
from tfgan.data import decoders, slicing

log = logging.getLogger(__name__)

SILENCE_RMS = 1e-4  # about -80 dBFS: nothing a microphone records is this quiet
MIN_FRAMES = 4  # a clip shorter than this many STFT frames holds no usable content
MAX_SECONDS = 600.0  # only the first ten minutes of a long recording are used
STATS_CROPS = 4  # evenly spaced allowed clips per file measured for the statistics


class DataError(ValueError):
    """The data folder cannot be used (missing, empty, or no usable file in it)."""


@dataclasses.dataclass
class Scan:
    """The usable files of a data folder.

    Attributes:
      root: the folder.
      paths: good files, sorted.
      infos: their headers.
      labels: per file, the index of its class in `class_names`, or -1 when the file lies
        directly in `root`.
      class_names: sorted names of the sub-folders that hold good files.
      skipped: `(path, reason)` for every rejected file.
    """

    root: Path
    paths: list[str]
    infos: list[decoders.AudioInfo]
    labels: list[int]
    class_names: list[str]
    skipped: list[tuple[str, str]]

    def summary(self) -> str:
        return (f"{len(self.paths)} usable audio files in {len(self.class_names) or 'no'} "
                f"classes under {self.root}, {len(self.skipped)} skipped")


def list_audio_files(root) -> list[Path]:
    """Audio files (AUDIO_EXTENSIONS, any case) below `root`, recursively, sorted."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"Data folder does not exist: {root}")
    if not root.is_dir():
        raise DataError(f"Data path is not a folder: {root}")
    files = sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in decoders.AUDIO_EXTENSIONS and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise DataError(
            f"No audio files ({', '.join(decoders.AUDIO_EXTENSIONS)}) found under {root}")
    return files


def _check(path: Path, cfg: DataConfig) -> decoders.AudioInfo:
    """Header and content checks; raises DecodeError naming the problem."""
    info = decoders.probe(str(path))
    wave = decoders.decode_python(str(path), cfg.sample_rate, MAX_SECONDS)
    if not np.all(np.isfinite(wave)):
        raise decoders.DecodeError("holds NaN or infinite samples")
    if wave.size < cfg.n_fft + (MIN_FRAMES - 1) * cfg.hop_length:
        raise decoders.DecodeError(
            f"too short ({wave.size / cfg.sample_rate * 1000:.0f} ms at {cfg.sample_rate} Hz)")
    if audio.rms(wave) < SILENCE_RMS:
        raise decoders.DecodeError("silent")
    if info.codec != "python":
        # soundfile forgives a file cut short inside its data; tensorflow-io does not, and
        # would fail mid-training. Decode once with the kernel the pipeline will use.
        try:
            decoders.decode_graph(tf.constant(str(path)), tf.constant(info.codec_index),
                                  tf.constant(info.rate, tf.int64), cfg.sample_rate, MAX_SECONDS)
        except tf.errors.OpError as e:
            raise decoders.DecodeError(f"truncated or corrupt ({e.message[:120]})") from None
    return info


def scan_folder(root, cfg: DataConfig) -> Scan:
    """Finds and checks the audio files below `root` (see module docstring).

    Raises:
      DataError: the folder is missing, holds no audio file, or no usable one.
    """
    root = Path(root)
    paths, infos, labels, skipped, names = [], [], [], [], []
    for path in list_audio_files(root):
        try:
            info = _check(path, cfg)
        except decoders.DecodeError as e:
            skipped.append((str(path), str(e)))
            continue
        paths.append(str(path))
        infos.append(info)
        rel = path.relative_to(root).parts
        names.append(rel[0] if len(rel) > 1 else "")
    class_names = sorted({n for n in names if n})
    labels = [class_names.index(n) if n else -1 for n in names]
    scan = Scan(root, paths, infos, labels, class_names, skipped)
    if skipped:
        shown = "; ".join(f"{os.path.relpath(p, root)}: {why}" for p, why in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        warnings.warn(f"Skipped {len(skipped)} of {len(skipped) + len(paths)} audio files under "
                      f"{root}: {shown}{more}", RuntimeWarning, stacklevel=2)
    if not paths:
        raise DataError(f"No usable audio file under {root}: all {len(skipped)} were skipped.")
    return scan


def decoded_files(scan: Scan, cfg: DataConfig) -> tf.data.Dataset:
    """One element per file: its decoded audio and where clips may start.

    Elements are dicts: "wave" float32 `[samples + clip_samples]` mono at the configured
    rate, padded at the end with a clip of silence; "starts" int32 `[k]` allowed clip
    starts; "weight" int64, examples the file contributes per pass; "label" int32 (-1
    without a class). See `tfgan.data.slicing` for the policy.
    """
    codecs = [i.codec_index for i in scan.infos]
    rates = [i.rate for i in scan.infos]
    ds = tf.data.Dataset.from_tensor_slices(
        (scan.paths, tf.constant(codecs, tf.int32), tf.constant(rates, tf.int64),
         tf.constant(scan.labels, tf.int32)))

    def decode(path, codec, rate, label):
        wave = decoders.decode_graph(path, codec, rate, cfg.sample_rate, MAX_SECONDS)
        starts, weight = slicing.allowed_starts(wave, cfg)
        return {"wave": slicing.pad_for_slicing(wave, cfg), "starts": starts,
                "weight": weight, "label": label}

    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def clip_of(element: dict, fraction, cfg: DataConfig) -> tf.Tensor:
    """The clip `[clip_samples]` of a `decoded_files` element at `fraction` in [0, 1] of
    its allowed starts (training: uniform random; evaluation: `slicing.EVAL_FRACTION`)."""
    return slicing.slice_at(element["wave"], element["starts"], fraction, cfg)


def compute_stats(scan: Scan, cfg: DataConfig) -> audio.Stats:
    """Per-bin mean and std of log-magnitudes over STATS_CROPS evenly spaced allowed clips
    of each file (the same clip STATS_CROPS times for an onset-aligned one-shot)."""
    fractions = tf.constant(np.linspace(0.0, 1.0, STATS_CROPS), tf.float32)

    def crops(element):
        return tf.map_fn(lambda f: clip_of(element, f, cfg), fractions,
                         fn_output_signature=tf.TensorSpec([cfg.clip_samples], tf.float32))

    ds = decoded_files(scan, cfg).map(crops, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda c: audio.log_magnitude(c, cfg))  # [crops, bins, frames]
    total = np.zeros(cfg.n_bins, np.float64)
    total_sq = np.zeros(cfg.n_bins, np.float64)
    count = 0
    for spec in ds.as_numpy_iterator():
        spec = spec.astype(np.float64)
        total += spec.sum(axis=(0, 2))
        total_sq += (spec ** 2).sum(axis=(0, 2))
        count += spec.shape[0] * spec.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))
    return audio.Stats(mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32), cfg,
                       num_examples=len(scan.paths) * STATS_CROPS)


def make_dataset(scan: Scan, cfg: DataConfig, stats: audio.Stats, batch_size: int, *,
                 training: bool = True, seed: int = 0,
                 with_labels: bool = False) -> tf.data.Dataset:
    """The spectrogram pipeline.

    decode (tensorflow-io in graph, soundfile fallback) -> mono -> resample (soxr) ->
    allowed clip starts (`cfg.slice`) -> cache -> [training: repeat, shuffle files,
    `weight` random slices per file interleaved over 16 files, shuffle slices] -> (not
    training: the middle allowed slice) -> batch -> STFT -> log -> per-bin normalisation
    -> prefetch.

    Args:
      scan: the usable files (`scan_folder`).
      cfg: audio parameters and slicing policy.
      stats: normalisation statistics (`compute_stats`, or loaded from a run).
      batch_size: examples per batch; training batches drop the remainder.
      training: random slices, shuffling, endless repetition.
      seed: seeds shuffling and slices.
      with_labels: yield `(spectrogram, label)` pairs (label -1 where there is no class).

    Returns:
      A dataset of float32 `[batch, n_bins, n_frames, 1]` spectrograms in [-1, 1]
      (or pairs with int32 `[batch]` labels).
    """
    ds = decoded_files(scan, cfg)
    if cfg.cache:
        ds = ds.cache()
    if training:
        n_files = max(len(scan.paths), 1)
        ds = ds.repeat().shuffle(min(cfg.shuffle_buffer, n_files), seed=seed)
        seeds = tf.data.Dataset.random(seed=seed)

        def clips(e, file_seed):
            # `weight` random slices of one file; a long recording gives one per clip it
            # holds, so its share of the examples follows its length.
            def one(i):
                f = tf.random.stateless_uniform([], seed=tf.stack([file_seed, i]))
                return clip_of(e, f, cfg), e["label"]

            return tf.data.Dataset.range(e["weight"]).map(one)

        # Several files at once, a slice from each in turn, then a shuffle of slices, so
        # that a long file's slices spread over many batches instead of filling a few.
        ds = tf.data.Dataset.zip((ds, seeds)).interleave(
            clips, cycle_length=min(16, n_files), block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.shuffle(cfg.shuffle_buffer, seed=seed + 1)
    else:
        ds = ds.map(lambda e: (clip_of(e, slicing.EVAL_FRACTION, cfg), e["label"]),
                    num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=training)

    def to_spec(waves, labels):
        spec = audio.normalise(audio.log_magnitude(waves, cfg), stats)[..., None]
        return (spec, labels) if with_labels else spec

    ds = ds.map(to_spec, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def builtin_or(data_dir: Optional[str]) -> Path:
    """`data_dir`, or the built-in procedural dataset (written on first use)."""
    if data_dir:
        return Path(data_dir)
    from tfgan.data.synthetic import write_builtin_dataset

    return write_builtin_dataset()
