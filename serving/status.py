"""Errors with TensorFlow's canonical codes, mapped to HTTP statuses as TF Serving maps them.

TF Serving's REST layer never picks an HTTP status directly: every failure is a canonical
status (INVALID_ARGUMENT, NOT_FOUND, ...) turned into HTTP by one fixed table
(`ToHTTPStatusCode` in tensorflow_serving/model_servers/http_server.cc). We keep the same
indirection so clients that switch on TF Serving's statuses see the same ones here.
"""

from __future__ import annotations

import re

# TF Serving's table (http_server.cc). CANCELLED maps to nginx's 499 there too.
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


class ServingError(Exception):
    """A request failure carrying a canonical code; rendered as `{"error": message}`.

    Attributes:
      code: canonical code name, a key of `HTTP_STATUS`.
      message: the text sent to the client.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        if code not in HTTP_STATUS:
            code = "UNKNOWN"
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


def invalid_argument(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServingError:
    return ServingError("NOT_FOUND", message)


def code_of_tf_error(exc: BaseException) -> str:
    """Canonical code of a `tf.errors.OpError` from its class name.

    `InvalidArgumentError` -> `INVALID_ARGUMENT`; anything else -> `UNKNOWN`. Going by
    name keeps TensorFlow out of this module (the client side never imports it).
    """
    name = type(exc).__name__
    if not name.endswith("Error") or name == "OpError":
        return "UNKNOWN"
    code = re.sub(r"(?<!^)(?=[A-Z])", "_", name[: -len("Error")]).upper()
    return code if code in HTTP_STATUS else "UNKNOWN"


def short_tf_message(exc: BaseException) -> str:
    """The useful part of a TensorFlow runtime error message.

    Graph errors wrap the op's message ("assertion failed: [count must be at least 1]")
    in a header, a node location, a Python stack and `[[{{node ...}}]] [Op:...]` tags that
    only help the model's author; clients get the op's message.
    """
    text = getattr(exc, "message", None) or str(exc)
    kept = []
    for line in text.splitlines():
        if not line.strip() or line[0] in " \t" or _NOISE.match(line):
            continue
        line = _TAGS.sub("", line).strip()
        if line:
            kept.append(line)
    if kept:
        return " ".join(kept)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


_NOISE = re.compile(r"(Graph execution error:|Detected at node |<stack traces unavailable>|Node: )")
_TAGS = re.compile(r"\s*(\[\[\{\{.*?\}\}\]\]|\[Op:[^\]]*\]|\{\{function_node [^}]*\}\})")
