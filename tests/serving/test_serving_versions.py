"""Version hot-swapping, half-written versions, and the server staying responsive."""

from __future__ import annotations

import shutil
import threading
import time

import httpx
import numpy as np

MODEL = "/v1/models/generator"
Z = [[0.3, -0.2, 0.1, 0.0, 0.5, -0.4, 0.2, 0.1]]


def _served_version(http) -> str:
    return http.get(f"{MODEL}/metadata").json()["model_spec"]["version"]


def _spectrogram(http, version=None):
    path = MODEL + (f"/versions/{version}" if version else "") + ":predict"
    r = http.post(path, json={"instances": Z})
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["predictions"][0]["spectrogram"])


def test_new_versions_are_picked_up_and_half_written_ones_ignored(tmp_path, model_factory,
                                                                  server_factory, wait_for):
    base = tmp_path / "generator"
    base.mkdir()
    model_factory(base, 1)
    with server_factory(base, poll_seconds=0.05) as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        assert _served_version(http) == "1"
        v1 = _spectrogram(http)

        # Being written: a temp name, and an integer dir without saved_model.pb yet.
        shutil.copytree(base / "1", base / ".tmp-export-5")
        (base / "3" / "variables").mkdir(parents=True)
        shutil.copy(base / "1" / "variables" / "variables.index", base / "3" / "variables")
        time.sleep(0.5)  # ten polls
        assert _served_version(http) == "1"
        status = http.get(MODEL).json()["model_version_status"]
        assert [s["version"] for s in status] == ["1"]
        assert http.post(f"{MODEL}/versions/3:predict", json={"instances": Z}).status_code == 404

        # A complete new version is served without a restart.
        model_factory(base, 2)
        wait_for(lambda: _served_version(http) == "2", "version 2 served")
        v2 = _spectrogram(http)
        assert not np.allclose(v1, v2), "version 2 has different weights"
        status = http.get(MODEL).json()["model_version_status"]
        assert status == [
            {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
            {"version": "1", "state": "END", "status": {"error_code": "OK", "error_message": ""}},
        ]
        assert http.get(f"{MODEL}/versions/2").json()["model_version_status"][0]["state"] == "AVAILABLE"
        assert http.get("/healthz").json()["version"] == "2"
        assert http.post(f"{MODEL}/versions/1:predict", json={"instances": Z}).status_code == 404

        # A version that cannot load is reported and does not replace the served one.
        (base / "7").mkdir()
        (base / "7" / "saved_model.pb").write_bytes(b"this is not a SavedModel")
        wait_for(lambda: any(s["version"] == "7" for s in
                             http.get(MODEL).json()["model_version_status"]),
                 "version 7 reported")
        failed = http.get(f"{MODEL}/versions/7").json()["model_version_status"][0]
        assert failed["state"] == "END" and failed["status"]["error_code"] != "OK"
        assert failed["status"]["error_message"]
        assert _served_version(http) == "2"
        np.testing.assert_allclose(_spectrogram(http), v2)

        # Deleting the served version's directory does not break serving: the model is in
        # memory, and the server moves to the newest loadable version left (1).
        shutil.rmtree(base / "7")
        shutil.rmtree(base / "2")
        np.testing.assert_allclose(_spectrogram(http), v2, atol=1e-6)
        wait_for(lambda: _served_version(http) == "1", "version 1 served again")
        np.testing.assert_allclose(_spectrogram(http), v1, atol=1e-6)


def test_empty_base_path_serves_404_then_loads(tmp_path, model_factory, server_factory,
                                               wait_for):
    base = tmp_path / "later"
    with server_factory(base, poll_seconds=0.05) as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/healthz").status_code == 503
        r = http.post(f"{MODEL}:predict", json={"instances": Z})
        assert r.status_code == 404 and "Latest(generator)" in r.json()["error"]
        assert http.get(MODEL).status_code == 404
        base.mkdir()
        model_factory(base, 4)
        wait_for(lambda: http.get("/healthz").status_code == 200, "healthy after the first version")
        assert _served_version(http) == "4"


def test_model_runs_off_the_event_loop_and_faults_are_500(tmp_path, model_factory,
                                                          server_factory):
    base = tmp_path / "generator"
    base.mkdir()
    model_factory(base, 1)
    with server_factory(base) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        model = server.app.state.store.current
        real_run = model.run
        gate = threading.Event()

        def slow_run(signature, inputs):
            gate.wait(10)
            return real_run(signature, inputs)

        model.run = slow_run
        results = {}
        worker = threading.Thread(target=lambda: results.setdefault(
            "slow", http.post(f"{MODEL}:predict", json={"instances": Z})))
        worker.start()
        time.sleep(0.2)
        # While a predict is stuck inside the model, the loop still answers others.
        started = time.monotonic()
        with httpx.Client(base_url=server.url, timeout=5) as other:
            assert other.get("/healthz").status_code == 200
            assert other.get(MODEL).status_code == 200
        assert time.monotonic() - started < 2
        gate.set()
        worker.join(10)
        assert results["slow"].status_code == 200

        def broken_run(signature, inputs):
            raise RuntimeError("simulated fault")

        model.run = broken_run
        r = http.post(f"{MODEL}:predict", json={"instances": Z})
        assert r.status_code == 500
        assert "simulated fault" in r.json()["error"]
        model.run = real_run
        assert http.post(f"{MODEL}:predict", json={"instances": Z}).status_code == 200


def test_server_command_line(tmp_path, model_factory, wait_for):
    """`python -m serving.server` binds loopback, serves, and stops on SIGTERM."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path

    base = tmp_path / "generator"
    base.mkdir()
    model_factory(base, 3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(repo), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving.server", "--model-base-path", str(base),
         "--port", str(port), "--max-batch", "4", "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: proc.poll() is not None or _healthy(url), "server up or exited",
                 timeout=90)
        assert proc.poll() is None, proc.stdout.read()
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.get(MODEL).json()["model_version_status"][0]["version"] == "3"
            r = http.post(f"{MODEL}:predict", json={"instances": Z * 5})
            assert r.status_code == 400 and "maximum input batch size 4" in r.json()["error"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_cli_defaults_are_local_and_tf_serving_like():
    from serving.server import DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, build_parser

    args = build_parser().parse_args(["--model-base-path", "x"])
    assert (args.host, args.port, args.model_name) == ("127.0.0.1", 8501, "generator")
    assert (args.max_batch, args.max_body_bytes) == (DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES)


def _healthy(url) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
