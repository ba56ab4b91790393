"""Fuzzing the REST API with hypothesis-generated requests over real HTTP: no 5xx, no crash,
every refusal a TF Serving-style {"error": "..."}, and the server answers the next request.

Named edge cases that test_serving_api.py does not already cover are listed explicitly at
the end, each with the words its 400 must contain.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MODEL = "/v1/models/generator"
D = 8  # the fixture model's latent size
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        yield client


def _check(r: httpx.Response, allowed=(200, 400)) -> dict:
    """A well-formed answer: an allowed status, JSON, and an error body on refusal."""
    assert r.status_code in allowed, (r.status_code, r.text[:500])
    assert r.headers["content-type"] == "application/json"
    body = json.loads(r.content)  # NaN/Infinity tokens are valid TF Serving JSON
    if r.status_code != 200:
        assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
    else:
        assert set(body) in ({"predictions"}, {"outputs"})
    return body


def _alive(http):
    r = http.post(f"{MODEL}:predict", json={"instances": [[0.1] * D]})
    assert r.status_code == 200, r.text


# Any JSON value at all, NaN and Infinity included.
scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2 ** 70, 2 ** 70)
           | st.floats() | st.text(max_size=8))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=5)
                           | st.dictionaries(st.text(max_size=6), c, max_size=4), max_leaves=20)
# Values near what the model takes: rows of numbers (or not) with wrong sizes and depths.
numbers = st.floats() | st.integers(-2 ** 40, 2 ** 40)
leaf = numbers | scalars
rows = st.lists(st.lists(leaf, min_size=D - 1, max_size=D + 1), min_size=0, max_size=20)
z_like = (rows | st.lists(st.lists(numbers, min_size=D, max_size=D), min_size=1, max_size=20)
          | st.lists(rows, max_size=2) | json_values)
counts = (st.integers(-5, 20) | st.integers(-2 ** 40, 2 ** 40) | st.floats() | scalars)
signatures = st.sampled_from(["serving_default", "audio", "generate", "", "nope"]) | json_values
inputs = (z_like | st.fixed_dictionaries({}, optional={"z": z_like, "seed": counts,
                                                        "count": counts, "extra": json_values}))
documents = st.fixed_dictionaries({}, optional={
    "signature_name": signatures,
    "instances": z_like | st.lists(st.fixed_dictionaries({"z": st.lists(numbers, min_size=D,
                                                                        max_size=D)}),
                                   max_size=3),
    "inputs": inputs,
    "unknown": json_values,
})


def _encode(doc) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


@FUZZ
@given(doc=documents | json_values)
def test_fuzzed_json_documents(http, doc):
    _check(http.post(f"{MODEL}:predict", content=_encode(doc),
                     headers={"content-type": "application/json"}))


@FUZZ
@given(doc=documents, cut=st.integers(0, 10_000), junk=st.binary(max_size=40))
def test_fuzzed_bytes(http, doc, cut, junk):
    """Truncated documents, stray bytes, invalid UTF-8."""
    body = _encode(doc)
    body = body[: cut % (len(body) + 1)] + junk
    _check(http.post(f"{MODEL}:predict", content=body,
                     headers={"content-type": "application/json"}))


@FUZZ
@given(method=st.sampled_from(["GET", "POST"]),
       path=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4),
       verb=st.sampled_from(["", ":predict", ":classify", ":nope", "/metadata", "/config"]))
def test_fuzzed_urls(http, method, path, verb):
    url = "/v1/models/" + "/".join(quote(p, safe=":") for p in path) + verb
    r = http.request(method, url, json={"instances": [[0.0] * D]} if method == "POST" else None)
    _check(r, allowed=(200, 400, 404, 501))


def test_server_is_alive_after_fuzzing(http):
    _alive(http)


@pytest.mark.parametrize("doc, fragment", [
    ({"instances": [[0.1] * D], "temperature": 0.5}, "Unknown field 'temperature'"),
    ({"signature_name": "generate", "inputs": {"seed": 1, "count": 2 ** 40}},
     "not of expected type: int32"),
    ({"signature_name": "generate", "inputs": {"seed": 1, "count": 100000}},
     "maximum input batch size 16"),
    ({"signature_name": "generate", "inputs": {"seed": 1, "count": 2.5}},
     "not of expected type: int32"),
    ({"signature_name": "generate", "inputs": {"seed": 1, "count": "3"}},
     "not of expected type: int32"),
    ({"signature_name": "generate", "inputs": {"seed": -2 ** 70, "count": 1}},
     "not of expected type: int64"),
    ({"signature_name": "generate", "inputs": {"seed": True, "count": 1}},
     "not of expected type: int64"),
    ({"instances": [[[0.1] * D]]}, "expects shape [-1,8]"),
    ({"instances": [[0.1] * (D - 1) + [[0.1]]]}, "unexpected level"),
    ({"instances": {"z": [[0.1] * D]}}, "list/array"),
    ({"inputs": {"z": [[0.1] * D], "w": [1.0]}, "signature_name": "audio", "x": 1},
     "Unknown field 'x'"),
    ({"instances": [[float("inf")] * D]}, "NaN or Infinity"),
])
def test_named_edge_cases_get_400(http, doc, fragment):
    r = http.post(f"{MODEL}:predict", content=_encode(doc),
                  headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert fragment in _check(r, allowed=(400,))["error"]
    _alive(http)


def test_huge_body_is_refused_and_the_next_request_served(http):
    z = np.zeros((30000, D)).tolist()  # ~1 MB, far above the fixture's 64 KiB limit
    r = http.post(f"{MODEL}:predict", json={"instances": z})
    assert "larger than this server's limit" in _check(r, allowed=(400,))["error"]
    _alive(http)
