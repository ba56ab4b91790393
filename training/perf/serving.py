"""The serving section: predict latency and throughput of `serving.server` on loopback."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from training.perf.common import ROOT, import_tf, load_avg, subset_root, timed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def export_fresh_generator(cfg, stats, tmp: Path) -> Path:
    """A run directory holding a freshly initialised G, exported as a SavedModel."""
    tf = import_tf()
    from export.saved_model import export
    from tfgan.checkpoint_layout import trackable_weights
    from tfgan.rundir import RunDir, build_generator

    run = RunDir(tmp / "serving-run")
    run.prepare()
    run.save_config(cfg)
    stats.save(run.stats_path)
    ckpt = tf.train.Checkpoint(generator=trackable_weights(build_generator(cfg)),
                               step=tf.Variable(0, dtype=tf.int64))
    tf.train.CheckpointManager(ckpt, str(run.checkpoints), max_to_keep=1,
                               checkpoint_name="ckpt").save()
    base = tmp / "serving-models"
    export(run.path, base)
    return base


def _latencies(client, url: str, body: bytes, n: int, budget_s: float) -> list[float]:
    out = []
    deadline = time.perf_counter() + budget_s
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.post(url, content=body, headers={"content-type": "application/json"})
        out.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise RuntimeError(f"predict failed: {r.status_code} {r.text[:300]}")
        if time.perf_counter() > deadline:
            break
    return out


def bench_serving(quick: bool, tmp: Path) -> dict:
    import httpx

    from tfgan.config import preset
    from tfgan.data import pipeline

    cfg = preset("cpu", "reference")
    if quick:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, base_width=4),
                                  train=dataclasses.replace(cfg.train, griffin_lim_iters=4))
    root = pipeline.builtin_or(None)
    if quick:
        root = subset_root(root, 1, tmp / "serving-data")
    stats = pipeline.compute_stats(pipeline.scan_folder(root, cfg.data), cfg.data)
    export_s, _, base = timed(lambda: export_fresh_generator(cfg, stats, tmp))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(tmp / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "serving.server", "--model-base-path", str(base),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    out = {"preset": "cpu", "base_width": cfg.model.base_width,
           "griffin_lim_iters": cfg.train.griffin_lim_iters, "export_s": export_s,
           "clients": 8, "results": []}
    url = f"http://127.0.0.1:{port}"
    try:
        start = time.perf_counter()
        with httpx.Client(timeout=120) as client:
            while True:
                try:
                    if client.get(url + "/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.perf_counter() - start > 180:
                    raise RuntimeError("the server did not come up: "
                                       + (tmp / "server.log").read_text()[-800:])
                time.sleep(0.2)
        out["startup_s"] = time.perf_counter() - start
        predict = f"{url}/v1/models/generator:predict"
        rng = np.random.default_rng(0)
        n_seq, n_conc, budget = (3, 1, 5.0) if quick else (40, 6, 25.0)
        for sig in ("serving_default", "audio"):
            for batch in (1, 16):
                z = rng.standard_normal([batch, cfg.model.latent_dim]).astype(np.float32)
                body = json.dumps({"signature_name": sig,
                                   "instances": z.round(6).tolist()}).encode()
                with httpx.Client(timeout=300) as client:
                    _latencies(client, predict, body, 2, 60)  # warm-up: traces, caches
                    seq = _latencies(client, predict, body, n_seq, budget)
                conc, errors = [], []

                def worker():
                    try:
                        with httpx.Client(timeout=300) as c:
                            conc.extend(_latencies(c, predict, body, n_conc, budget))
                    except Exception as e:  # noqa: BLE001
                        errors.append(repr(e))

                threads = [threading.Thread(target=worker) for _ in range(out["clients"])]
                t0 = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.perf_counter() - t0
                if errors:
                    raise RuntimeError(errors[0])
                row = {"signature": sig, "batch": batch, "request_bytes": len(body)}
                for name, lat, w in (("single_client", seq, sum(seq)),
                                     ("concurrent", conc, wall)):
                    lat_ms = np.asarray(lat) * 1e3
                    row[name] = {"requests": len(lat), "p50_ms": float(np.percentile(lat_ms, 50)),
                                 "p99_ms": float(np.percentile(lat_ms, 99)),
                                 "requests_per_s": len(lat) / w,
                                 "examples_per_s": len(lat) * batch / w}
                row["load"] = load_avg()
                out["results"].append(row)
        out["model_only"] = _model_only_latency(base, cfg, quick)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    return out


def _model_only_latency(base: Path, cfg, quick: bool) -> dict:
    """The same signatures called in-process: what the HTTP + JSON path adds on top."""
    tf = import_tf()
    from serving.json_tensor import ROW, encode_outputs

    version = max(int(p.name) for p in base.iterdir() if p.name.isdigit())
    loaded = tf.saved_model.load(str(base / str(version)))
    out = {}
    for sig in ("serving_default", "audio"):
        fn = loaded.signatures[sig]
        for batch in (1, 16):
            z = tf.random.normal([batch, cfg.model.latent_dim], seed=5)
            fn(z=z)
            n = 3 if quick else 20
            runs = [timed(lambda: {k: v.numpy() for k, v in fn(z=z).items()}) for _ in range(n)]
            outputs = runs[-1][2]
            reps = 3 if quick else 7
            enc = [timed(lambda: encode_outputs(outputs, ROW)) for _ in range(reps)]
            out[f"{sig}/b{batch}"] = {
                "model_p50_ms": float(np.median([r[0] for r in runs]) * 1e3),
                "json_encode_p50_ms": float(np.median([e[0] for e in enc]) * 1e3),
                "response_bytes": len(enc[0][2])}
    return out
