"""training.corpus: the generated corpus and the memory measurement it reports."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import soundfile as sf

from training import corpus


def test_generated_corpus_mixes_lengths_formats_and_rates(tmp_path):
    info = corpus.generate(tmp_path / "c", hours=0.25, seed=1, stream=None)
    files = sorted(p for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert len(files) == info["files"] == info["long_files"] + info["short_files"]
    assert info["long_files"] == 1 and info["short_files"] > 100
    assert {p.parent.name for p in files} <= set(corpus.CLASSES)
    kinds = Counter(p.suffix for p in files)
    assert {".wav", ".flac"} <= set(kinds) and len(kinds) >= 3
    seconds, rates = 0.0, set()
    for p in files:
        i = sf.info(str(p))
        seconds += i.frames / i.samplerate
        rates.add(i.samplerate)
        if p.name.startswith("long_"):
            assert i.duration == corpus.LONG_SECONDS
        else:
            assert 1.0 <= i.duration <= 4.0 + 0.2  # MP3 pads its last frame
    assert len(rates) >= 2
    assert abs(seconds / 3600 - info["hours"]) < 0.01 and info["hours"] >= 0.25
    # A second call keeps what is there.
    assert corpus.generate(tmp_path / "c", hours=0.25, seed=1, stream=None)["written_now"] == 0
    long_file = next(p for p in files if p.name.startswith("long_"))
    wave, _ = sf.read(str(long_file))
    # A recording of events with silence between them, not one continuous sound.
    quiet = np.mean(np.abs(wave) < 1e-4)
    assert 0.05 < quiet < 0.9


def test_peak_memory_of_a_process_tree_is_measured(tmp_path):
    # A child that starts a grandchild holding 300 MB: the tree's peak counts both.
    code = ("import subprocess, sys, time; "
            "g = subprocess.Popen([sys.executable, '-c', "
            "'import time; b = bytearray(300 * 2 ** 20); b[::4096] = b\"x\" * len(b[::4096]); "
            "time.sleep(1.5)']); g.wait()")
    r = corpus.run_measured([sys.executable, "-c", code], tmp_path / "log", timeout=60)
    assert r["exit"] == 0 and not r["killed_by_kernel"]
    assert 0.3 <= r["peak_rss_gb"] < 1.0
