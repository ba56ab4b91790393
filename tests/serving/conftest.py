"""Fixtures for the serving tests: a small but real SavedModel and a live server.

`make_model_dir(base, version)` writes a SavedModel in TF Serving's layout with exactly the
signatures of `export/saved_model.py` (serving_default, audio, generate). It stands in for
the real exporter until that exists; swapping it only needs a function with the same
signature that writes `base/<version>/`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LATENT_DIM = 8
HEIGHT = 8
WIDTH = 8
SAMPLES = 256
SAMPLE_RATE = 8000


def _build_module(version: int):
    import tensorflow as tf

    class FixtureGenerator(tf.Module):
        """Dense -> reshape -> tanh generator with a deterministic waveform head."""

        def __init__(self):
            super().__init__()
            # The weights depend on the version so tests can tell versions apart.
            init = tf.random.stateless_normal(
                [LATENT_DIM, HEIGHT * WIDTH], seed=[version, 1], stddev=0.5)
            self.kernel = tf.Variable(init, name="kernel")
            self.bias = tf.Variable(tf.fill([HEIGHT * WIDTH], 0.01 * version), name="bias")

        def _spectrogram(self, z):
            logits = tf.matmul(z, self.kernel) + self.bias
            return tf.reshape(tf.tanh(logits), [-1, HEIGHT, WIDTH, 1])

        @tf.function(input_signature=[tf.TensorSpec([None, LATENT_DIM], tf.float32, name="z")])
        def serve(self, z):
            spec = self._spectrogram(z)
            return {"spectrogram": spec, "log_magnitude": spec * 3.0 - 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None, LATENT_DIM], tf.float32, name="z")])
        def audio(self, z):
            t = tf.range(SAMPLES, dtype=tf.float32) / float(SAMPLE_RATE)
            freq = 200.0 + 400.0 * tf.sigmoid(tf.reduce_sum(z, axis=-1, keepdims=True))
            amp = 0.3 + 0.5 * tf.sigmoid(z[:, :1])
            return {"audio": amp * tf.sin(2.0 * math.pi * freq * t[tf.newaxis, :])}

        @tf.function(input_signature=[tf.TensorSpec([], tf.int64, name="seed"),
                                      tf.TensorSpec([], tf.int32, name="count")])
        def generate(self, seed, count):
            z = tf.random.stateless_normal(
                tf.stack([count, LATENT_DIM]), seed=tf.stack([seed, tf.constant(0, tf.int64)]))
            return {"z": z, "spectrogram": self._spectrogram(z)}

    return FixtureGenerator()


def make_model_dir(base, version: int) -> Path:
    """Writes a SavedModel with the exporter's signatures to `base/<version>/`.

    Args:
      base: the model base path (TF Serving's --model_base_path).
      version: positive integer version.

    Returns:
      The version directory.
    """
    import tensorflow as tf

    module = _build_module(version)
    out = Path(base) / str(version)
    # Written under a temporary name and renamed, as an exporter should: the server must
    # never see a half-written integer directory.
    tmp = Path(base) / f".tmp-{version}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, str(tmp), signatures={
        "serving_default": module.serve.get_concrete_function(),
        "audio": module.audio.get_concrete_function(),
        "generate": module.generate.get_concrete_function(),
    })
    extra = tmp / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    (extra / "config.json").write_text(json.dumps(
        {"data": {"sample_rate": SAMPLE_RATE}, "model": {"latent_dim": LATENT_DIM}}))
    (extra / "stats.json").write_text(json.dumps(
        {"mean": [0.0] * HEIGHT, "std": [1.0] * HEIGHT}))
    os.replace(tmp, out)
    return out


_TEMPLATE_CACHE: dict[int, Path] = {}


def copy_model_dir(base, version: int, template_root: Path) -> Path:
    """Like `make_model_dir` but copies a cached build (saving a model costs ~1 s)."""
    if version not in _TEMPLATE_CACHE:
        _TEMPLATE_CACHE[version] = make_model_dir(template_root / f"v{version}", version)
    out = Path(base) / str(version)
    tmp = Path(base) / f".copy-{version}"
    shutil.copytree(_TEMPLATE_CACHE[version], tmp)
    os.replace(tmp, out)
    return out


@pytest.fixture(scope="session")
def template_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("templates")


@pytest.fixture(scope="session")
def model_factory(template_root):
    """`factory(base, version)` writes a fixture model version under `base`."""
    return lambda base, version: copy_model_dir(base, version, template_root)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """Runs the real app under uvicorn in a background thread on a loopback port."""

    def __init__(self, app):
        import uvicorn

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def wait_for():
    """`wait_for(predicate, what, timeout=20, interval=0.05)`: polls until `predicate()`
    returns something true, and returns it; fails the test, saying `what` it waited for,
    when the time runs out."""
    def wait(predicate, what: str, timeout: float = 20.0, interval: float = 0.05):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"not met in {timeout} s: {what}")
    return wait


@pytest.fixture(scope="session")
def shapes() -> dict:
    """The fixture model's sizes, for tests that build inputs or check outputs."""
    return {"latent_dim": LATENT_DIM, "height": HEIGHT, "width": WIDTH, "samples": SAMPLES,
            "sample_rate": SAMPLE_RATE}


@pytest.fixture(scope="session")
def server_factory():
    """`with server_factory(base, **create_app_kwargs) as server:` runs a fresh server."""
    from serving.server import create_app

    return lambda base, **kwargs: LiveServer(create_app(str(base), **kwargs))


@pytest.fixture(scope="module")
def model_base(tmp_path_factory, model_factory) -> Path:
    base = tmp_path_factory.mktemp("models") / "generator"
    base.mkdir()
    model_factory(base, 1)
    return base


@pytest.fixture(scope="module")
def live_server(model_base, server_factory):
    """A server on `model_base` with small limits so the limit tests stay cheap."""
    with server_factory(model_base, model_name="generator", max_body_bytes=64 * 1024,
                        max_batch=16, poll_seconds=0.1) as server:
        yield server
