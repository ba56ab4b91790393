"""Prepared shards: python -m tfgan.data.prepare, reading them back, training on them."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfgan.config import preset
from tfgan.data import pipeline, shards
from tfgan.data.prepare import PrepareError, prepare

ROOT = Path(__file__).resolve().parents[2]
CPU = preset("cpu").data  # 8 kHz: the synthesised 16-bit files need no resampling


@pytest.fixture(scope="module")
def folder(tmp_path_factory, helpers):
    root = helpers.write_synth_folder(tmp_path_factory.mktemp("corpus"), 8000,
                                      ("sine", "kick", "snare"), per_class=5)
    bad = helpers.write_bad_files(root)
    return root, bad


@pytest.fixture(scope="module")
def scan(folder):
    """The folder pipeline's view of the same folder (its bad-file warning silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipeline.scan_folder(folder[0], CPU)


@pytest.fixture(scope="module")
def prepared(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "s"
    manifest = prepare(folder[0], out, shards=4, workers=2, stream=io.StringIO())
    return out, manifest


def _records(out: Path) -> dict[str, np.ndarray]:
    """{source: audio} of every record of every shard."""
    files = sorted(str(p) for p in out.glob("shard-*.tfrecord"))
    got = {}
    for record in tf.data.TFRecordDataset(files):
        wave, _ = shards.decode(record)
        source = tf.io.parse_single_example(
            record, {"source": tf.io.FixedLenFeature([], tf.string)})["source"]
        key = source.numpy().decode()
        assert key not in got, f"{key} is in the shards twice"
        got[key] = wave.numpy()
    return got


def test_records_are_the_folder_pipelines_audio_bit_for_bit(folder, scan, prepared):
    root, _ = folder
    out, _ = prepared
    records = _records(out)
    assert sorted(records) == sorted(str(Path(p).relative_to(root)) for p in scan.paths)
    folder_waves = {str(Path(p).relative_to(root)): e["wave"]
                    for p, e in zip(scan.paths, pipeline.decoded_files(scan, CPU)
                                    .as_numpy_iterator())}
    for source, wave in records.items():
        padded = folder_waves[source]
        # 16-bit files at the preset's rate: the stored int16 is exactly the decoded audio.
        np.testing.assert_array_equal(wave, padded[:len(padded) - CPU.clip_samples])
    # And the clips each pipeline slices from them (the middle allowed slice) are equal.
    prep = shards.Prepared.open(out)
    stats = prep.stats()
    a = np.concatenate(list(pipeline.make_dataset(scan, CPU, stats, 64, training=False)
                            .as_numpy_iterator()))
    b = np.concatenate(list(shards.make_dataset(prep, CPU, stats, 64, training=False)
                            .as_numpy_iterator()))
    assert sorted(map(bytes, a)) == sorted(map(bytes, b))


def test_manifest_and_stats_agree_with_the_folder(folder, scan, prepared):
    root, bad = folder
    out, manifest = prepared
    assert manifest["files"] == len(scan.paths) == 15
    assert sum(s["files"] for s in manifest["shards"]) == 15
    # The classes of the good files only: birds/, drums/ and ghosts/ hold only bad ones.
    assert manifest["classes"] == scan.class_names == ["kick", "sine", "snare"]
    prep = shards.Prepared.open(out)
    assert sorted(prep.labels) == sorted(scan.labels)
    assert manifest["samples"] == sum(len(w) for w in _records(out).values())
    assert manifest["hours"] == pytest.approx(manifest["samples"] / 8000 / 3600)
    np.testing.assert_allclose(prep.stats().mean, pipeline.compute_stats(scan, CPU).mean,
                               rtol=1e-5)
    np.testing.assert_allclose(prep.stats().std, pipeline.compute_stats(scan, CPU).std,
                               rtol=1e-5)


def test_bad_files_are_skipped_with_the_folder_pipelines_reasons(folder, scan, prepared):
    root, bad = folder
    _, manifest = prepared
    ours = {os.path.relpath(s["path"], root): s["reason"] for s in manifest["skipped"]}
    theirs = {os.path.relpath(p, root): why for p, why in scan.skipped}
    assert set(ours) == set(bad)
    # The same reasons, but for the truncated WAV, which only the folder pipeline's second
    # (tensorflow-io) decoder reads differently; both refuse it.
    for path in set(ours) - {"birds/truncated.wav"}:
        assert ours[path] == theirs[path], path


def test_each_worker_reads_its_own_shards():
    for n, k in ((7, 3), (4, 4), (16, 2)):
        parts = [shards.assigned_shards(n, k, i) for i in range(k)]
        assert sorted(sum(parts, [])) == list(range(n))  # complete
        assert all(not set(a) & set(b) for i, a in enumerate(parts) for b in parts[i + 1:])
    with pytest.raises(ValueError, match="cannot be divided among 3"):
        shards.assigned_shards(2, 3, 0)


def test_a_killed_preparation_resumes_without_duplicates(folder, tmp_path):
    root, _ = folder
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "tfgan.data.prepare", "--data", str(root), "--out", str(out),
           "--shards", "8", "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("shard-*.json")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {p.stem: p.stat().st_mtime_ns for p in out.glob("shard-*.json")}
    assert done and len(done) < 8 and not (out / "manifest.json").exists()
    # Every shard under a final name with its sidecar is whole.
    for name in done:
        side = json.loads((out / f"{name}.json").read_text())
        n = sum(1 for _ in tf.data.TFRecordDataset(str(out / f"{name}.tfrecord")))
        assert n == side["files"]
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"({len(done)} already done)" in again.stderr
    assert not list(out.glob(".tmp-*"))
    for name, mtime in done.items():  # finished shards were not rewritten
        assert (out / f"{name}.json").stat().st_mtime_ns == mtime
    assert len(_records(out)) == json.loads((out / "manifest.json").read_text())["files"] == 15
    # Other data into the same folder is refused, not mixed.
    with pytest.raises(PrepareError, match="other data or settings"):
        prepare(root, out, shards=3, stream=io.StringIO())  # even though it is finished


def test_training_reads_shards_and_refuses_other_audio_settings(prepared, tmp_path):
    from tfgan.trainer import train

    out, _ = prepared
    c = preset("cpu")
    c = dataclasses.replace(
        c, data=dataclasses.replace(c.data, data_dir=str(out)),
        model=dataclasses.replace(c.model, base_width=4),
        train=dataclasses.replace(c.train, steps=4, batch_size=8, log_every=2, sample_every=4,
                                  checkpoint_every=4, griffin_lim_iters=2, eval_every=2))
    log = io.StringIO()
    train(c, tmp_path / "run", stream=log)
    assert "15 prepared audio files" in log.getvalue()
    assert "In-training evaluation off" in log.getvalue()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["conditional"] is True
    assert config["model"]["classes"] == ["kick", "sine", "snare"]
    from tfgan.rundir import RunDir

    assert [r["step"] for r in RunDir(tmp_path / "run").read_metrics()] == [2, 4]
    s = preset("specgan")
    other = dataclasses.replace(s, data=dataclasses.replace(s.data, data_dir=str(out)),
                                model=dataclasses.replace(s.model, base_width=4))
    with pytest.raises(pipeline.DataError, match="prepared for other audio settings"):
        train(other, tmp_path / "run2", stream=io.StringIO())


def test_only_a_shards_manifest_makes_a_folder_prepared(folder, prepared, tmp_path):
    """An audio folder with a manifest.json of its own (tfgan.data.instruments writes one)
    is still an audio folder; a shards folder with a bad manifest is refused clearly."""
    import shutil

    from tfgan.trainer import open_data

    def data(path):
        return dataclasses.replace(preset("cpu"), data=dataclasses.replace(
            CPU, data_dir=str(path)))

    audio = tmp_path / "audio"
    shutil.copytree(folder[0], audio)
    (audio / "manifest.json").write_text(json.dumps({"version": 1, "per_class": 5}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the folder's bad files
        scan = open_data(data(audio))
    assert not isinstance(scan, shards.Prepared) and len(scan.paths) == 15
    out = tmp_path / "shards"
    shutil.copytree(prepared[0], out)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(pipeline.DataError, match="not a tfgan shards manifest of version 1"):
        open_data(data(out))
    (out / "manifest.json").write_text('{"format": "tfgan-sh')  # cut short
    with pytest.raises(pipeline.DataError, match="Cannot read"):
        open_data(data(out))


def test_a_folder_beyond_the_memory_budget_is_not_cached(scan):
    assert pipeline.memory_plan(scan, CPU, budget=2 ** 30) == (True, CPU.shuffle_buffer)
    size = max(pipeline.decoded_bytes(scan, CPU))
    in_flight = 16 + (os.cpu_count() or 1)  # files held by the interleave and the decoders
    with pytest.warns(RuntimeWarning, match="python -m tfgan.data.prepare") as w:
        cache, files = pipeline.memory_plan(scan, CPU, budget=(in_flight + 3) * size)
    assert not cache and files == 3
    assert "not caching it" in str(w[0].message)
