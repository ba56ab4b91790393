"""python -m training.corpus: the data path at the scale of a real corpus, measured.

    python -m training.corpus [--hours 50] [--work DIR] [--out docs/corpus] [--steps 200]

1. Generates a corpus of HOURS of audio in WORK/corpus (kept between sittings; files
   already there are not written again): long recordings (10 minutes of events and
   silence) and one-shots (1-4 s), in ten class folders, as 16-bit WAV at 22.05 and
   16 kHz, FLAC at 44.1 and 48 kHz, Ogg Vorbis and MP3 at 16 kHz.
2. Prepares it into shards (`python -m tfgan.data.prepare`, all cores): wall time, hours
   of audio per minute, peak resident memory of the whole process tree.
3. Trains on the shards for STEPS steps (`python -m training.run --data SHARDS`): peak
   resident memory, steps/s.
4. Times the shard pipeline alone (examples/s) against what the train step consumed.
5. Trains on the corpus folder directly for a few steps (the in-memory path): its
   memory plan must refuse the cache and bound the file shuffle; peak memory and whether
   it finished (it must never be killed by the kernel).

Writes OUT/corpus.json and OUT/corpus.md. Each step is a child process, measured by
polling the resident memory of it and its descendants.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

if __name__ == "__main__":  # before TensorFlow is imported: see tfgan/console.py
    from tfgan.console import quiet_native_logs

    quiet_native_logs()

CLASSES = ("chirp_down", "chirp_up", "fm_bell", "hihat", "kick", "pluck", "sawtooth",
           "sine", "snare", "square")
LONG_SECONDS = 600.0
LONG_SHARE = 0.6  # of the hours, in long recordings; the rest in one-shots
# (extension, soundfile format, subtype, rate, share of the files of their kind)
LONG_FORMATS = [("wav", "WAV", "PCM_16", 22050, 0.8), ("flac", "FLAC", "PCM_16", 44100, 0.2)]
SHORT_FORMATS = [("wav", "WAV", "PCM_16", 16000, 0.85), ("flac", "FLAC", "PCM_16", 48000, 0.05),
                 ("ogg", "OGG", "VORBIS", 16000, 0.05), ("mp3", "MP3", "MPEG_LAYER_III", 16000,
                                                         0.05)]


def _pick(formats, rng):
    shares = np.array([f[4] for f in formats])
    return formats[rng.choice(len(formats), p=shares / shares.sum())]


class Events:
    """A pool of synthesised one-second events per rate, reused with random gain and
    length: generating each second of 50 hours afresh would take longer than the test."""

    def __init__(self, per_class: int = 12):
        self.per_class = per_class
        self.pools: dict[int, list] = {}

    def get(self, rate: int, rng, cls: int | None = None) -> tuple[int, np.ndarray]:
        """A random event (of class `cls` when given) and its class."""
        from tfgan.data.synthetic import synthesize

        if rate not in self.pools:
            self.pools[rate] = [[synthesize(name, np.random.default_rng([c, i, rate]), rate)
                                 for i in range(self.per_class)]
                                for c, name in enumerate(CLASSES)]
        c = int(rng.integers(len(CLASSES))) if cls is None else cls
        wave = self.pools[rate][c][rng.integers(self.per_class)]
        return c, wave * rng.uniform(0.3, 1.0)


def generate(root: Path, hours: float, seed: int = 0, stream=sys.stdout) -> dict:
    """Writes the corpus (see module docstring); returns what it holds."""
    import soundfile as sf

    events = Events()
    long_count = int(round(hours * LONG_SHARE * 3600 / LONG_SECONDS))
    written, seconds, k = 0, 0.0, 0
    t0 = time.perf_counter()
    for i in range(long_count):
        rng = np.random.default_rng([seed, 0, i])  # one generator per file: reruns agree
        ext, fmt, subtype, rate, _ = _pick(LONG_FORMATS, rng)
        c = int(rng.integers(len(CLASSES)))
        path = root / CLASSES[c] / f"long_{i:05d}.{ext}"
        seconds += LONG_SECONDS
        if path.exists():
            continue
        wave = np.zeros(int(LONG_SECONDS * rate), np.float32)
        pos = 0
        while pos < len(wave) - rate:
            _, ev = events.get(rate, rng, c)  # a recording of one class's events
            n = min(len(ev), len(wave) - pos)
            wave[pos:pos + n] += ev[:n]
            pos += n + int(rng.uniform(0.2, 3.0) * rate)  # silence between events
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(sf, path, np.clip(wave, -1, 1), rate, fmt, subtype)
        written += 1
    while seconds < hours * 3600:
        rng = np.random.default_rng([seed, 1, k])
        ext, fmt, subtype, rate, _ = _pick(SHORT_FORMATS, rng)
        c, ev = events.get(rate, rng)
        length = rng.uniform(1.0, 4.0)
        path = root / CLASSES[c] / f"short_{k:06d}.{ext}"
        k += 1
        seconds += length
        if path.exists():
            continue
        wave = np.zeros(int(length * rate), np.float32)
        wave[:min(len(ev), len(wave))] = ev[:len(wave)]
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(sf, path, wave, rate, fmt, subtype)
        written += 1
        if written % 2000 == 0 and stream is not None:
            print(f"  generated {seconds / 3600:.1f} h", file=stream, flush=True)
    files = long_count + k
    return {"hours": seconds / 3600, "files": files, "long_files": long_count,
            "short_files": k, "written_now": written,
            "generate_seconds": round(time.perf_counter() - t0, 1),
            "bytes": sum(p.stat().st_size for p in root.rglob("*") if p.is_file())}


def _write_atomic(sf, path: Path, wave, rate, fmt, subtype) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    sf.write(str(tmp), wave, rate, format=fmt, subtype=subtype)
    os.replace(tmp, path)


def run_measured(cmd: list[str], log: Path, timeout: float) -> dict:
    """Runs `cmd`, polling the resident memory of it and its descendants every 0.2 s."""
    import psutil

    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        peak = [0]

        def poll():
            try:
                root = psutil.Process(proc.pid)
                while proc.poll() is None:
                    total = 0
                    for p in [root, *root.children(recursive=True)]:
                        try:
                            total += p.memory_info().rss
                        except psutil.Error:
                            pass
                    peak[0] = max(peak[0], total)
                    time.sleep(0.2)
            except psutil.Error:
                pass

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "timeout"
        watcher.join(2)
    return {"exit": code, "seconds": round(time.perf_counter() - t0, 1),
            "peak_rss_gb": round(peak[0] / 2 ** 30, 3),
            "killed_by_kernel": code == -9, "log": str(log)}


def pipeline_rate(shards_dir: Path, batch: int, batches: int) -> float:
    """Examples/s the shard pipeline alone delivers (after a warm-up)."""
    from tfgan.config import preset
    from tfgan.data import shards

    prepared = shards.Prepared.open(shards_dir)
    cfg = preset("cpu").data
    ds = shards.make_dataset(prepared, cfg, prepared.stats(), batch, training=True, seed=0)
    it = iter(ds)
    for _ in range(5):
        next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hours", type=float, default=50.0)
    p.add_argument("--work", default="runs/corpus", help="corpus, shards and runs go here")
    p.add_argument("--out", default="docs/corpus", help="corpus.json and corpus.md go here")
    p.add_argument("--steps", type=int, default=200, help="training steps on the shards")
    p.add_argument("--folder-steps", type=int, default=10,
                   help="training steps on the folder itself (the in-memory path)")
    p.add_argument("--timeout", type=float, default=6 * 3600, help="seconds per stage")
    args = p.parse_args(argv)
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    # Finished stages are kept in WORK/stages.json, so a killed benchmark continues.
    done_path = work / "stages.json"
    done = json.loads(done_path.read_text()) if done_path.exists() else {}
    if done.get("hours_asked") != args.hours:
        done = {"hours_asked": args.hours}
    report = done
    report["cpu_count"] = os.cpu_count()

    def stage(name, fn):
        if name not in report:
            print(f"[corpus] {name}", flush=True)
            report[name] = fn()
            done_path.write_text(json.dumps(report, indent=1))
        return report[name]

    stage("corpus", lambda: generate(work / "corpus", args.hours))
    stage("prepare", lambda: prepare_stage(py, work, args.timeout))
    stage("train_shards", lambda: train_stage(py, work, args.steps, args.timeout))
    stage("pipeline", lambda: pipeline_stage(work, report["train_shards"]))
    stage("train_folder", lambda: folder_stage(py, work, args.folder_steps, args.timeout))
    (out / "corpus.json").write_text(json.dumps(report, indent=1))
    (out / "corpus.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def prepare_stage(py, work: Path, timeout: float) -> dict:
    result = run_measured(
        [py, "-m", "tfgan.data.prepare", "--data", str(work / "corpus"), "--out",
         str(work / "shards")], work / "prepare.log", timeout)
    manifest = json.loads((work / "shards" / "manifest.json").read_text())
    result.update(files=manifest["files"], hours=manifest["hours"],
                  shards=len(manifest["shards"]), skipped=len(manifest["skipped"]),
                  hours_per_minute=manifest["hours"] * 60 / max(manifest["seconds"], 1e-9),
                  prepare_seconds=manifest["seconds"])
    return result


def _fresh(path: Path) -> Path:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    return path


def train_stage(py, work: Path, steps: int, timeout: float) -> dict:
    run = _fresh(work / "run-shards")
    result = run_measured(
        [py, "-m", "training.run", "--data", str(work / "shards"), "--steps", str(steps),
         "--eval-every", "0", "--log-every", str(max(1, steps // 10)), "--sample-every", str(steps),
         "--conditional", "off", "--run-dir", str(run)], work / "train-shards.log", timeout)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [r["steps_per_sec"] for r in rows[1:] if r.get("steps_per_sec")]
    steps_per_sec = float(np.median(rates)) if rates else None
    batch = json.loads((run / "config.json").read_text())["train"]["batch_size"]
    result.update(steps_per_sec=steps_per_sec, batch=batch,
                  examples_per_sec=steps_per_sec and steps_per_sec * batch)
    return result


def pipeline_stage(work: Path, train: dict) -> dict:
    rate = pipeline_rate(work / "shards", train["batch"], 100)
    return {"examples_per_sec": rate,
            "over_train_step": rate / train["examples_per_sec"] if train["examples_per_sec"]
            else None}


def folder_stage(py, work: Path, steps: int, timeout: float) -> dict:
    run = _fresh(work / "run-folder")
    result = run_measured(
        [py, "-m", "training.run", "--data", str(work / "corpus"), "--steps", str(steps),
         "--eval-every", "0", "--log-every", "5", "--conditional", "off",
         "--sample-every", str(steps), "--run-dir", str(run)], work / "train-folder.log",
        timeout)
    result["cache_refused"] = "not caching it" in (work / "train-folder.log").read_text()
    return result


def markdown(r: dict) -> str:
    c, pr, ts, pl, tf_ = (r["corpus"], r["prepare"], r["train_shards"], r["pipeline"],
                          r["train_folder"])
    return "\n".join([
        "# A corpus at scale: prepare, train on shards, and the in-memory path", "",
        f"Corpus: {c['hours']:.1f} h in {c['files']} files ({c['long_files']} ten-minute "
        f"recordings, {c['short_files']} one-shots; WAV, FLAC, Ogg, MP3 at 16-48 kHz), "
        f"{c['bytes'] / 2 ** 30:.1f} GB on disk. Machine: {r['cpu_count']} CPU cores.", "",
        "| stage | result | wall | peak resident memory |", "|---|---|---|---|",
        f"| prepare (`tfgan.data.prepare`) | {pr['files']} files, {pr['hours']:.1f} h into "
        f"{pr['shards']} shards, {pr['skipped']} skipped; {pr['hours_per_minute']:.2f} h of "
        f"audio per minute | {pr['seconds'] / 60:.1f} min | {pr['peak_rss_gb']:.2f} GB |",
        f"| train on the shards | exit {ts['exit']}, {ts['steps_per_sec'] or 0:.2f} steps/s "
        f"({ts['examples_per_sec'] or 0:.0f} examples/s) | {ts['seconds'] / 60:.1f} min | "
        f"{ts['peak_rss_gb']:.2f} GB |",
        f"| shard pipeline alone | {pl['examples_per_sec']:.0f} examples/s, "
        f"{pl['over_train_step'] or 0:.1f}× what the train step consumes | | |",
        f"| train on the folder (in-memory path) | exit {tf_['exit']}, cache "
        f"{'refused' if tf_['cache_refused'] else 'used'}, "
        f"{'killed by the kernel' if tf_['killed_by_kernel'] else 'not killed'} | "
        f"{tf_['seconds'] / 60:.1f} min | {tf_['peak_rss_gb']:.2f} GB |", ""])


if __name__ == "__main__":
    sys.exit(main())
