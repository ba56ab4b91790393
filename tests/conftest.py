"""Shared fixtures for the core tests: small folders of real audio files on disk.

Every good file holds one tone at a distinct frequency (plus a slow amplitude wobble and a
little noise, so random crops differ), so a spectrogram can be traced back to its file by
the frequency bin its energy lands in. Frequencies are multiples of 500 Hz, i.e. exact
bins (f * n_fft / sr = f / 62.5) of the ``cpu`` preset (8 kHz, n_fft 128).
"""

from __future__ import annotations

import os
import shutil
import types
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

# (relative path, format, subtype, rate, channels, seconds, tone Hz, class label)
# Labels: sorted sub-folders with good files are ["birds", "drums"]; -1 = no class.
GOOD_FILES = [
    ("birds/a pcm16 22050.wav", "WAV", "PCM_16", 22050, 1, 0.8, 500.0, 0),
    ("birds/b_stereo_44100.flac", "FLAC", "PCM_16", 44100, 2, 0.7, 1000.0, 0),
    ("birds/c_48000.ogg", "OGG", "VORBIS", 48000, 1, 0.6, 1500.0, 0),
    ("drums/d_stereo_16000.mp3", "MP3", "MPEG_LAYER_III", 16000, 2, 0.9, 2000.0, 1),
    ("drums/Grüße café 01.wav", "WAV", "FLOAT", 8000, 1, 0.6, 2500.0, 1),
    ("drums/e_pcm24_stereo_22050.wav", "WAV", "PCM_24", 22050, 2, 0.5, 3000.0, 1),
    ("loose.wav", "WAV", "PCM_16", 8000, 1, 0.6, 3500.0, -1),
]
CLASS_NAMES = ["birds", "drums"]


def tone(freq: float, seconds: float, rate: int, channels: int = 1, amp: float = 0.4,
         noise: float = 0.0, wobble: float = 0.0, seed: int = 0) -> np.ndarray:
    """float32 `[samples, channels]`; channel k is scaled by 1 / (k + 1)."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    x = amp * np.sin(2 * np.pi * freq * t)
    if wobble:
        x *= 1.0 - wobble * (0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t))
    if noise:
        x += noise * np.random.default_rng(seed).standard_normal(n)
    return np.stack([x / (k + 1) for k in range(channels)], axis=1).astype(np.float32)


def write_audio(path: Path, audio: np.ndarray, rate: int, fmt: str, subtype: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, format=fmt, subtype=subtype)
    return path


def write_good_files(root: Path) -> None:
    for i, (rel, fmt, subtype, rate, ch, sec, freq, _) in enumerate(GOOD_FILES):
        audio = tone(freq, sec, rate, ch, amp=0.4, noise=0.01, wobble=0.5, seed=i)
        write_audio(root / rel, audio, rate, fmt, subtype)


def write_bad_files(root: Path) -> dict[str, str]:
    """Writes the bad files; returns {relative path: what is wrong with it}."""
    (root / "birds").mkdir(parents=True, exist_ok=True)
    (root / "birds" / "empty.wav").write_bytes(b"")
    valid = root / "birds" / "_valid.tmp"
    write_audio(valid, tone(440, 0.6, 8000), 8000, "WAV", "PCM_16")
    (root / "birds" / "truncated.wav").write_bytes(valid.read_bytes()[:22])  # half a header
    valid.unlink()
    (root / "drums").mkdir(parents=True, exist_ok=True)
    (root / "drums" / "notes.mp3").write_text("These are my notes, not an MP3.\n" * 40)
    write_audio(root / "ghosts" / "silent.wav", np.zeros([4800, 1], np.float32), 8000,
                "WAV", "PCM_16")
    nan = tone(440, 0.6, 8000)
    nan[1000:1010] = np.nan
    write_audio(root / "birds" / "nan.wav", nan, 8000, "WAV", "FLOAT")
    write_audio(root / "drums" / "blip.wav", tone(440, 0.01, 8000), 8000, "WAV", "PCM_16")
    return {
        "birds/empty.wav": "empty",
        "birds/truncated.wav": "truncated",
        "drums/notes.mp3": "text",
        "ghosts/silent.wav": "silent",
        "birds/nan.wav": "nan",
        "drums/blip.wav": "short",
    }


def newest_step(run: Path) -> int:
    """The step of the newest checkpoint listed in the run's checkpoint index (-1: none):
    the list a resume reads."""
    import tensorflow as tf

    state = tf.train.get_checkpoint_state(str(run / "checkpoints"))
    return int(state.model_checkpoint_path.rsplit("-", 1)[1]) if state else -1


@pytest.fixture(scope="session")
def helpers():
    """The helpers above, for test modules (importing `conftest` by name is ambiguous:
    tests/serving has its own)."""
    return types.SimpleNamespace(tone=tone, write_audio=write_audio, GOOD_FILES=GOOD_FILES,
                                 CLASS_NAMES=CLASS_NAMES, write_good_files=write_good_files,
                                 write_bad_files=write_bad_files,
                                 write_synth_folder=write_synth_folder,
                                 newest_step=newest_step)


@pytest.fixture(scope="session")
def cpu_data():
    from tfgan.config import preset

    return preset("cpu").data


@pytest.fixture(scope="session")
def good_folder(tmp_path_factory) -> Path:
    """Only good files: two classes in sub-folders and one file at the root."""
    root = tmp_path_factory.mktemp("good")
    write_good_files(root)
    return root


@pytest.fixture(scope="session")
def mixed_folder(tmp_path_factory, good_folder) -> tuple[Path, dict[str, str]]:
    """The good files plus every kind of bad one; returns (root, {bad rel path: kind})."""
    root = tmp_path_factory.mktemp("mixed")
    shutil.copytree(good_folder, root, dirs_exist_ok=True)
    bad = write_bad_files(root)
    return root, bad


# ----------------------------------------------------------- synthesised class folders


def write_synth_folder(root: Path, rate: int, classes=("sine", "kick"), per_class: int = 4):
    """`root/<class>/<class>_<i>.wav`: real synthesised sounds of the built-in classes, 16-bit
    (names unique across classes, so the files can be copied into one flat folder)."""
    from tfgan.data.synthetic import synthesize

    for ci, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            wave = synthesize(cls, np.random.default_rng([ci, i]), rate)
            sf.write(root / cls / f"{cls}_{i}.wav", wave, rate, subtype="PCM_16")
    return root


@pytest.fixture(scope="session")
def synth_folder(tmp_path_factory) -> Path:
    """Two classes (sine, kick) of four one-second 8 kHz files each."""
    return write_synth_folder(tmp_path_factory.mktemp("synth"), 8000)


# ----------------------------------------------------------- a real trained run, exported


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A real unconditional run: 6 steps of a tiny GAN on synthesised sounds (EMA off, so G
    is exported)."""
    import dataclasses
    import io

    from tfgan.config import preset
    from tfgan.trainer import train

    data = write_synth_folder(tmp_path_factory.mktemp("data"), 16000)
    c = preset("cpu")
    c = dataclasses.replace(
        c, data=dataclasses.replace(c.data, data_dir=str(data)),
        model=dataclasses.replace(c.model, base_width=4, conditional=False),
        train=dataclasses.replace(c.train, steps=6, batch_size=8, log_every=3, sample_every=6,
                                  checkpoint_every=6, griffin_lim_iters=4, ema_decay=0.0))
    run = tmp_path_factory.mktemp("run") / "r"
    train(c, run, stream=io.StringIO())
    return run


@pytest.fixture(scope="session")
def conditional_run(tmp_path_factory):
    """A real class-conditional run: 6 steps on three classes (EMA off)."""
    import dataclasses
    import io

    from tfgan.config import preset
    from tfgan.trainer import train

    data = write_synth_folder(tmp_path_factory.mktemp("cdata"), 16000,
                              ("sine", "kick", "snare"))
    c = preset("cpu")
    c = dataclasses.replace(
        c, data=dataclasses.replace(c.data, data_dir=str(data)),
        model=dataclasses.replace(c.model, base_width=4, conditional=True),
        train=dataclasses.replace(c.train, steps=6, batch_size=8, log_every=3, sample_every=6,
                                  checkpoint_every=6, griffin_lim_iters=4, ema_decay=0.0,
                                  eval_every=0))
    run = tmp_path_factory.mktemp("crun") / "r"
    train(c, run, stream=io.StringIO())
    return run


@pytest.fixture(scope="session")
def conditional_exported(conditional_run, tmp_path_factory):
    from export.saved_model import export

    base = tmp_path_factory.mktemp("cmodels") / "generator"
    return base, export(conditional_run, base, griffin_lim_iters=8)


@pytest.fixture(scope="session")
def exported(trained_run, tmp_path_factory):
    from export.saved_model import export

    base = tmp_path_factory.mktemp("models") / "generator"
    path = export(trained_run, base, griffin_lim_iters=8)
    return base, path
