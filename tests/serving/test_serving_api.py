"""The REST API of serving.server, checked over real HTTP against TF Serving's documented
responses (status, metadata, predict row/columnar, errors)."""

from __future__ import annotations

import json
import re

import httpx
import numpy as np
import pytest

MODEL = "/v1/models/generator"
D = 8  # latent size of the fixture model (conftest.D); checked in test_shapes


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        yield client


def _z(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, D)).round(4).tolist()


def test_shapes(shapes):
    assert shapes["latent_dim"] == D


def _assert_alive(http):
    """The server still answers a good request after a bad one."""
    r = http.post(f"{MODEL}:predict", json={"instances": _z(1)})
    assert r.status_code == 200, r.text


# ----------------------------------------------------------------------- status / metadata


def test_status_matches_tf_serving(http):
    expected = {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    for path in (MODEL, f"{MODEL}/versions/1"):
        r = http.get(path)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.json() == expected


def test_metadata_renders_signature_defs(http, shapes):
    r = http.get(f"{MODEL}/metadata")
    assert r.status_code == 200
    body = r.json()
    assert body["model_spec"] == {"name": "generator", "signature_name": "", "version": "1"}
    sigs = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "audio", "generate", "__saved_model_init_op"} <= set(sigs)

    z = sigs["serving_default"]["inputs"]["z"]
    assert z == {"name": "serving_default_z:0", "dtype": "DT_FLOAT", "tensor_shape": {
        "dim": [{"size": "-1", "name": ""}, {"size": str(D), "name": ""}],
        "unknown_rank": False}}
    assert sigs["serving_default"]["method_name"] == "tensorflow/serving/predict"
    outputs = sigs["serving_default"]["outputs"]
    assert set(outputs) == {"spectrogram", "log_magnitude"}
    assert [d["size"] for d in outputs["spectrogram"]["tensor_shape"]["dim"]] == \
        ["-1", str(shapes["height"]), str(shapes["width"]), "1"]
    # Output tensor names are the graph's (e.g. "StatefulPartitionedCall_1:1").
    assert re.fullmatch(r"\w+:\d+", outputs["spectrogram"]["name"])

    gen = sigs["generate"]["inputs"]
    assert gen["seed"]["dtype"] == "DT_INT64" and gen["count"]["dtype"] == "DT_INT32"
    assert gen["seed"]["tensor_shape"] == {"dim": [], "unknown_rank": False}
    assert sigs["audio"]["outputs"]["audio"]["dtype"] == "DT_FLOAT"
    init = sigs["__saved_model_init_op"]["outputs"]["__saved_model_init_op"]
    assert init["dtype"] == "DT_INVALID" and init["tensor_shape"]["unknown_rank"] is True

    assert http.get(f"{MODEL}/versions/1/metadata").json() == body


def test_metadata_fallback_matches_proto(live_server):
    """The structured-signature fallback renders what saved_model.pb holds."""
    from serving.model_store import signature_def_from_function

    model = live_server.app.state.store.current
    for name, fn in model.signatures.items():
        derived = signature_def_from_function(name, fn)
        proto = model.signature_defs[name]
        assert derived["inputs"] == proto["inputs"], name
        assert derived["outputs"].keys() == proto["outputs"].keys(), name
        for key, info in derived["outputs"].items():
            assert info["dtype"] == proto["outputs"][key]["dtype"]
            assert info["tensor_shape"] == proto["outputs"][key]["tensor_shape"]


# ----------------------------------------------------------------------------- predict


def test_predict_row_format_multiple_named_outputs(http, shapes):
    z = _z(3)
    r = http.post(f"{MODEL}:predict", json={"instances": z})
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["predictions"]
    preds = body["predictions"]
    assert isinstance(preds, list) and len(preds) == 3
    for item in preds:
        assert set(item) == {"spectrogram", "log_magnitude"}
        spec = np.asarray(item["spectrogram"])
        assert spec.shape == (shapes["height"], shapes["width"], 1)
        assert np.all(np.abs(spec) <= 1)
        np.testing.assert_allclose(item["log_magnitude"], spec * 3 - 2, rtol=1e-5, atol=1e-5)


def test_predict_columnar_multiple_named_outputs(http, shapes):
    z = _z(2, seed=1)
    r = http.post(f"{MODEL}:predict", json={"signature_name": "serving_default", "inputs": {"z": z}})
    assert r.status_code == 200, r.text
    out = r.json()["outputs"]
    assert set(out) == {"spectrogram", "log_magnitude"}
    assert np.asarray(out["spectrogram"]).shape == (2, shapes["height"], shapes["width"], 1)
    # Row and columnar formats compute the same thing.
    rows = http.post(f"{MODEL}:predict", json={"instances": z}).json()["predictions"]
    np.testing.assert_allclose([p["spectrogram"] for p in rows], out["spectrogram"], atol=1e-6)
    # A single input may also be given unnamed, and rows may name it.
    plain = http.post(f"{MODEL}:predict", json={"inputs": z}).json()["outputs"]
    assert plain == out
    named_rows = http.post(f"{MODEL}:predict", json={"instances": [{"z": v} for v in z]})
    assert named_rows.json()["predictions"] == rows


def test_predict_single_output_is_unnamed(http, shapes):
    z = _z(2, seed=2)
    rows = http.post(f"{MODEL}:predict", json={"signature_name": "audio", "instances": z})
    assert rows.status_code == 200, rows.text
    preds = rows.json()["predictions"]
    assert isinstance(preds, list) and np.asarray(preds).shape == (2, shapes["samples"])
    cols = http.post(f"{MODEL}:predict", json={"signature_name": "audio", "inputs": {"z": z}})
    outputs = cols.json()["outputs"]
    assert isinstance(outputs, list) and np.asarray(outputs).shape == (2, shapes["samples"])
    np.testing.assert_allclose(preds, outputs)
    assert np.abs(outputs).max() > 0.1


def test_generate_columnar_with_scalar_inputs(http, shapes):
    body = {"signature_name": "generate", "inputs": {"seed": 7, "count": 3}}
    r = http.post(f"{MODEL}:predict", json=body)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"]
    assert np.asarray(out["z"]).shape == (3, D)
    assert np.asarray(out["spectrogram"]).shape == (3, shapes["height"], shapes["width"], 1)
    assert http.post(f"{MODEL}:predict", json=body).json() == r.json()  # seeded
    # z from generate fed to serving_default reproduces generate's spectrogram.
    again = http.post(f"{MODEL}:predict", json={"inputs": {"z": out["z"]}}).json()["outputs"]
    np.testing.assert_allclose(again["spectrogram"], out["spectrogram"], atol=1e-6)


def test_generate_in_row_format_is_refused_like_tf_serving(http):
    r = http.post(f"{MODEL}:predict",
                  json={"signature_name": "generate", "instances": [{"seed": 1, "count": 2}]})
    assert r.status_code == 400
    assert "columnar" in r.json()["error"]
    _assert_alive(http)


def test_json_values_are_the_models_float32_values(http, live_server):
    z = _z(2, seed=3)
    body = http.post(f"{MODEL}:predict", json={"signature_name": "audio", "inputs": z}).json()
    expected = live_server.app.state.store.current.run(
        "audio", {"z": np.asarray(z, np.float32)})["audio"]
    # TF Serving's shortest-round-trip text: parsing it back gives the exact float32s.
    np.testing.assert_array_equal(np.asarray(body["outputs"], np.float32), expected)


def test_version_in_url(http):
    r = http.post(f"{MODEL}/versions/1:predict", json={"instances": _z(1)})
    assert r.status_code == 200


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("body, fragment", [
    (b"{not json", "JSON Parse error"),
    (b"", "The document is empty"),
    (b"[1, 2]", "Is not object"),
    (json.dumps({"instances": [["a"] * D]}).encode(), "not of expected type: float"),
    (json.dumps({"signature_name": "generate", "inputs": {"seed": 1.5, "count": 2}}).encode(),
     "not of expected type: int64"),
    (json.dumps({"instances": [[0.1] * (D - 1)]}).encode(), "expects shape [-1,8]"),
    (json.dumps({"instances": [[0.1] * D, [0.1]]}).encode(), "unexpected size"),
    (json.dumps({"inputs": {"z": [0.1] * D}}).encode(), "expects shape"),
    (json.dumps({"signature_name": "nope", "instances": [[0.1] * D]}).encode(),
     'Serving signature name: "nope" not found'),
    (json.dumps({"signature_name": 3, "instances": []}).encode(), "must be a string"),
    (json.dumps({"signature_name": "generate", "inputs": {"seed": 1}}).encode(),
     "Missing named input: count"),
    (json.dumps({"instances": [[0.1] * D], "inputs": {}}).encode(), "only one of"),
    (json.dumps({"signature_name": "serving_default"}).encode(), "Missing 'inputs' or 'instances'"),
    (json.dumps({"instances": []}).encode(), "No values in 'instances'"),
    (b'{"instances": [[NaN, 0, 0, 0, 0, 0, 0, 0]]}', "NaN or Infinity"),
    (b'{"inputs": {"z": [[0, 0, 0, 0, 0, 0, 0, -Infinity]]}}', "NaN or Infinity"),
    (json.dumps({"instances": [[1e39] * D]}).encode(), "without loss of precision"),
    (json.dumps({"signature_name": "generate", "inputs": {"seed": 1, "count": -1}}).encode(), ">= 0"),
])
def test_bad_requests_get_400(http, body, fragment):
    r = http.post(f"{MODEL}:predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    assert fragment in r.json()["error"]
    _assert_alive(http)


@pytest.mark.parametrize("method, path, fragment", [
    ("POST", "/v1/models/nope:predict", "Servable not found for request: Latest(nope)"),
    ("POST", f"{MODEL}/versions/99:predict", "Servable not found for request: Specific(generator, 99)"),
    ("GET", "/v1/models/nope", "Could not find any versions of model nope"),
    ("GET", f"{MODEL}/versions/99", "Could not find version 99 of model generator"),
    ("GET", "/v1/models/nope/metadata", "Servable not found"),
    ("GET", f"{MODEL}/versions/99/metadata", "Specific(generator, 99)"),
])
def test_unknown_model_or_version_is_404(http, method, path, fragment):
    r = http.request(method, path, json={"instances": _z(1)} if method == "POST" else None)
    assert r.status_code == 404, r.text
    assert fragment in r.json()["error"]
    _assert_alive(http)


def test_malformed_urls_are_400(http):
    for method, path in (("GET", f"{MODEL}/versions/abc"), ("GET", f"{MODEL}:predict"),
                         ("POST", f"{MODEL}/metadata"), ("GET", "/v1/models")):
        r = http.request(method, path)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]
    assert http.post(f"{MODEL}:classify", json={}).status_code == 501


def test_body_too_large(http):
    big = {"instances": _z(1) * 2000}  # ~150 KB > the fixture's 64 KiB limit
    r = http.post(f"{MODEL}:predict", json=big)
    assert r.status_code == 400
    assert "larger than this server's limit of 65536 bytes" in r.json()["error"]
    _assert_alive(http)

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(40):
            yield b" " * 4096
    r = http.post(f"{MODEL}:predict", content=chunks())
    assert r.status_code == 400 and "limit" in r.json()["error"]
    _assert_alive(http)


def test_batch_too_large(http):
    r = http.post(f"{MODEL}:predict", json={"instances": _z(17)})
    assert r.status_code == 400
    assert "maximum input batch size 16" in r.json()["error"]
    r = http.post(f"{MODEL}:predict",
                  json={"signature_name": "generate", "inputs": {"seed": 0, "count": 17}})
    assert r.status_code == 400 and "maximum input batch size 16" in r.json()["error"]
    assert http.post(f"{MODEL}:predict", json={"instances": _z(16)}).status_code == 200


def test_config_and_health_endpoints(http):
    assert http.get(f"{MODEL}/config").json()["data"]["sample_rate"] == 8000
    assert http.get(f"{MODEL}/versions/1/config").status_code == 200
    health = http.get("/healthz")
    assert health.status_code == 200 and health.json()["version"] == "1"
    r = http.get("/no/such/page")
    assert r.status_code == 404 and "error" in r.json()
    page = http.get("/")
    assert page.status_code == 200 and "Generate" in page.text
    assert http.get("/static/app.js").status_code == 200
