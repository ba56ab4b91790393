"""Real one-shot instrument recordings, rendered from Debian's FluidR3 General MIDI soundfont.

The built-in procedural dataset (`tfgan.data.synthetic`) was designed alongside the model,
so it cannot show how the GAN fares on sounds it was not tuned on. FluidR3_GM.sf2 (Debian
package ``fluid-soundfont-gm``) holds sampled recordings of real instruments; this module
plays one note of one instrument per file through the ``fluidsynth`` command line and
writes the result the way one-shot sample packs are laid out::

    out_dir/<class>/<class>_NNN.wav     16-bit PCM, mono, 1.5-3 s
    out_dir/manifest.json               written last; marks the folder complete

Each file opens on the note's onset (the first sample above -60 dB re peak is 1 ms in; the
slowest attacks, nylon guitar, reach 1% of the peak by ~8 ms), then holds its decay and
trailing near-silence, so most of a file is quiet, as in real sample packs. The silence is
digital zero, as in a trimmed and faded sample; no noise floor is added. Per file the
pitch, velocity, note length, file length, drum kit and peak level (-12 to -1 dBFS) are
drawn from ``numpy.random.default_rng([seed, class_index, file_index])``: the same
arguments give byte-identical files, and the manifest records every draw (the test checks
every tonal file's pitch against the note it lists).

Needs ``apt-get install fluidsynth fluid-soundfont-gm``; without them `build_instrument_dataset`
raises a `RuntimeError` saying so.

CLI: ``python -m tfgan.data.instruments --out DIR [--per-class N] [--seed S] [--sample-rate HZ]``
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import soundfile as sf
from scipy import signal

from tfgan.data import cache

PathLike = Union[str, os.PathLike]

DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
DEBIAN_PACKAGES = ("fluidsynth", "fluid-soundfont-gm")
INSTALL_HINT = "apt-get install " + " ".join(DEBIAN_PACKAGES)
MANIFEST = "manifest.json"
# Bump when the rendering changes, so a folder built the old way is rebuilt, not reused.
DATASET_VERSION = 1

_DRUM_CHANNEL = 9  # General MIDI channel 10, counted from 0
# fluidsynth interpolates samples without low-pass filtering, so rendering straight at
# 16 kHz would fold cymbal energy above 8 kHz back down as aliasing. Render at 48 kHz and
# let a proper polyphase filter bring it down.
_RENDER_RATE = 48000
_GAIN = 0.5  # float output cannot clip, and every file is renormalised afterwards
_PRE_ROLL_S = 0.001  # kept before the first audible sample so the attack's rise survives
_FADE_OUT_S = 0.02  # a tail cut mid-ring would click; real sample packs fade too


@dataclasses.dataclass(frozen=True)
class InstrumentClass:
    """One class of the dataset: which sounds it draws from and how long they are.

    Attributes:
        name: Folder name.
        channel: MIDI channel (0-based); 9 plays the General MIDI drum kits.
        programs: Candidate programs: a GM instrument, or on channel 9 the drum kits.
        notes: Candidate MIDI notes: a pitch range, or on channel 9 the kit pieces.
        note_s: Range of the note's held length in seconds (before note-off).
        total_s: Range of the file length in seconds.
    """

    name: str
    channel: int
    programs: tuple[int, ...]
    notes: tuple[int, ...]
    note_s: tuple[float, float]
    total_s: tuple[float, float]


# Acoustic kits of FluidR3 (Standard, Room, Power, Jazz): different recordings of the same
# kit pieces, for variety within a drum class. Electronic, TR-808 and Brush are left out:
# they are not the instrument the class is named after.
_KITS = (0, 8, 16, 32)

CLASSES: tuple[InstrumentClass, ...] = (
    InstrumentClass("kick", _DRUM_CHANNEL, _KITS, (35, 36), (0.1, 0.3), (1.5, 2.0)),
    InstrumentClass("snare", _DRUM_CHANNEL, _KITS, (38, 40), (0.1, 0.3), (1.5, 2.0)),
    # Closed and pedal hi-hat: both the short closed "chick", not the open wash.
    InstrumentClass("closed_hihat", _DRUM_CHANNEL, _KITS, (42, 44), (0.1, 0.3), (1.5, 2.0)),
    # Low floor tom up to high tom.
    InstrumentClass("tom", _DRUM_CHANNEL, _KITS, (41, 43, 45, 47, 48, 50), (0.1, 0.3),
                    (1.5, 2.5)),
    # Tonal ranges stay inside each instrument's real compass, where FluidR3 has samples.
    InstrumentClass("piano", 0, (0,), tuple(range(36, 85)), (0.2, 0.8), (2.5, 3.0)),  # C2-C6
    InstrumentClass("nylon_guitar", 0, (24,), tuple(range(40, 77)), (0.3, 0.8),
                    (2.0, 3.0)),  # E2-E5
    InstrumentClass("marimba", 0, (12,), tuple(range(48, 85)), (0.1, 0.4), (1.5, 2.5)),  # C3-C6
    InstrumentClass("pizzicato_strings", 0, (45,), tuple(range(43, 80)), (0.1, 0.3),
                    (1.5, 2.5)),  # G2-G5
    InstrumentClass("trumpet", 0, (56,), tuple(range(54, 83)), (0.2, 0.8), (1.5, 2.5)),  # F#3-A#5
    InstrumentClass("flute", 0, (73,), tuple(range(60, 94)), (0.2, 0.8), (1.5, 2.5)),  # C4-A6
)


def midi_to_hz(note: float) -> float:
    """Equal-tempered frequency of a MIDI note number, in Hz (A4 = note 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


# --------------------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------------------


def _vlq(n: int) -> bytes:
    """MIDI variable-length quantity: 7 bits per byte, high bit set on all but the last."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def one_note_midi(channel: int, program: int, note: int, velocity: int,
                  note_ms: int, total_ms: int) -> bytes:
    """A format-0 Standard MIDI File playing a single note from time 0.

    One tick is one millisecond (1000 ticks per quarter at 1 s per quarter), so lengths
    go in unconverted.

    Args:
        channel: MIDI channel, 0-15.
        program: Program number, 0-127 (a drum kit on channel 9).
        note: MIDI note, 0-127.
        velocity: Note-on velocity, 1-127.
        note_ms: Time from note-on to note-off, in ms.
        total_ms: Time from the start to the end of the track, in ms (>= ``note_ms``).

    Returns:
        The file's bytes (about 40).
    """
    track = (
        _vlq(0) + b"\xff\x51\x03" + (1_000_000).to_bytes(3, "big")  # tempo: 1 s per quarter
        + _vlq(0) + bytes([0xC0 | channel, program])
        + _vlq(0) + bytes([0x90 | channel, note, velocity])
        + _vlq(note_ms) + bytes([0x80 | channel, note, 64])
        + _vlq(total_ms - note_ms) + b"\xff\x2f\x00"  # end of track
    )
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 1000)
    return header + b"MTrk" + struct.pack(">I", len(track)) + track


def _draw(cls: InstrumentClass, rng: np.random.Generator) -> dict:
    """Draws one file's parameters; integers in ms so the MIDI file holds them exactly."""
    return {
        "program": int(rng.choice(cls.programs)),
        "note": int(rng.choice(cls.notes)),
        "velocity": int(rng.integers(70, 121)),
        "note_ms": int(round(1000 * rng.uniform(*cls.note_s))),
        "total_ms": int(round(1000 * rng.uniform(*cls.total_s))),
        "peak_dbfs": round(float(rng.uniform(-12.0, -1.0)), 2),
    }


def _render(job: dict, soundfont: str, sample_rate: int, scratch: Path, out: Path) -> None:
    """Renders one note with fluidsynth and writes it as a trimmed, normalised WAV file.

    Args:
        job: Parameters from `_draw` plus ``channel``.
        soundfont: Path of the .sf2 file.
        sample_rate: Output rate in Hz.
        scratch: Folder for the MIDI and raw render (deleted by the caller).
        out: Destination WAV path.

    Raises:
        RuntimeError: If fluidsynth fails or renders silence.
    """
    render_rate = max(_RENDER_RATE, sample_rate)
    mid, raw = scratch / (out.stem + ".mid"), scratch / (out.stem + ".raw")
    # The track runs a little past the file length so the crop below never falls short.
    mid.write_bytes(one_note_midi(job["channel"], job["program"], job["note"],
                                  job["velocity"], job["note_ms"], job["total_ms"] + 100))
    # Raw float32 output: no 16-bit dither, and no WAV header with a timestamped PEAK
    # chunk, both of which would make renders differ byte for byte between runs. Reverb
    # and chorus are off because they are fluidsynth's effects, not the recording.
    # Dynamic sample loading reads only the samples this note needs out of the 148 MB
    # soundfont: half the time and a quarter of the memory per call.
    cmd = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", str(_GAIN),
           "-r", str(render_rate), "-o", "synth.dynamic-sample-loading=1",
           "-T", "raw", "-O", "float", "-E", "little", "-F", str(raw), soundfont, str(mid)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"fluidsynth could not render {out.name}: {e}") from None
    stereo = np.fromfile(raw, dtype="<f4") if raw.exists() else np.zeros(0, np.float32)
    if proc.returncode != 0 or not np.any(stereo):
        detail = (proc.stderr or proc.stdout).strip()[-400:]
        raise RuntimeError(f"fluidsynth rendered no sound for {out.name} "
                           f"(exit {proc.returncode}): {detail or 'no message'}")

    y = stereo.astype(np.float64).reshape(-1, 2).mean(axis=1)
    if render_rate != sample_rate:
        g = math.gcd(sample_rate, render_rate)
        y = signal.resample_poly(y, sample_rate // g, render_rate // g)
    peak = np.max(np.abs(y))
    # fluidsynth starts notes on its 64-sample block grid, a few milliseconds late; the
    # file should open on the onset, as a trimmed one-shot does.
    start = max(0, int(np.argmax(np.abs(y) > 1e-3 * peak)) - int(_PRE_ROLL_S * sample_rate))
    n = int(round(job["total_ms"] * sample_rate / 1000))
    y = y[start:start + n]
    y = np.pad(y, (0, n - len(y)))
    fade = int(_FADE_OUT_S * sample_rate)
    y[-fade:] *= np.linspace(1.0, 0.0, fade)
    y *= 10.0 ** (job["peak_dbfs"] / 20.0) / np.max(np.abs(y))
    pcm = np.round(y * 32767.0).astype(np.int16)
    sf.write(out, pcm, sample_rate, subtype="PCM_16", format="WAV")


# --------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------


def _require_tools(soundfont: Path) -> None:
    """Raises a RuntimeError naming the Debian packages when fluidsynth or the sf2 is missing."""
    if shutil.which("fluidsynth") is None:
        raise RuntimeError(f"fluidsynth is not installed (not found on PATH). "
                           f"Install Debian's packages: {INSTALL_HINT}")
    if not soundfont.is_file():
        raise RuntimeError(f"Soundfont {soundfont} not found. "
                           f"Install Debian's packages: {INSTALL_HINT}")


def _package_versions() -> dict:
    """Installed Debian versions of the packages, for the manifest ({} off Debian)."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\n",
                              *DEBIAN_PACKAGES], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(line.split("\t", 1) for line in out.stdout.splitlines() if "\t" in line)


def _params(per_class: int, seed: int, sample_rate: int, soundfont: Path) -> dict:
    """What a folder was built with; a folder whose manifest agrees is reused as it is.

    Returned in its JSON form (lists, not tuples) so it compares equal to the copy read
    back from a manifest.
    """
    return json.loads(json.dumps({
        "version": DATASET_VERSION, "per_class": per_class, "seed": seed,
        "sample_rate": sample_rate, "soundfont": str(soundfont),
        "class_specs": [dataclasses.asdict(c) for c in CLASSES]}))


def _build(tmp: Path, params: dict, workers: int) -> None:
    """Renders every file into ``tmp``, then writes the manifest (last, as the marker)."""
    per_class, seed, sample_rate = params["per_class"], params["seed"], params["sample_rate"]
    width = max(3, len(str(per_class - 1)))
    scratch = tmp / ".scratch"
    scratch.mkdir()
    jobs, files = [], []
    for ci, cls in enumerate(CLASSES):
        (tmp / cls.name).mkdir()
        for fi in range(per_class):
            job = {"channel": cls.channel, **_draw(cls, np.random.default_rng([seed, ci, fi]))}
            rel = f"{cls.name}/{cls.name}_{fi:0{width}d}.wav"
            jobs.append((job, tmp / rel))
            files.append({"path": rel, "class": cls.name,
                          "bank": 128 if cls.channel == _DRUM_CHANNEL else 0, **job})
    # Threads, not processes: the work happens in the fluidsynth child processes (and in
    # numpy/scipy, which release the GIL), and forking a parent that may hold TensorFlow's
    # threads is unsafe.
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_render, job, params["soundfont"], sample_rate, scratch, out)
                   for job, out in jobs]
        for f in futures:
            f.result()  # re-raises the first failure
    shutil.rmtree(scratch)
    manifest = {**params, "classes": [c.name for c in CLASSES],
                "packages": _package_versions(), "files": files}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def build_instrument_dataset(
    out_dir: PathLike,
    per_class: int = 40,
    seed: int = 0,
    sample_rate: int = 16000,
    *,
    soundfont: PathLike = DEFAULT_SOUNDFONT,
    workers: int = 2,
) -> Path:
    """Renders the one-shot instrument dataset into ``out_dir`` (once) and returns it.

    Layout: ``out_dir/<class>/<class>_NNN.wav`` for the classes in `CLASSES`; each file
    is mono 16-bit PCM at ``sample_rate``, 1.5-3 s long, onset within ~10 ms of the start,
    peak between -12 and -1 dBFS. ``out_dir/manifest.json`` lists the build parameters,
    Debian package versions and, per file, the program, note, velocity, note length (ms),
    file length (ms) and peak (dBFS).

    If ``out_dir`` already holds a complete build with the same arguments it is returned
    at once. Otherwise the files are rendered into a temporary sibling folder that is
    renamed into place when complete (`tfgan.data.cache.build_atomically`), so an
    interrupted build never leaves a partial dataset under ``out_dir``.

    Args:
        out_dir: Target folder.
        per_class: Files per class.
        seed: Seed; the same arguments give byte-identical files.
        sample_rate: Output rate in Hz, 8000-96000.
        soundfont: The General MIDI .sf2 to play (Debian's FluidR3_GM by default).
        workers: fluidsynth processes run at once.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        ValueError: If ``per_class``, ``sample_rate`` or ``workers`` is out of range.
        RuntimeError: If fluidsynth or the soundfont is missing (the message names the
            Debian packages to install), or fluidsynth fails.
        FileExistsError: If ``out_dir`` exists and is neither empty nor a build of this
            module (it is never deleted then).
    """
    if per_class < 1 or not 8000 <= sample_rate <= 96000 or workers < 1:
        raise ValueError("Expected per_class >= 1, 8000 <= sample_rate <= 96000 and "
                         f"workers >= 1. Received: per_class={per_class}, "
                         f"sample_rate={sample_rate}, workers={workers}")
    root = Path(out_dir).expanduser().absolute()
    soundfont = Path(soundfont).expanduser().absolute()
    params = _params(per_class, seed, sample_rate, soundfont)

    def guard(root: Path) -> None:
        _require_tools(soundfont)
        # An empty folder or a build with other arguments may be replaced (only once the
        # new build is complete); anything else is the user's.
        if root.exists() and any(root.iterdir()) and cache.read_marker(root, MANIFEST) is None:
            raise FileExistsError(f"Refusing to overwrite {root}: it is not empty and holds "
                                  f"no {MANIFEST} from a previous build. Pass another --out.")

    return cache.ensure(root, MANIFEST, params, lambda tmp: _build(tmp, params, workers),
                        guard=guard)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point; returns the exit status (2 when fluidsynth or the sf2 is missing)."""
    p = argparse.ArgumentParser(prog="python -m tfgan.data.instruments",
                                description="Render one-shot recordings of real instruments "
                                            "from Debian's FluidR3 GM soundfont.")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--per-class", type=int, default=40, help="files per class (default 40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-rate", type=int, default=16000, help="Hz (default 16000)")
    p.add_argument("--soundfont", default=str(DEFAULT_SOUNDFONT), help="General MIDI .sf2")
    args = p.parse_args(argv)
    try:
        root = build_instrument_dataset(args.out, args.per_class, args.seed, args.sample_rate,
                                        soundfont=args.soundfont)
    except (RuntimeError, ValueError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    manifest = cache.read_marker(root, MANIFEST)
    print(f"{root}: {len(manifest['files'])} files, {args.per_class} in each of "
          f"{len(manifest['classes'])} classes: {', '.join(manifest['classes'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
