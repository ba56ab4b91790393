"""python -m tfgan.data.prepare: decode a corpus once into TFRecord shards.

    python -m tfgan.data.prepare --data DIR --out SHARDS [--preset cpu|specgan] [--shards N]
                                 [--slice POLICY] [--workers N]

Lists the audio files of DIR, assigns them round-robin to N shards, and prepares the
shards in parallel worker processes: each decodes its files (mono, resampled to the
preset's rate), rejects the bad ones with the reasons the folder pipeline gives, writes
one record per good file (`tfgan.data.shards`) and the sums its files add to the
normalisation statistics. A shard is written under a temporary name and renamed when
complete, its sidecar JSON last, so a killed preparation leaves no half shard under a
final name; run the same command again and finished shards are kept. Then stats.json and
manifest.json are written, and `python -m training.run --data SHARDS` trains on them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # before TensorFlow is imported: see tfgan/console.py
    from tfgan.console import quiet_native_logs

    quiet_native_logs()

PLAN = "plan.json"
FILES_PER_SHARD = 1000  # default shard size: about 60 MB of 4-second clips at 8 kHz


class PrepareError(ValueError):
    """A preparation that cannot run as asked."""


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)


def plan(root: Path, out: Path, cfg, preset: str, shards: int | None) -> dict:
    """The files, their classes and shard assignment: computed once, then kept in
    OUT/plan.json so that a resumed preparation writes the same shards."""
    from tfgan.data import pipeline

    files = pipeline.list_audio_files(root)
    names = [pipeline.class_of(p, root) for p in files]
    classes = sorted({n for n in names if n})
    n = shards or max(1, math.ceil(len(files) / FILES_PER_SHARD))
    n = min(n, len(files))
    config = dataclasses.asdict(cfg)
    new = {"source": str(root.resolve()), "preset": preset, "config": config, "shards": n,
           "classes": classes, "files": [str(p.relative_to(root)) for p in files],
           "labels": [classes.index(c) if c else -1 for c in names]}
    path = out / PLAN
    if path.exists():
        old = json.loads(path.read_text())
        if old != new:
            changed = [k for k in new if old.get(k) != new[k]]
            raise PrepareError(f"{out} holds a preparation of other data or settings "
                               f"({', '.join(changed)} differ); use another --out or remove it")
        return old
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, json.dumps(new))
    return new


def prepare_shard(task: dict) -> dict:
    """Writes one shard (in a worker process); returns its sidecar's content."""
    import tensorflow as tf

    from tfgan import audio
    from tfgan.config import DataConfig
    from tfgan.data import decoders, pipeline, shards, slicing

    # One thread per worker process: the pool is the parallelism (one process per core).
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    cfg = DataConfig(**task["config"])
    out, root = Path(task["out"]), Path(task["source"])
    name = shards.shard_name(task["index"], task["count"])
    record_path, side_path = out / f"{name}.tfrecord", out / f"{name}.json"
    tmp = out / f".tmp-{os.getpid()}-{name}.tfrecord"
    sums = pipeline.StatsSums(cfg.n_bins)
    sources, labels, skipped, samples = [], [], [], 0
    with tf.io.TFRecordWriter(str(tmp)) as writer:
        for rel, label in zip(task["files"], task["labels"]):
            path = root / rel
            try:
                decoders.probe(str(path))
                wave = decoders.decode_python(str(path), cfg.sample_rate, pipeline.MAX_SECONDS)
                pipeline.check_wave(wave, cfg)
            except decoders.DecodeError as e:
                skipped.append((str(path), str(e)))
                continue
            record = shards.encode(wave, label, rel)
            writer.write(record)
            del wave
            # The statistics of what training will read: the int16 audio.
            stored, _ = shards.decode(tf.constant(record))
            starts, _ = slicing.allowed_starts(stored, cfg)
            element = {"wave": slicing.pad_for_slicing(stored, cfg), "starts": starts}
            sums.add(audio.log_magnitude(pipeline.stats_crops(element, cfg), cfg).numpy())
            sources.append(rel)
            labels.append(int(label))
            samples += int(stored.shape[0])
    side = {"name": name, "files": len(sources), "samples": samples, "sources": sources,
            "labels": labels, "skipped": skipped, "stats": sums.to_json()}
    os.replace(tmp, record_path)
    _atomic_write(side_path, json.dumps(side))  # last: its presence marks the shard done
    return side


def _progress(done: int, total: int, hours: float, t0: float, stream) -> None:
    elapsed = time.perf_counter() - t0
    width = 30
    bar = "#" * (width * done // max(total, 1))
    rate = hours / (elapsed / 60) if elapsed > 0 else 0.0
    line = (f"[{bar:<{width}}] {done}/{total} shards  {hours:.2f} h of audio  "
            f"{elapsed:.0f} s  {rate:.2f} h/min")
    if stream.isatty():
        print("\r" + line, end="" if done < total else "\n", file=stream, flush=True)
    else:
        print(line, file=stream, flush=True)


def prepare(data, out, preset: str = "cpu", shards: int | None = None,
            slice_policy: str | None = None, workers: int | None = None,
            stream=sys.stderr) -> dict:
    """Prepares DATA into OUT (see module docstring); returns the manifest."""
    import multiprocessing

    from tfgan.config import preset as make_preset
    from tfgan.data import shards as shards_lib

    root, out = Path(data), Path(out)
    cfg = make_preset(preset).data
    if slice_policy:
        cfg = dataclasses.replace(cfg, slice=slice_policy)
    cfg = dataclasses.replace(cfg, data_dir=None)
    if shards is not None and shards < 1:
        raise PrepareError(f"--shards must be at least 1. Received: {shards}")
    p = plan(root, out, cfg, preset, shards)  # refuses other data or settings in OUT
    if (out / shards_lib.MANIFEST).exists():
        manifest = json.loads((out / shards_lib.MANIFEST).read_text())
        print(f"{out} is already prepared ({manifest['files']} files, "
              f"{manifest['hours']:.2f} h)", file=stream)
        return manifest
    for stale in out.glob(".tmp-*"):  # what a killed preparation was writing
        stale.unlink()
    n = p["shards"]
    todo = [i for i in range(n)
            if not (out / f"{shards_lib.shard_name(i, n)}.json").exists()]
    tasks = [{"index": i, "count": n, "out": str(out), "source": p["source"],
              "config": p["config"], "files": p["files"][i::n], "labels": p["labels"][i::n]}
             for i in todo]
    print(f"Preparing {len(p['files'])} files from {root} into {n} shards "
          f"({n - len(todo)} already done) with {workers or os.cpu_count()} workers",
          file=stream, flush=True)
    t0, hours = time.perf_counter(), 0.0
    rate = cfg.sample_rate * 3600
    if tasks:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(workers or os.cpu_count() or 1, len(tasks))) as pool:
            for k, side in enumerate(pool.imap_unordered(prepare_shard, tasks), 1):
                hours += side["samples"] / rate
                _progress(k, len(tasks), hours, t0, stream)
    return finish(out, p, cfg, preset, time.perf_counter() - t0, stream)


def finish(out: Path, p: dict, cfg, preset: str, seconds: float, stream) -> dict:
    """Merges the shards' sidecars into stats.json and manifest.json."""
    from tfgan.data import pipeline
    from tfgan.data import shards as shards_lib

    n = p["shards"]
    sides = [json.loads((out / f"{shards_lib.shard_name(i, n)}.json").read_text())
             for i in range(n)]
    sums = pipeline.StatsSums(cfg.n_bins)
    for side in sides:
        sums.merge(pipeline.StatsSums.from_json(side["stats"]))
    skipped = [tuple(s) for side in sides for s in side["skipped"]]
    files = sum(side["files"] for side in sides)
    if files == 0:
        raise PrepareError(f"No usable audio file under {p['source']}: all {len(skipped)} "
                           "were skipped.")
    if skipped:
        print("warning: " + pipeline.skipped_warning(skipped, files + len(skipped),
                                                     p["source"]), file=stream, flush=True)
    # Classes of the good files only, as a folder scan names them: a sub-folder whose
    # files were all skipped is no class.
    planned = p["classes"]
    used = sorted({planned[c] for side in sides for c in side["labels"] if c >= 0})
    for side in sides:
        side["labels"] = [used.index(planned[c]) if c >= 0 else -1 for c in side["labels"]]
    stats = sums.stats(cfg)
    tmp = out / f".tmp-{os.getpid()}-stats.json"
    stats.save(tmp)
    os.replace(tmp, out / "stats.json")
    samples = sum(side["samples"] for side in sides)
    manifest = {
        "format": shards_lib.FORMAT, "version": shards_lib.VERSION, "source": p["source"],
        "preset": p["preset"], "config": p["config"], "classes": used,
        # Records carry the plan's class index; this maps it to the index in "classes".
        "label_map": [used.index(c) if c in used else -1 for c in planned],
        "files": files, "hours": samples / cfg.sample_rate / 3600, "samples": samples,
        "skipped": [{"path": s[0], "reason": s[1]} for s in skipped],
        "shards": [{"name": side["name"], "files": side["files"], "samples": side["samples"],
                    "labels": side["labels"], "sources": side["sources"]} for side in sides],
        "seconds": round(seconds, 1),
    }
    _atomic_write(out / shards_lib.MANIFEST, json.dumps(manifest))
    print(f"Prepared {files} files ({manifest['hours']:.2f} h of audio at {cfg.sample_rate} Hz) "
          f"into {n} shards in {out}; {len(skipped)} skipped", file=stream, flush=True)
    return manifest


def main(argv=None) -> int:
    from tfgan.config import SLICES

    p = argparse.ArgumentParser(prog="python -m tfgan.data.prepare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="DIR", help="folder of audio files")
    p.add_argument("--out", required=True, metavar="SHARDS", help="folder for the shards")
    p.add_argument("--preset", choices=("cpu", "specgan"), default="cpu",
                   help="audio settings to prepare for (default cpu: 8 kHz)")
    p.add_argument("--shards", type=int,
                   help=f"number of shards (default: one per {FILES_PER_SHARD} files; at "
                        "least as many as the workers that will train on them)")
    p.add_argument("--slice", choices=SLICES, dest="slice_policy",
                   help="slicing policy the statistics are measured with (default: auto)")
    p.add_argument("--workers", type=int, help="processes (default: the CPU count)")
    args = p.parse_args(argv)
    from tfgan.data.pipeline import DataError

    try:
        prepare(args.data, args.out, args.preset, args.shards, args.slice_policy, args.workers)
    except (PrepareError, DataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue (finished shards are "
              "kept)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
