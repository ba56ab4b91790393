"""The server under load from many concurrent clients on loopback, and while versions are
written and deleted underneath it: every request answered, none mixed up."""

from __future__ import annotations

import shutil
import threading
import time

import httpx
import numpy as np

MODEL = "/v1/models/generator"
CLIENTS = 32
REQUESTS = 2000


def _bodies(latent_dim: int) -> list[dict]:
    """Sixteen distinct predict requests over every signature and both formats."""
    rng = np.random.default_rng(0)
    bodies = []
    for i in range(16):
        z = rng.standard_normal((1 + i % 4, latent_dim)).round(4).tolist()
        bodies.append([{"instances": z},
                       {"signature_name": "audio", "inputs": {"z": z}},
                       {"signature_name": "generate", "inputs": {"seed": i, "count": 1 + i % 3}},
                       {"signature_name": "serving_default", "inputs": z}][i % 4])
    return bodies


def _hammer(url: str, bodies: list, expected: list, clients: int, requests: int):
    """`requests` predicts from `clients` threads, each on its own connection.

    Returns:
      (errors, answers): descriptions of every failed or wrong answer, and every answer
      as (index into bodies, response bytes).
    """
    errors, answers = [], []
    start = threading.Barrier(clients)

    def client(k):
        with httpx.Client(base_url=url, timeout=60) as http:
            start.wait()  # all connections open and fire together
            for i in range(k, requests, clients):
                j = i % len(bodies)
                try:
                    r = http.post(f"{MODEL}:predict", json=bodies[j])
                except httpx.HTTPError as e:
                    errors.append(f"request {i}: {e!r}")
                    continue
                answers.append((j, r.content))
                if r.status_code != 200:
                    errors.append(f"request {i}: {r.status_code} {r.text[:200]}")
                elif r.content not in expected[j]:
                    errors.append(f"request {i}: an answer to another request: {r.text[:100]}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return errors, answers


def test_2000_predicts_from_32_concurrent_clients(tmp_path, model_factory, server_factory,
                                                  shapes):
    base = tmp_path / "generator"
    base.mkdir()
    model_factory(base, 1)
    bodies = _bodies(shapes["latent_dim"])
    with server_factory(base) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            expected = [{http.post(f"{MODEL}:predict", json=b).content} for b in bodies]
        started = time.monotonic()
        errors, answers = _hammer(server.url, bodies, expected, CLIENTS, REQUESTS)
        elapsed = time.monotonic() - started
        assert errors == [], f"{len(errors)} errors, e.g. {errors[:5]}"
        assert len(answers) == REQUESTS
        print(f"{REQUESTS} predicts from {CLIENTS} clients in {elapsed:.1f} s")
        assert httpx.get(server.url + "/healthz").status_code == 200


def test_versions_written_and_deleted_under_load(tmp_path, model_factory, server_factory,
                                                 shapes, wait_for):
    """Versions appear (copied file by file, saved_model.pb last, as an exporter writes) and
    disappear while clients keep predicting: no request fails, each answer is one of the
    versions' answers to that very request."""
    staging = tmp_path / "staging"
    bodies = _bodies(shapes["latent_dim"])[:8]
    expected = [set() for _ in bodies]
    for v in (1, 2, 3):  # each version's answers, from a server holding only that version
        model_factory(staging / f"v{v}", v)
        with server_factory(staging / f"v{v}") as server, \
                httpx.Client(base_url=server.url, timeout=30) as http:
            for j, b in enumerate(bodies):
                expected[j].add(http.post(f"{MODEL}:predict", json=b).content)
    assert max(len(e) for e in expected) == 3  # the audio head has no weights; G does

    base = tmp_path / "generator"
    base.mkdir()
    shutil.copytree(staging / "v1" / "1", base / "1")
    with server_factory(base, poll_seconds=0.02) as server:
        done, one_cycle = threading.Event(), threading.Event()
        loaded, churn_errors = set(), []  # versions seen AVAILABLE; failures in the thread

        def is_loaded(v) -> bool:
            status = httpx.get(server.url + MODEL, timeout=10).json()["model_version_status"]
            return any(s["version"] == str(v) and s["state"] == "AVAILABLE" for s in status)

        def churn():
            """2 and 3 are written in place, then 3 and 2 deleted in turn, repeatedly. The
            first cycle waits until each written version is served, so that a loaded machine
            still sees both; later ones do not wait, so a version may go while it loads."""
            try:
                while not done.is_set():
                    for v in (2, 3):
                        _write_slowly(staging / f"v{v}" / str(v), base / str(v))
                        if not one_cycle.is_set():
                            wait_for(lambda: is_loaded(v), f"version {v} AVAILABLE", interval=0.02)
                            loaded.add(str(v))
                        time.sleep(0.05)
                    for v in (3, 2):
                        shutil.rmtree(base / str(v))
                        time.sleep(0.05)
                    one_cycle.set()
            except Exception as e:  # reported by the test, not lost with the thread
                churn_errors.append(repr(e))
                one_cycle.set()

        churner = threading.Thread(target=churn)
        churner.start()
        try:
            errors, answers = _hammer(server.url, bodies, expected, 8, 400)
        finally:
            # Under a loaded machine the requests may finish before the first cycle does.
            cycled = one_cycle.wait(120)
            done.set()
            churner.join(60)
        assert churn_errors == [] and cycled, (churn_errors, cycled)
        assert errors == [], f"{len(errors)} errors, e.g. {errors[:5]}"
        assert len(answers) == 400
        # The swaps happened while requests were in flight: G's answers came from 2+ versions.
        assert len({content for j, content in answers if j % 4 == 0}) > len(bodies) // 4
        assert {"2", "3"} <= loaded, loaded  # each written version was really served


def _write_slowly(src, dst):
    """Copies a SavedModel directory the way an exporter writes it: variables and assets
    first, saved_model.pb last, with pauses for the poller to see it half-written."""
    files = sorted(p for p in src.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name == "saved_model.pb")
    for f in files:
        out = dst / f.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, out)
        time.sleep(0.01)
