"""Tests for the one-shot instrument dataset rendered with fluidsynth (tfgan.data.instruments)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from tfgan.data import instruments
from tfgan.data.instruments import CLASSES, INSTALL_HINT, build_instrument_dataset

if shutil.which("fluidsynth") is None:
    pytest.skip(f"fluidsynth is not installed; run: {INSTALL_HINT}", allow_module_level=True)

SR = 16000
PER_CLASS = 2  # 20 renders, about two seconds per build
TONAL = [c.name for c in CLASSES if c.channel != 9]


def _wavs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.wav"))}


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_instrument_dataset(tmp_path_factory.mktemp("inst") / "ds", per_class=PER_CLASS)


@pytest.fixture(scope="module")
def manifest(built) -> dict:
    return json.loads((built / instruments.MANIFEST).read_text())


@pytest.fixture(scope="module")
def audio(built, manifest) -> dict[str, np.ndarray]:
    """float64 waveforms in [-1, 1] by manifest path."""
    out = {}
    for f in manifest["files"]:
        y, sr = sf.read(built / f["path"])
        assert sr == SR
        out[f["path"]] = y
    return out


def test_layout_format_and_manifest(built, manifest):
    assert manifest["classes"] == [c.name for c in CLASSES] and len(CLASSES) == 10
    assert {p.name for p in built.iterdir() if p.is_dir()} == set(manifest["classes"])
    for cls in manifest["classes"]:
        assert len(list((built / cls).glob("*.wav"))) == PER_CLASS
    assert len(manifest["files"]) == PER_CLASS * len(CLASSES)
    assert manifest["seed"] == 0 and manifest["soundfont"].endswith(".sf2")
    assert set(manifest["packages"]) == {"fluidsynth", "fluid-soundfont-gm"}
    for f in manifest["files"]:
        info = sf.info(built / f["path"])
        assert (info.format, info.subtype, info.channels, info.samplerate) == (
            "WAV", "PCM_16", 1, SR)
        assert 1.5 <= info.duration <= 3.0
        assert abs(info.duration * 1000 - f["total_ms"]) < 1
        assert 70 <= f["velocity"] <= 120
    # Nothing but the dataset is left behind: no scratch MIDI, no temporary siblings.
    assert not list(built.rglob("*.mid")) and not list(built.rglob("*.raw"))
    assert [p.name for p in built.parent.iterdir()] == ["ds"]


def test_peak_levels_vary_within_range(manifest, audio):
    peaks = []
    for f in manifest["files"]:
        peak_db = 20 * np.log10(np.max(np.abs(audio[f["path"]])))
        assert peak_db == pytest.approx(f["peak_dbfs"], abs=0.05)
        assert -12.05 <= peak_db <= -0.95
        peaks.append(peak_db)
    assert np.ptp(peaks) > 3.0  # loudness varies, not one fixed normalisation level


def test_onset_at_start_then_decay_to_near_silence(manifest, audio):
    for f in manifest["files"]:
        y = audio[f["path"]]
        peak = np.max(np.abs(y))
        onset_s = np.argmax(np.abs(y) > 0.01 * peak) / SR
        assert onset_s < 0.015, f["path"]
        k = len(y) // 5
        # Much quieter: the measured worst case is about -55 dB; 30 dB leaves margin.
        assert _rms(y[-k:]) < 10 ** (-30 / 20) * _rms(y[:k]), f["path"]


@pytest.mark.parametrize("cls", TONAL)
def test_tonal_pitch_matches_rendered_note(cls, manifest, audio):
    files = [f for f in manifest["files"] if f["class"] == cls]
    assert files
    for f in files:
        y = audio[f["path"]]
        # Skip the attack transient; measure the ringing note.
        seg = y[int(0.05 * SR):int(0.30 * SR)]
        f0 = float(np.median(librosa.yin(seg, fmin=50, fmax=2000, sr=SR, frame_length=2048)))
        cents = 1200 * np.log2(f0 / instruments.midi_to_hz(f["note"]))
        assert abs(cents) < 100, (f["path"], f["note"], f0)


def test_second_call_returns_at_once(built):
    before = {p: p.stat().st_mtime_ns for p in built.rglob("*")}
    t0 = time.perf_counter()
    assert build_instrument_dataset(built, per_class=PER_CLASS) == built
    assert time.perf_counter() - t0 < 1.0
    assert {p: p.stat().st_mtime_ns for p in built.rglob("*")} == before


def test_existing_build_is_reused_without_fluidsynth(built, tmp_path, monkeypatch):
    # A build's manifest holds more than its parameters (files, packages): still complete,
    # so reusing a cached build needs neither fluidsynth nor the soundfont.
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    monkeypatch.setenv("PATH", str(tmp_path))  # no fluidsynth on it
    assert build_instrument_dataset(copy, per_class=PER_CLASS) == copy
    assert _wavs(copy) == _wavs(built)


def test_manifest_of_another_version_is_rebuilt(built, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    manifest = json.loads((copy / instruments.MANIFEST).read_text())
    (copy / instruments.MANIFEST).write_text(json.dumps({**manifest, "version": 0}))
    (copy / "piano" / "stale.wav").write_bytes(b"from version 0")
    assert build_instrument_dataset(copy, per_class=PER_CLASS) == copy
    assert json.loads((copy / instruments.MANIFEST).read_text())["version"] == 1
    assert _wavs(copy) == _wavs(built)  # the stale file went with the old build
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]


def test_deterministic_for_a_seed_and_rebuilt_for_another(built, tmp_path):
    twin = build_instrument_dataset(tmp_path / "twin", per_class=PER_CLASS, seed=0)
    assert _wavs(twin) == _wavs(built)
    assert (twin / instruments.MANIFEST).read_bytes() == (built / instruments.MANIFEST).read_bytes()

    # Other arguments into the same folder: the old build is replaced as a whole.
    other = build_instrument_dataset(tmp_path / "twin", per_class=PER_CLASS, seed=1)
    a, b = _wavs(built), _wavs(other)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a)
    assert json.loads((other / instruments.MANIFEST).read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["twin"]


def test_missing_soundfont_names_the_debian_packages(tmp_path):
    with pytest.raises(RuntimeError, match="apt-get install fluidsynth fluid-soundfont-gm"):
        build_instrument_dataset(tmp_path / "ds", per_class=1,
                                 soundfont=tmp_path / "missing.sf2")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temporary sibling


def test_missing_fluidsynth_names_the_debian_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no fluidsynth on it
    with pytest.raises(RuntimeError, match="apt-get install fluidsynth fluid-soundfont-gm"):
        build_instrument_dataset(tmp_path / "ds", per_class=1)
    assert not (tmp_path / "ds").exists()


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="Refusing to overwrite"):
        build_instrument_dataset(tmp_path / "mine", per_class=1)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_bad_arguments_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="Received: per_class=0"):
        build_instrument_dataset(tmp_path / "ds", per_class=0)


def test_cli(built, tmp_path, capsys):
    assert instruments.main(["--out", str(built), "--per-class", str(PER_CLASS)]) == 0
    out = capsys.readouterr().out
    assert str(built) in out and f"{PER_CLASS * len(CLASSES)} files" in out and "piano" in out

    code = instruments.main(["--out", str(tmp_path / "x"), "--soundfont", str(tmp_path / "no.sf2")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and INSTALL_HINT in err


def test_one_note_midi_is_a_minimal_smf():
    data = instruments.one_note_midi(9, 8, 36, 100, note_ms=200, total_ms=2000)
    assert data[:4] == b"MThd" and data[14:18] == b"MTrk"
    assert int.from_bytes(data[18:22], "big") == len(data) - 22
    assert bytes([0x99, 36, 100]) in data and bytes([0xC9, 8]) in data
    assert data.endswith(b"\xff\x2f\x00") and len(data) < 50
