"""Prepared shards: a large corpus decoded once into TFRecord files, read in bounded memory.

`python -m tfgan.data.prepare` writes a folder SHARDS:

    SHARDS/manifest.json                   what was prepared: counts, classes, hours,
                                           shards, skipped files, the audio config
    SHARDS/stats.json                      normalisation statistics (as a run's)
    SHARDS/shard-00000-of-00016.tfrecord   one tf.train.Example per source file
    SHARDS/shard-00000-of-00016.json       the shard's files, counts and partial statistics

Each record holds one file's audio, decoded, mixed to mono and resampled to the config's
rate, as int16 PCM (`audio`, bytes), its class (`label`, -1 without one) and its path
relative to the data folder (`source`). Whole files, not clips: the slicing policy then
runs when the shards are read, exactly as on a folder (`tfgan.data.slicing`), so every
pass draws new slices and a long recording contributes in proportion to its length;
stored clips would either freeze one slice per file or store each sample many times
over. int16 halves float32's size and is what most recordings hold; a 16-bit source at
the configured rate round-trips bit-exactly.

Reading (`make_dataset`): the shard files in a seeded order each pass, a few read at once
(interleaved), a small shuffle of files, then the folder pipeline's own slicing, slice
shuffle and spectrograms. Memory is bounded by the buffers (at most FILE_BUFFER files
and `shuffle_buffer` clips), not by the corpus. Under several input pipelines (workers),
pipeline i reads shards i, i + n, i + 2n, ... (`assigned_shards`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from tfgan import audio
from tfgan.config import DataConfig

MANIFEST = "manifest.json"
FORMAT = "tfgan-shards"
VERSION = 1
INT16_SCALE = 32768.0  # int16 PCM <-> float in [-1, 1), as soundfile reads PCM_16
FILE_BUFFER = 16  # decoded files held for shuffling (each up to ten minutes of audio)
SHARDS_READ_AT_ONCE = 4
# The audio settings shards are prepared for; training must use the same.
AUDIO_FIELDS = ("sample_rate", "n_fft", "hop_length", "n_frames", "n_bins", "scale", "slice")


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}"


def is_prepared(path) -> bool:
    """Whether `path` holds prepared shards rather than audio files: its manifest.json says
    so, or it cannot be read but shard files lie beside it (then `Prepared.open` says
    what is wrong). A folder of audio with a manifest of its own (that of
    `tfgan.data.instruments`, say) is audio."""
    if path is None or not (Path(path) / MANIFEST).is_file():
        return False
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return any(Path(path).glob("shard-*.tfrecord"))
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def assigned_shards(n_shards: int, num_pipelines: int, pipeline_id: int) -> list[int]:
    """Shard indices input pipeline `pipeline_id` of `num_pipelines` reads: every n-th,
    so the pipelines' shards are disjoint and together are all of them."""
    if not 0 <= pipeline_id < num_pipelines:
        raise ValueError(f"pipeline_id must be in [0, {num_pipelines}). Received: "
                         f"{pipeline_id}")
    if n_shards < num_pipelines:
        raise ValueError(f"{n_shards} shards cannot be divided among {num_pipelines} input "
                         "pipelines (workers); prepare with --shards at least that many")
    return list(range(pipeline_id, n_shards, num_pipelines))


@dataclasses.dataclass
class Prepared:
    """A prepared shards folder, standing in for a folder scan where training needs one."""

    root: Path
    manifest: dict

    @classmethod
    def open(cls, root) -> "Prepared":
        from tfgan.data.pipeline import DataError

        root = Path(root)
        try:
            manifest = json.loads((root / MANIFEST).read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"Cannot read {root / MANIFEST}: {e}") from None
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise DataError(f"{root / MANIFEST} is not a tfgan shards manifest of version "
                            f"{VERSION}; prepare the data again with python -m "
                            "tfgan.data.prepare")
        missing = [s["name"] for s in manifest["shards"]
                   if not (root / (s["name"] + ".tfrecord")).is_file()]
        if missing:
            raise DataError(f"{root} lacks {len(missing)} of its shards ({missing[0]}.tfrecord "
                            "...); copy them back or prepare again")
        return cls(root, manifest)

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def labels(self) -> list[int]:
        """Per record, its class (-1 without): what `with_classes` checks."""
        return [c for s in self.manifest["shards"] for c in s["labels"]]

    @property
    def paths(self) -> list[str]:
        return [self.shard_path(i) for i in range(len(self.manifest["shards"]))]

    def shard_path(self, index: int) -> str:
        return str(self.root / (self.manifest["shards"][index]["name"] + ".tfrecord"))

    def summary(self) -> str:
        m = self.manifest
        return (f"{m['files']} prepared audio files ({m['hours']:.1f} h) in "
                f"{len(m['classes']) or 'no'} classes, {len(m['shards'])} shards under "
                f"{self.root}")

    def stats(self) -> audio.Stats:
        return audio.Stats.load(self.root / "stats.json")

    def check_config(self, cfg: DataConfig) -> None:
        """Refuses a training config whose audio settings differ from the shards'."""
        from tfgan.data.pipeline import DataError

        prepared = self.manifest["config"]
        diffs = [f"{k} {prepared[k]} (shards) vs {getattr(cfg, k)} (run)"
                 for k in AUDIO_FIELDS if prepared[k] != getattr(cfg, k)]
        if diffs:
            raise DataError(f"{self.root} was prepared for other audio settings: "
                            f"{'; '.join(diffs)}. Train with the preset it was prepared for "
                            f"({self.manifest.get('preset')}) or prepare again.")


def encode(wave: np.ndarray, label: int, source: str) -> bytes:
    """One record: float audio in [-1, 1] stored as int16 PCM."""
    # float32 is exact here (the scale is a power of two) and half float64's memory, which
    # matters for ten-minute files at 48 kHz.
    pcm = np.clip(np.round(np.asarray(wave, np.float32) * INT16_SCALE), -32768, 32767)
    feature = {
        "audio": tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[pcm.astype("<i2").tobytes()])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "source": tf.train.Feature(bytes_list=tf.train.BytesList(value=[source.encode()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


_FEATURES = {"audio": tf.io.FixedLenFeature([], tf.string),
             "label": tf.io.FixedLenFeature([], tf.int64),
             "source": tf.io.FixedLenFeature([], tf.string)}


def decode(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A record's float32 audio `[samples]` and int32 label."""
    ex = tf.io.parse_single_example(record, _FEATURES)
    pcm = tf.io.decode_raw(ex["audio"], tf.int16, little_endian=True)
    return tf.cast(pcm, tf.float32) / INT16_SCALE, tf.cast(ex["label"], tf.int32)


def elements(files: list[str], cfg: DataConfig, *, training: bool, seed: int,
             label_map: list[int]) -> tf.data.Dataset:
    """`pipeline.decoded_files`-style elements from shard files (endless when training).

    `label_map`: the manifest's map from a record's stored class index to its class.
    """
    from tfgan.data import slicing

    classes = tf.constant(list(label_map) or [-1], tf.int32)
    ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        ds = ds.shuffle(len(files), seed=seed).repeat()  # a new shard order every pass
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(SHARDS_READ_AT_ONCE,
                                                                 len(files)),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def element(record):
        wave, label = decode(record)
        label = tf.where(label >= 0, tf.gather(classes, tf.maximum(label, 0)), -1)
        starts, weight = slicing.allowed_starts(wave, cfg)
        return {"wave": slicing.pad_for_slicing(wave, cfg), "starts": starts,
                "weight": weight, "label": label}

    return ds.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def make_dataset(prepared: Prepared, cfg: DataConfig, stats: audio.Stats, batch_size: int,
                 *, training: bool = True, seed: int = 0, with_labels: bool = False,
                 pipeline: Optional[tuple[int, int]] = None) -> tf.data.Dataset:
    """Batches of spectrograms from prepared shards (see module docstring).

    Args:
      pipeline: (number of input pipelines, this one's id): read only the assigned shards.
    """
    from tfgan.data.pipeline import spectrogram_batches

    prepared.check_config(cfg)
    indices = (assigned_shards(len(prepared.manifest["shards"]), *pipeline) if pipeline
               else range(len(prepared.manifest["shards"])))
    files = [prepared.shard_path(i) for i in indices]
    n_files = sum(prepared.manifest["shards"][i]["files"] for i in indices)
    ds = elements(files, cfg, training=training, seed=seed,
                  label_map=prepared.manifest["label_map"])
    return spectrogram_batches(ds, n_files, FILE_BUFFER, cfg, stats, batch_size,
                               training=training, seed=seed, with_labels=with_labels)
