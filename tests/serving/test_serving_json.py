"""serving.json_tensor without a server: TF Serving's JSON <-> tensor rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serving.json_tensor import COLUMNAR, ROW, InputSpec, decode_inputs, encode_outputs
from serving.status import ServingError, code_of_tf_error

Z = {"z": InputSpec(np.dtype("float32"), (None, 2))}
GEN = {"seed": InputSpec(np.dtype("int64"), ()), "count": InputSpec(np.dtype("int32"), ())}


def test_float_text_like_tf_serving():
    values = np.array([0.2, 1.0, -3.0, 1e-7, 16777216.0, 0.1 + 0.2, np.nan, np.inf, -np.inf],
                      np.float32)
    text = encode_outputs({"x": values}, COLUMNAR)
    # 6 significant digits when they round-trip in float32, else 9; ".0" on whole numbers;
    # NaN/Infinity tokens as TF Serving documents.
    assert text == ('{"outputs": [0.2,1.0,-3.0,1e-07,16777216.0,0.3,NaN,Infinity,-Infinity]}')
    assert encode_outputs({"x": np.array([0.1], np.float64)}, COLUMNAR) == '{"outputs": [0.1]}'
    noisy = np.array([0.123456789], np.float32)
    parsed = json.loads(encode_outputs({"x": noisy}, COLUMNAR))["outputs"]
    assert np.float32(parsed[0]) == noisy[0]  # exact round trip


def test_row_and_columnar_rendering():
    outputs = {"b": np.array([[1, 2], [3, 4]], np.int64), "a": np.array([True, False])}
    assert json.loads(encode_outputs(outputs, ROW)) == {
        "predictions": [{"a": True, "b": [1, 2]}, {"a": False, "b": [3, 4]}]}
    assert json.loads(encode_outputs(outputs, COLUMNAR)) == {
        "outputs": {"a": [True, False], "b": [[1, 2], [3, 4]]}}
    single = {"y": np.zeros((2, 0, 3), np.float32)}
    assert json.loads(encode_outputs(single, ROW)) == {"predictions": [[], []]}
    assert json.loads(encode_outputs({"s": np.array(2.5, np.float32)}, COLUMNAR)) == {"outputs": 2.5}
    strings = {"name": np.array([b"x"], object), "img_bytes": np.array([b"\x00\xff"], object)}
    assert json.loads(encode_outputs(strings, ROW)) == {
        "predictions": [{"img_bytes": {"b64": "AP8="}, "name": "x"}]}


@pytest.mark.parametrize("shape", [(3, 4, 2, 1), (2, 1, 1), (1, 3, 1, 2), (2, 1, 0, 1)])
def test_nesting_with_size_one_and_empty_dimensions(shape):
    """Spectrograms end in a size-1 channel axis: rendered as one-element lists."""
    arr = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    assert json.loads(encode_outputs({"x": arr}, COLUMNAR)) == {"outputs": arr.tolist()}
    assert json.loads(encode_outputs({"x": arr}, ROW)) == {"predictions": arr.tolist()}


def test_row_rendering_needs_a_shared_batch():
    with pytest.raises(ServingError, match="inconsistent batch size"):
        encode_outputs({"a": np.zeros((2, 1)), "b": np.zeros((3, 1))}, ROW)
    with pytest.raises(ServingError, match="no shape information"):
        encode_outputs({"a": np.float32(1).reshape(())}, ROW)


def test_decode_forms():
    fmt, arrays = decode_inputs({"instances": [[1, 2.5], [3, 4]]}, Z)
    assert fmt == ROW and arrays["z"].dtype == np.float32 and arrays["z"].shape == (2, 2)
    _, named = decode_inputs({"instances": [{"z": [1, 2.5]}, {"z": [3, 4]}]}, Z)
    np.testing.assert_array_equal(named["z"], arrays["z"])
    fmt, cols = decode_inputs({"inputs": {"seed": 3, "count": 2, "extra": 1}}, GEN)
    assert fmt == COLUMNAR and cols["seed"].shape == () and cols["count"].dtype == np.int32
    _, strings = decode_inputs({"inputs": ["a", {"b64": "AP8="}]},
                               {"s": InputSpec(np.dtype(object), (None,))})
    assert strings["s"].tolist() == [b"a", b"\x00\xff"]


@pytest.mark.parametrize("doc, specs, fragment", [
    ({"instances": [[1, True]]}, Z, "is not of expected type: float"),
    ({"instances": [[1, None]]}, Z, "Type: Null"),
    ({"instances": [[1, 2], [3]]}, Z, "unexpected size"),
    ({"instances": [[1, [2]]]}, Z, "unexpected level"),
    ({"instances": [1, [2, 3]]}, Z, "unexpected level"),
    ({"instances": [{"z": [1, 2]}, [3, 4]]}, Z, "Expecting object but got list"),
    ({"instances": [{"z": [1, 2], "q": 1}]}, Z, "keys must be equal to: z"),
    ({"instances": [1, 2]}, GEN, "expecting list of objects"),
    ({"inputs": [1, 2]}, GEN, "expecting an object"),
    ({"inputs": {"seed": 2 ** 63, "count": 1}}, GEN, "not of expected type: int64"),
    ({"inputs": {"seed": 1, "count": 2 ** 31}}, GEN, "not of expected type: int32"),
    ({"inputs": {"seed": "1", "count": 1}}, GEN, "Type: String"),
    ({"inputs": {"z": [[10 ** 400, 1]]}}, Z, "without loss of precision"),
    ({"instances": {"z": 1}}, Z, "to be an list/array"),
])
def test_decode_errors(doc, specs, fragment):
    with pytest.raises(ServingError) as info:
        decode_inputs(doc, specs)
    assert info.value.code == "INVALID_ARGUMENT" and info.value.http_status == 400
    assert fragment in info.value.message


def test_tf_error_codes():
    class InvalidArgumentError(Exception):
        pass

    class ResourceExhaustedError(Exception):
        pass

    assert code_of_tf_error(InvalidArgumentError()) == "INVALID_ARGUMENT"
    assert code_of_tf_error(ResourceExhaustedError()) == "RESOURCE_EXHAUSTED"
    assert code_of_tf_error(ValueError()) == "UNKNOWN"
