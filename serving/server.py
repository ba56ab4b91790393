"""A TensorFlow Serving REST-compatible server for the generator, with a small web page.

    python -m serving.server --model-base-path runs/export/generator [--port 8501]

Speaks TF Serving's REST API (model status, metadata, predict in row and columnar format,
`{"error": ...}` bodies with TF Serving's status codes) so the same clients work against
this server and against `tensorflow_model_server`. Additions that TF Serving lacks:

* `GET /v1/models/NAME[/versions/N]/config`: the version's assets.extra/config.json (the
  client and the page read the sample rate from it; against TF Serving they fall back).
* `GET /healthz`: 200 when a version is loaded, else 503.
* `GET /`: a page that generates samples and plays them.
* Limits: request body size (--max-body-bytes) and batch size (--max-batch, which also caps
  `generate`'s `count`), and NaN/Inf inputs are rejected; all with 400 (INVALID_ARGUMENT).
  So are unknown top-level fields of a predict request (a misspelt key is reported, not
  dropped); unknown names inside `inputs` are ignored, as TF Serving does.

Differences from TF Serving:

* NaN/Infinity are accepted in JSON but refused as model inputs (TF Serving passes them on).
* Input shapes are checked against the signature before running, with our own message
  (TF Serving leaves that to the runtime). Scalar inputs (`generate`) work only in the
  columnar format, exactly as in TF Serving, and the error says so.
* An oversized body gets 400, not 413: TF Serving only answers with statuses from its
  canonical-code table, where a refused request is INVALID_ARGUMENT.
* Only the newest version is served (TF Serving's default `latest {num_versions: 1}`). If
  the newest fails to load, the newest loadable version is served and the failure shows in
  the status API; TF Serving would serve nothing at startup in that case.
* No classify/regress (501), version labels, gRPC, or batching; responses are compact JSON
  (TF Serving pretty-prints) with the same structure and number formatting.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
from pathlib import Path
from typing import Optional

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.json_tensor import ROW, decode_inputs, encode_outputs, parse_json, signature_name
from serving.model_store import ModelStore
from serving.status import ServingError, invalid_argument

log = logging.getLogger("serving")

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_BATCH = 64
# Scalar integer inputs whose value is a batch size (the `generate` signature's `count`):
# the batch limit applies to them too, or one tiny request could ask for a huge batch.
BATCH_SIZE_INPUTS = ("count",)
# An oversized body is still read (and dropped) up to this much, so the client finishes
# sending and sees our 400 instead of a connection reset; beyond it we stop reading.
_DRAIN_LIMIT = 32 * 1024 * 1024

# The URL grammar of TF Serving's REST handler, with a `config` subresource added.
_PATH = re.compile(
    r"/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?::(?P<method>[^/:]+))?"
    r"(?:/(?P<sub>[^/:]+))?")


def _json(obj, status: int = 200) -> Response:
    # allow_nan: TF Serving's JSON carries NaN/Infinity tokens, Starlette's encoder refuses.
    return Response(json.dumps(obj, allow_nan=True), status_code=status,
                    media_type="application/json")


def _error(exc: ServingError) -> Response:
    return _json({"error": exc.message}, exc.http_status)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, or INVALID_ARGUMENT when it is larger than `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + _DRAIN_LIMIT:
        raise _too_large(int(declared), limit)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total <= limit:
            chunks.append(chunk)
        elif total > limit + _DRAIN_LIMIT:
            break
    if total > limit:
        raise _too_large(total, limit)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> ServingError:
    # 400, not 413: TF Serving only ever answers with statuses from its canonical-code
    # table, where a request the server refuses to process is INVALID_ARGUMENT.
    return invalid_argument(
        f"Request body of {size} bytes is larger than this server's limit of {limit} bytes "
        "(--max-body-bytes); send fewer instances per request")


def _check_inputs(sig: str, arrays: dict, specs: dict, fmt: str, max_batch: int) -> None:
    """Shape, finiteness and batch-size checks TF Serving leaves to the model or the batcher."""
    for name, arr in arrays.items():
        want = specs[name].shape
        if want is not None and (len(want) != arr.ndim or any(
                w is not None and w != g for w, g in zip(want, arr.shape))):
            shown = "[" + ",".join("-1" if w is None else str(w) for w in want) + "]"
            got = "[" + ",".join(str(g) for g in arr.shape) + "]"
            msg = f"Input '{name}' of signature '{sig}' expects shape {shown} but got {got}"
            if fmt == ROW and len(want) == 0:
                msg += (". Scalar inputs cannot be sent in row format: 'instances' always adds "
                        "a batch dimension (TF Serving behaves the same); use the columnar "
                        "format, e.g. {\"signature_name\": \"" + sig + "\", \"inputs\": {"
                        + ", ".join(f'"{k}": ...' for k in sorted(specs)) + "}}")
            raise invalid_argument(msg)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise invalid_argument(
                f"Input '{name}' of signature '{sig}' contains NaN or Infinity; only finite "
                "values are accepted")
        batch = None
        if arr.ndim >= 1 and want is not None and want and want[0] is None:
            batch = arr.shape[0]
        elif arr.ndim == 0 and arr.dtype.kind in "iu" and name in BATCH_SIZE_INPUTS:
            batch = int(arr)
            if batch < 0:
                raise invalid_argument(f"Input '{name}' of signature '{sig}' must be >= 0")
        if batch is not None and batch > max_batch:
            raise invalid_argument(
                f"Task size {batch} is larger than maximum input batch size {max_batch} "
                f"(input '{name}', --max-batch); split the request into smaller ones")


def _predict(store: ModelStore, name: str, version: Optional[int], body: bytes,
             max_batch: int) -> str:
    """The whole predict path; runs in a worker thread (parsing and TF are CPU-bound)."""
    doc = parse_json(body)
    sig = signature_name(doc) or "serving_default"
    model = store.get(name, version)
    if sig not in model.signatures:
        raise invalid_argument(f'Serving signature name: "{sig}" not found in signature def')
    specs = model.input_specs[sig]
    fmt, arrays = decode_inputs(doc, specs)
    _check_inputs(sig, arrays, specs, fmt, max_batch)
    return encode_outputs(model.run(sig, arrays), fmt)


def _metadata(store: ModelStore, name: str, version: Optional[int]) -> dict:
    model = store.get(name, version)
    return {"model_spec": {"name": name, "signature_name": "", "version": str(model.version)},
            "metadata": {"signature_def": {"signature_def": model.signature_defs}}}


def create_app(model_base_path, model_name: str = "generator",
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               max_batch: int = DEFAULT_MAX_BATCH, poll_seconds: float = 1.0) -> FastAPI:
    """Builds the app; the newest version under `model_base_path` is loaded before returning.

    Args:
      model_base_path: TF Serving's --model_base_path (holds `<version>/saved_model.pb`).
      model_name: the NAME in `/v1/models/NAME`.
      max_body_bytes: larger request bodies are refused with 400.
      max_batch: larger batches (and `count` values) are refused with 400.
      poll_seconds: how often to look for new versions.
    """
    store = ModelStore(model_base_path, model_name, poll_seconds=poll_seconds)
    store.poll()

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        store.start()
        yield
        store.stop()

    # No /docs: FastAPI's docs page pulls scripts from a CDN.
    app = FastAPI(title="Spectrogram GAN serving", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.store = store
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, exc):
        return _json({"error": str(exc.detail)}, exc.status_code)

    @app.exception_handler(Exception)
    async def server_fault(_request, exc):  # last resort; routes catch their own
        log.error("unhandled error", exc_info=exc)
        return _json({"error": f"Internal server error: {type(exc).__name__}"}, 500)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/healthz")
    async def healthz():
        current = store.current
        if current is None:
            return _json({"status": "unavailable", "model": model_name, "version": None,
                          "error": f"No version of model {model_name} is loaded"}, 503)
        return _json({"status": "ok", "model": model_name, "version": str(current.version)})

    @app.api_route("/v1/{rest:path}", methods=["GET", "POST"])
    async def rest_api(request: Request):
        try:
            return await _dispatch(request)
        except ServingError as e:
            return _error(e)
        except Exception as e:  # noqa: BLE001 - a request must never take the server down
            log.exception("error serving %s %s", request.method, request.url.path)
            return _json({"error": f"Internal server error: {type(e).__name__}: {e}"}, 500)

    async def _dispatch(request: Request) -> Response:
        path, method = request.url.path, request.method
        malformed = invalid_argument(f"Malformed request: {method} {path}")
        if path.rstrip("/") == "/v1/models" and method == "GET":
            raise invalid_argument("Missing model name in request.")
        m = _PATH.fullmatch(path)
        if not m:
            raise malformed
        name, label, verb, sub = m["name"], m["label"], m["method"], m["sub"]
        version = None
        if m["version"] is not None:
            if not re.fullmatch(r"[0-9]+", m["version"]):
                raise malformed
            version = int(m["version"])
            if version >= 2 ** 63:
                raise invalid_argument(f"Failed to convert version: {m['version']}")
        if label is not None:
            raise invalid_argument(f"Unrecognized servable version label: {label} "
                                   "(this server defines no version labels)")
        if method == "POST" and verb == "predict" and sub is None:
            body = await _read_body(request, max_body_bytes)
            text = await run_in_threadpool(_predict, store, name, version, body, max_batch)
            return Response(text, media_type="application/json")
        if method == "POST" and verb in ("classify", "regress") and sub is None:
            raise ServingError("UNIMPLEMENTED",
                               f"{verb} is not supported by this server; use :predict")
        if method != "GET" or verb is not None:
            raise malformed
        if sub is None:
            return _json(store.status(name, version))
        if sub == "metadata":
            return _json(_metadata(store, name, version))
        if sub == "config":
            model = store.get(name, version)
            if model.config is None:
                raise ServingError("NOT_FOUND", f"Model {name} version {model.version} has no "
                                   "assets.extra/config.json")
            return _json(model.config)
        raise malformed

    return app


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__.split("\n")[0])
    p.add_argument("--model-base-path", required=True,
                   help="directory holding <version>/saved_model.pb (TF Serving's layout)")
    p.add_argument("--model-name", default="generator", help="NAME in /v1/models/NAME")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind; the default keeps the server local (no auth!)")
    p.add_argument("--port", type=int, default=8501, help="TF Serving's REST port by default")
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                   help="largest batch (instances, leading dim, or generate's count)")
    p.add_argument("--poll-seconds", type=float, default=1.0,
                   help="how often to look for new versions "
                        "(TF Serving: --file_system_poll_wait_seconds)")
    p.add_argument("--log-level", default="info")
    return p


def main(argv=None) -> None:
    p = build_parser()
    args = p.parse_args(argv)
    if args.max_body_bytes < 1 or args.max_batch < 1 or args.poll_seconds <= 0:
        p.error("--max-body-bytes, --max-batch and --poll-seconds must be positive")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding %s: the server has no authentication", args.host)

    import uvicorn

    app = create_app(args.model_base_path, args.model_name, args.max_body_bytes,
                     args.max_batch, args.poll_seconds)
    if app.state.store.current is None:
        log.warning("no complete version under %s yet; serving 404 until one appears",
                    args.model_base_path)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower())


if __name__ == "__main__":
    main()
