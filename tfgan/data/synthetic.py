"""Built-in procedural dataset: ten classes of one-second sounds written as WAV files.

The default training run needs data without a download, and it should exercise the
same file pipeline as user data. So instead of feeding arrays straight into the model,
this module synthesises a small labelled corpus and writes it to disk as
``root/<class>/<class>_NNN.wav`` (16-bit PCM, mono, one second), which the regular
loader then reads like any other folder of WAV files.

The sound of each class, and the constraints it is designed under, are in
`tfgan.data.sounds`; the cache folder, its ``.complete`` marker and the atomic
build-then-rename are in `tfgan.data.cache`.

Everything is drawn from a caller-supplied ``numpy.random.Generator``;
`write_builtin_dataset` seeds one per file from ``[seed, class_index, file_index]``, so
the same arguments always give byte-identical files, and changing ``per_class`` does
not change the files that both sizes share.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import soundfile as sf

from tfgan.data import cache, sounds
# Re-exported: the classifier cache and training.quality import it from here.
from tfgan.data.cache import default_cache_dir

BUILTIN_CLASSES: tuple[str, ...] = (
    "sine",
    "square",
    "sawtooth",
    "chirp_up",
    "chirp_down",
    "pluck",
    "fm_bell",
    "kick",
    "snare",
    "hihat",
)

# Bump when the sound design changes, so cached datasets of the old design are not reused
# (the version is part of the default directory name and of the completion marker).
DATASET_VERSION = 1

_MARKER = ".complete"  # written last: its presence and contents mean "complete"

PathLike = Union[str, os.PathLike]


def synthesize(
    cls: str,
    rng: np.random.Generator,
    sample_rate: int = 16000,
    seconds: float = 1.0,
) -> np.ndarray:
    """Synthesises one random example of a built-in class.

    Args:
        cls: One of `BUILTIN_CLASSES`.
        rng: Source of all randomness; the same generator state gives the same sound.
        sample_rate: Sampling rate in Hz (at least 8000 keeps every class intact).
        seconds: Duration in seconds.

    Returns:
        A float32 mono waveform of ``round(seconds * sample_rate)`` samples with a peak
        between 0.5 and 0.85 and a faint background noise floor (-40 to -30 dB).

    Raises:
        ValueError: If ``cls`` is not a built-in class, or the duration or rate is not
            positive.
    """
    if cls not in BUILTIN_CLASSES:
        raise ValueError(
            f"Unknown class; expected one of {BUILTIN_CLASSES}. Received: cls={cls!r}"
        )
    n = int(round(seconds * sample_rate))
    if n <= 0 or sample_rate <= 0:
        raise ValueError(
            "Expected a positive duration and sample rate. "
            f"Received: seconds={seconds}, sample_rate={sample_rate}"
        )
    t = np.arange(n) / sample_rate

    if cls in ("sine", "square", "sawtooth"):
        y = sounds.tone(rng, t, sample_rate, cls)
    elif cls in ("chirp_up", "chirp_down"):
        y = sounds.chirp(rng, t, sample_rate, rising=cls == "chirp_up")
    elif cls == "pluck":
        y = sounds.pluck(rng, n, sample_rate, seconds)
    elif cls == "fm_bell":
        y = sounds.fm_bell(rng, n, sample_rate, seconds)
    elif cls == "kick":
        y = sounds.kick(rng, n, sample_rate, seconds)
    elif cls == "snare":
        y = sounds.snare(rng, n, sample_rate, seconds)
    else:
        y = sounds.hihat(rng, n, sample_rate, seconds)

    y = sounds.edge_fade(y, sample_rate)
    peak = np.max(np.abs(y))
    if peak > 0:
        y = y / peak
    # A faint noise floor, so silences between hits are not digital zero (which would give
    # the model a trivially detectable -inf dB in log spectrograms).
    noise_db = rng.uniform(-40.0, -30.0)
    y = y + 10.0 ** (noise_db / 20.0) * rng.standard_normal(n)
    y *= rng.uniform(0.5, 0.85) / np.max(np.abs(y))
    return y.astype(np.float32)


# --------------------------------------------------------------------------------------
# Writing the dataset
# --------------------------------------------------------------------------------------


def _manifest(per_class: int, sample_rate: int, seed: int) -> dict:
    """Marker contents: what a complete dataset at some root was generated with."""
    return {
        "version": DATASET_VERSION,
        "classes": list(BUILTIN_CLASSES),
        "per_class": per_class,
        "sample_rate": sample_rate,
        "seed": seed,
    }


def _looks_generated(root: Path) -> bool:
    """Whether ``root`` holds nothing but what this module writes (safe to replace).

    Guards against deleting a user's own directory passed as ``root`` by mistake.
    """
    if (root / _MARKER).exists():
        return True
    return all(p.name in BUILTIN_CLASSES or p.name.startswith(".") for p in root.iterdir())


def _refuse_foreign(root: Path) -> None:
    """Raises FileExistsError if ``root`` holds files this module did not write."""
    if root.exists() and not (root.is_dir() and _looks_generated(root)):
        raise FileExistsError(
            f"Refusing to overwrite {root}: it exists and is not a built-in dataset. "
            "Pass another root, or remove it."
        )


def _generate(directory: Path, per_class: int, sample_rate: int, seed: int) -> None:
    """Writes all files into ``directory``, the marker last."""
    width = max(3, len(str(per_class - 1)))
    for class_index, cls in enumerate(BUILTIN_CLASSES):
        class_dir = directory / cls
        class_dir.mkdir()
        for file_index in range(per_class):
            rng = np.random.default_rng([seed, class_index, file_index])
            y = synthesize(cls, rng, sample_rate=sample_rate, seconds=1.0)
            sf.write(
                class_dir / f"{cls}_{file_index:0{width}d}.wav",
                y,
                sample_rate,
                subtype="PCM_16",
                format="WAV",
            )
    (directory / _MARKER).write_text(json.dumps(_manifest(per_class, sample_rate, seed)))


def write_builtin_dataset(
    root: Optional[PathLike] = None,
    per_class: int = 64,
    sample_rate: int = 16000,
    seed: int = 0,
) -> Path:
    """Writes the built-in dataset (once) and returns its root directory.

    Layout: ``root/<class>/<class>_NNN.wav``, 16-bit PCM mono, one second each, plus a
    ``.complete`` marker written last. If ``root`` already holds a complete dataset made
    with the same arguments it is returned untouched. Otherwise the files are generated
    in a temporary sibling directory that is renamed into place, so a crash never
    leaves a half-written dataset under ``root`` and concurrent callers (several
    training workers, say) all end up with one complete copy: the first rename wins
    and the others drop their copy.

    Args:
        root: Target directory. Defaults to
            ``default_cache_dir() / f"builtin-v1-sr{sample_rate}-n{per_class}-s{seed}"``.
        per_class: Number of files per class.
        sample_rate: Sampling rate of the files in Hz.
        seed: Seed; the same arguments give byte-identical files.

    Returns:
        The dataset root.

    Raises:
        ValueError: If ``per_class`` or ``sample_rate`` is not positive.
        FileExistsError: If ``root`` exists, is not a complete dataset, and holds files
            this module did not write (it is never deleted in that case).
    """
    if per_class <= 0 or sample_rate <= 0:
        raise ValueError(
            "Expected positive per_class and sample_rate. "
            f"Received: per_class={per_class}, sample_rate={sample_rate}"
        )
    if root is None:
        root = default_cache_dir() / (
            f"builtin-v{DATASET_VERSION}-sr{sample_rate}-n{per_class}-s{seed}"
        )
    root = Path(root).expanduser()
    return cache.ensure(
        root,
        _MARKER,
        _manifest(per_class, sample_rate, seed),
        lambda tmp: _generate(tmp, per_class, sample_rate, seed),
        guard=_refuse_foreign,
    )
