"""Finds, loads and hot-swaps the versions of one model, as TF Serving's default policy does.

TF Serving watches `--model_base_path` for integer-named version directories and serves the
newest one (`latest {num_versions: 1}`), loading a new version in the background and only
then unloading the old one. `ModelStore` does the same: a background thread polls the base
path, and requests take a reference to the current `LoadedModel`, so a version that is
swapped out or deleted on disk never breaks a request that already holds it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from serving.json_tensor import InputSpec
from serving.status import ServingError, code_of_tf_error, invalid_argument, not_found, short_tf_message

log = logging.getLogger("serving")

_VERSION_DIR = re.compile(r"[0-9]+")  # TF Serving takes all-digit names only


def scan_versions(base: Path) -> dict[int, tuple]:
    """Complete version directories under `base`: {version: fingerprint of saved_model.pb}.

    A directory counts once it holds saved_model.pb (or .pbtxt): exporters write the graph
    last, so a directory still being written is skipped, as are temporary names that are
    not integers.
    """
    found = {}
    try:
        entries = list(os.scandir(base))
    except OSError:
        return found
    for entry in entries:
        if not _VERSION_DIR.fullmatch(entry.name):
            continue
        for pb in ("saved_model.pb", "saved_model.pbtxt"):
            try:
                st = os.stat(os.path.join(entry.path, pb))
            except OSError:
                continue
            found[int(entry.name)] = (pb, st.st_mtime_ns, st.st_size)
            break
    return found


class LoadedModel:
    """One loaded version: its callable signatures, their metadata and its assets config."""

    def __init__(self, name: str, version: int, path: Path):
        import tensorflow as tf

        self.name = name
        self.version = version
        self.path = path
        self._loaded = tf.saved_model.load(str(path), tags=["serve"])
        self.signatures = dict(self._loaded.signatures)
        self.input_specs = {
            sig: {k: InputSpec(np.dtype(v.dtype.as_numpy_dtype),
                               None if v.shape.rank is None else tuple(v.shape.as_list()))
                  for k, v in fn.structured_input_signature[1].items()}
            for sig, fn in self.signatures.items()}
        self.signature_defs = _signature_defs(path, self.signatures)
        self.config = _read_json(path / "assets.extra" / "config.json")

    def run(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs one signature; TF errors become `ServingError` with TF's code."""
        import tensorflow as tf

        fn = self.signatures[signature]
        try:
            tensors = {k: tf.convert_to_tensor(v, dtype=fn.structured_input_signature[1][k].dtype)
                       for k, v in inputs.items()}
            outputs = fn(**tensors)
        except tf.errors.OpError as e:
            raise ServingError(code_of_tf_error(e), short_tf_message(e)) from None
        except (TypeError, ValueError) as e:  # the signature's own argument checks
            raise invalid_argument(str(e).splitlines()[0]) from None
        return {k: v.numpy() for k, v in outputs.items()}


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("ignoring unreadable %s: %s", path, e)
        return None


def _signature_defs(path: Path, signatures: dict) -> dict:
    """SignatureDefs rendered as TF Serving's metadata API renders them.

    TF Serving prints the MetaGraphDef's SignatureDef protos to JSON (proto field names,
    defaults included, enums by name, int64 as strings), so we do the same from
    saved_model.pb; that also gives the true tensor names and `__saved_model_init_op`.
    If the proto cannot be read, the same shape is derived from the loaded signatures.
    """
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    try:
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((path / "saved_model.pb").read_bytes())
        graph = next(g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags)
        try:
            render = lambda m: json_format.MessageToDict(  # noqa: E731
                m, preserving_proto_field_name=True, including_default_value_fields=True)
            render(graph.signature_def[next(iter(graph.signature_def))])
        except TypeError:  # protobuf >= 5 renamed the flag
            render = lambda m: json_format.MessageToDict(  # noqa: E731
                m, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        return {k: render(graph.signature_def[k]) for k in sorted(graph.signature_def)}
    except Exception as e:  # noqa: BLE001 - any unreadable proto falls back, never fails a load
        log.info("rendering metadata from loaded signatures (%s)", e)
        return {k: signature_def_from_function(k, signatures[k]) for k in sorted(signatures)}


def _tensor_info(name: str, spec) -> dict:
    dims = None if spec.shape.rank is None else spec.shape.as_list()
    return {
        "name": name,
        "dtype": "DT_" + spec.dtype.name.upper().replace("FLOAT32", "FLOAT").replace(
            "FLOAT64", "DOUBLE").replace("FLOAT16", "HALF"),
        "tensor_shape": {"dim": [{"size": str(-1 if d is None else d), "name": ""}
                                 for d in (dims or [])],
                         "unknown_rank": dims is None},
    }


def signature_def_from_function(signature: str, fn) -> dict:
    """A SignatureDef-shaped dict from a loaded signature's structured specs.

    Input tensor names follow what tf.saved_model.save writes (`<signature>_<input>:0`);
    output names are graph internals that only the proto knows, so they are approximated
    as `StatefulPartitionedCall:<i>` in sorted output order.
    """
    inputs = fn.structured_input_signature[1]
    outputs = fn.structured_outputs
    return {
        "inputs": {k: _tensor_info(f"{signature}_{k}:0", inputs[k]) for k in sorted(inputs)},
        "outputs": {k: _tensor_info(f"StatefulPartitionedCall:{i}", outputs[k])
                    for i, k in enumerate(sorted(outputs))},
        "method_name": "tensorflow/serving/predict",
        "defaults": {},
    }


class ModelStore:
    """The versions of one model under a base path, with TF Serving-style states.

    Args:
      base_path: directory holding `<version>/saved_model.pb`.
      name: the model name clients use in URLs.
      poll_seconds: how often the background thread looks for new versions (TF Serving's
        --file_system_poll_wait_seconds, default 1).
      retry_seconds: how long to wait before retrying a version that failed to load with
        unchanged files (a changed saved_model.pb is retried at the next poll).
    """

    def __init__(self, base_path, name: str, poll_seconds: float = 1.0,
                 retry_seconds: float = 30.0):
        self.base = Path(base_path)
        self.name = name
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self._current: Optional[LoadedModel] = None
        self._states: dict[int, tuple[str, str, str]] = {}  # version -> state, code, message
        self._failed: dict[int, tuple[tuple, float]] = {}  # version -> fingerprint, when
        self._lock = threading.Lock()  # guards _current and _states (read by requests)
        self._load_lock = threading.Lock()  # one load at a time
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        if not self.base.is_dir():
            log.warning("model base path %s does not exist (yet); waiting for versions", self.base)

    # --------------------------------------------------------------- loading
    def poll(self) -> None:
        """Loads the newest complete version if it is not the one being served."""
        with self._load_lock:
            versions = scan_versions(self.base)
            if not versions:
                return  # like TF Serving, keep serving what is loaded if the base empties
            current = self._current
            candidates = sorted(versions, reverse=True)
            for version in candidates:
                if current is not None and version == current.version:
                    return
                if current is not None and version < current.version and \
                        current.version in versions:
                    return  # an older version never replaces a newer one still on disk
                failed = self._failed.get(version)
                if failed and failed[0] == versions[version] and \
                        time.monotonic() - failed[1] < self.retry_seconds:
                    continue  # keep trying older versions; this one is known bad
                if self._load(version, versions[version]):
                    return

    def _load(self, version: int, fingerprint: tuple) -> bool:
        with self._lock:
            self._states[version] = ("LOADING", "OK", "")
        started = time.monotonic()
        try:
            model = LoadedModel(self.name, version, self.base / str(version))
        except Exception as e:  # noqa: BLE001 - a bad version must not stop the server
            log.error("failed to load %s version %d: %s", self.name, version, e)
            self._failed[version] = (fingerprint, time.monotonic())
            with self._lock:
                self._states[version] = ("END", code_of_tf_error(e), short_tf_message(e))
            return False
        self._failed.pop(version, None)
        with self._lock:
            previous, self._current = self._current, model
            self._states[version] = ("AVAILABLE", "OK", "")
            if previous is not None:
                self._states[previous.version] = ("END", "OK", "")
        log.info("serving %s version %d (loaded in %.1f s)", self.name, version,
                 time.monotonic() - started)
        return True

    def start(self) -> None:
        """Starts the background poller (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="model-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the poller must outlive any one bad scan
                log.exception("polling %s failed", self.base)

    # --------------------------------------------------------------- lookups
    def get(self, name: str, version: Optional[int] = None) -> LoadedModel:
        """The model serving a request, or NOT_FOUND worded as TF Serving words it."""
        current = self._current
        if name != self.name or current is None or (version is not None and version != current.version):
            what = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise not_found(f"Servable not found for request: {what}")
        return current

    def status(self, name: str, version: Optional[int] = None) -> dict[str, Any]:
        """GetModelStatusResponse as JSON: newest version first, like TF Serving."""
        with self._lock:
            states = dict(self._states)
        if name != self.name or not states:
            raise not_found(f"Could not find any versions of model {name}")
        if version is not None:
            if version not in states:
                raise not_found(f"Could not find version {version} of model {name}")
            states = {version: states[version]}
        return {"model_version_status": [
            {"version": str(v), "state": s, "status": {"error_code": c, "error_message": m}}
            for v, (s, c, m) in sorted(states.items(), reverse=True)]}

    @property
    def current(self) -> Optional[LoadedModel]:
        return self._current
