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
DEFAULT_MEMORY_GB = 4.0  # decoded audio the folder pipeline may hold (cache + file shuffle)


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
    check_wave(decoders.decode_python(str(path), cfg.sample_rate, MAX_SECONDS), cfg)
    if info.codec != "python":
        # soundfile forgives a file cut short inside its data; tensorflow-io does not, and
        # would fail mid-training. Decode once with the kernel the pipeline will use.
        try:
            decoders.decode_graph(tf.constant(str(path)), tf.constant(info.codec_index),
                                  tf.constant(info.rate, tf.int64), cfg.sample_rate, MAX_SECONDS)
        except tf.errors.OpError as e:
            raise decoders.DecodeError(f"truncated or corrupt ({e.message[:120]})") from None
    return info


def check_wave(wave: np.ndarray, cfg: DataConfig) -> None:
    """Content checks of a decoded file; raises DecodeError naming the problem."""
    if not np.all(np.isfinite(wave)):
        raise decoders.DecodeError("holds NaN or infinite samples")
    if wave.size < cfg.n_fft + (MIN_FRAMES - 1) * cfg.hop_length:
        raise decoders.DecodeError(
            f"too short ({wave.size / cfg.sample_rate * 1000:.0f} ms at {cfg.sample_rate} Hz)")
    if audio.rms(wave) < SILENCE_RMS:
        raise decoders.DecodeError("silent")


def class_of(path: Path, root: Path) -> str:
    """The class a file belongs to: its top-level sub-folder under `root` ("" for none)."""
    rel = path.relative_to(root).parts
    return rel[0] if len(rel) > 1 else ""


def skipped_warning(skipped: list, total: int, root) -> str:
    shown = "; ".join(f"{os.path.relpath(p, root)}: {why}" for p, why in skipped[:5])
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return f"Skipped {len(skipped)} of {total} audio files under {root}: {shown}{more}"


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
        names.append(class_of(path, root))
    class_names = sorted({n for n in names if n})
    labels = [class_names.index(n) if n else -1 for n in names]
    scan = Scan(root, paths, infos, labels, class_names, skipped)
    if skipped:
        warnings.warn(skipped_warning(skipped, len(skipped) + len(paths), root), RuntimeWarning,
                      stacklevel=2)
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


def stats_crops(element: dict, cfg: DataConfig) -> tf.Tensor:
    """The STATS_CROPS evenly spaced allowed clips `[crops, clip_samples]` of one file."""
    fractions = tf.constant(np.linspace(0.0, 1.0, STATS_CROPS), tf.float32)
    return tf.map_fn(lambda f: clip_of(element, f, cfg), fractions,
                     fn_output_signature=tf.TensorSpec([cfg.clip_samples], tf.float32))


class StatsSums:
    """Running per-bin sums of log-magnitudes, and the statistics they give."""

    def __init__(self, n_bins: int):
        self.total = np.zeros(n_bins, np.float64)
        self.total_sq = np.zeros(n_bins, np.float64)
        self.count = 0
        self.files = 0

    def add(self, spec: np.ndarray) -> None:
        """`spec` `[crops, bins, frames]`: one file's crops."""
        spec = np.asarray(spec, np.float64)
        self.total += spec.sum(axis=(0, 2))
        self.total_sq += (spec ** 2).sum(axis=(0, 2))
        self.count += spec.shape[0] * spec.shape[2]
        self.files += 1

    def merge(self, other: "StatsSums") -> None:
        self.total += other.total
        self.total_sq += other.total_sq
        self.count += other.count
        self.files += other.files

    def to_json(self) -> dict:
        return {"total": self.total.tolist(), "total_sq": self.total_sq.tolist(),
                "count": self.count, "files": self.files}

    @classmethod
    def from_json(cls, d: dict) -> "StatsSums":
        s = cls(len(d["total"]))
        s.total, s.total_sq = np.asarray(d["total"]), np.asarray(d["total_sq"])
        s.count, s.files = int(d["count"]), int(d["files"])
        return s

    def stats(self, cfg: DataConfig) -> audio.Stats:
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.total_sq / self.count - mean ** 2, 0.0))
        return audio.Stats(mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32),
                           cfg, num_examples=self.files * STATS_CROPS)


def compute_stats(scan: Scan, cfg: DataConfig) -> audio.Stats:
    """Per-bin mean and std of log-magnitudes over STATS_CROPS evenly spaced allowed clips
    of each file (the same clip STATS_CROPS times for an onset-aligned one-shot). Prepared
    shards bring their own, measured the same way when they were prepared."""
    from tfgan.data import shards

    if isinstance(scan, shards.Prepared):
        return scan.stats()
    ds = decoded_files(scan, cfg).map(lambda e: stats_crops(e, cfg),
                                      num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda c: audio.log_magnitude(c, cfg))  # [crops, bins, frames]
    sums = StatsSums(cfg.n_bins)
    for spec in ds.as_numpy_iterator():
        sums.add(spec)
    return sums.stats(cfg)


def memory_budget() -> int:
    """Bytes the pipeline may hold decoded audio in: $TFGAN_DATA_MEMORY_GB, default 4."""
    try:
        gb = float(os.environ.get("TFGAN_DATA_MEMORY_GB", DEFAULT_MEMORY_GB))
    except ValueError:
        raise DataError("TFGAN_DATA_MEMORY_GB must be a number of gigabytes. Received: "
                        f"{os.environ['TFGAN_DATA_MEMORY_GB']!r}") from None
    return int(gb * 2 ** 30)


def decoded_bytes(scan: Scan, cfg: DataConfig) -> list[int]:
    """Per file, the bytes its decoded, resampled float32 waveform takes (up to MAX_SECONDS)."""
    return [4 * (int(min(i.frames / i.rate, MAX_SECONDS) * cfg.sample_rate) + cfg.clip_samples)
            for i in scan.infos]


def memory_plan(scan: Scan, cfg: DataConfig, budget: Optional[int] = None,
                announce: bool = True) -> tuple[bool, int]:
    """Whether to cache the decoded folder, and how many files the file shuffle may hold,
    so that decoded audio stays within `budget` bytes (`memory_budget()`).

    A folder whose decoded audio exceeds the budget is not cached (each pass decodes it
    again) and its file shuffle is cut to what fits; the message says so and points at
    `python -m tfgan.data.prepare`, whose shards read in bounded memory.
    """
    budget = memory_budget() if budget is None else budget
    sizes = decoded_bytes(scan, cfg)
    total, largest = sum(sizes), max(max(sizes, default=1), 1)
    cache = cfg.cache and total <= budget // 2  # the other half: the shuffle of files
    # Besides the shuffle: the files the slicing interleave holds and those being decoded.
    in_flight = (16 + (os.cpu_count() or 1)) * largest
    room = budget - (total if cache else 0) - in_flight
    file_buffer = max(1, min(cfg.shuffle_buffer, room // largest))
    if cfg.cache and not cache and announce:
        warnings.warn(
            f"{scan.root} decodes to {total / 2 ** 30:.1f} GB, more than half the data memory "
            f"budget of {budget / 2 ** 30:.1f} GB (TFGAN_DATA_MEMORY_GB): not caching it (each "
            f"pass decodes the files again) and shuffling {file_buffer} files at a time. For "
            "data this size, prepare it once into shards, which read in bounded memory: "
            f"python -m tfgan.data.prepare --data {scan.root} --out SHARDS, then train with "
            "--data SHARDS.", RuntimeWarning, stacklevel=2)
    return cache, file_buffer


def make_dataset(scan: Scan, cfg: DataConfig, stats: audio.Stats, batch_size: int, *,
                 training: bool = True, seed: int = 0,
                 with_labels: bool = False) -> tf.data.Dataset:
    """The spectrogram pipeline.

    decode (tensorflow-io in graph, soundfile fallback) -> mono -> resample (soxr) ->
    allowed clip starts (`cfg.slice`) -> cache (when the decoded folder fits the memory
    budget, `memory_plan`) -> [training: repeat, shuffle files,
    `weight` random slices per file interleaved over 16 files, shuffle slices] -> (not
    training: the middle allowed slice) -> batch -> STFT -> log -> per-bin normalisation
    -> prefetch.

    Args:
      scan: the usable files (`scan_folder`), or prepared shards (`tfgan.data.shards`).
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
    from tfgan.data import shards

    if isinstance(scan, shards.Prepared):
        return shards.make_dataset(scan, cfg, stats, batch_size, training=training, seed=seed,
                                   with_labels=with_labels)
    ds = decoded_files(scan, cfg)
    cache, file_buffer = memory_plan(scan, cfg)
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.repeat()
    return spectrogram_batches(ds, len(scan.paths), file_buffer, cfg, stats, batch_size,
                               training=training, seed=seed, with_labels=with_labels)


def spectrogram_batches(ds: tf.data.Dataset, n_files: int, file_buffer: int, cfg: DataConfig,
                        stats: audio.Stats, batch_size: int, *, training: bool, seed: int,
                        with_labels: bool) -> tf.data.Dataset:
    """`decoded_files`-style elements (endless when training) -> batches of spectrograms.

    Training: a shuffle of `file_buffer` files, `weight` random slices per file
    interleaved over 16 files, a shuffle of slices. Otherwise the middle allowed slice.
    """
    if training:
        n_files = max(n_files, 1)
        ds = ds.shuffle(max(1, min(file_buffer, n_files)), seed=seed)
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
