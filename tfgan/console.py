"""Keeps TensorFlow's known, harmless native log lines off a command's console.

TensorFlow's C++ runtime writes to file descriptor 2 directly, past Python's
`sys.stderr`, so these lines cannot be caught in Python. `quiet_native_logs`, called by
each command line entry point before TensorFlow is imported, routes descriptor 2 through
a pipe and a thread that drops the lines in `NOISE` and passes every other byte through.
TensorFlow's own level (`TF_CPP_MIN_LOG_LEVEL`) defaults to 2, errors only; a value the
user sets is kept, and lines it lets through still pass the filter.

Only known lines are dropped, each with the reason it is safe to: an unknown error line,
a Python traceback or a warning from the project reaches the console as before.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

NOISE = tuple(re.compile(p) for p in (
    # The CUDA plugins of the TensorFlow wheel register twice at import and say so at
    # error level, with or without a GPU (tensorflow/tensorflow#62075, openxla/xla#20803).
    r"Unable to register cu(FFT|DNN|BLAS) factory: Attempting to register factory",
    # TensorFlow's grappler remapper fuses Conv2D + BiasAdd + LeakyRelu in the training
    # graph although the gradient's LeakyReluGrad still reads the BiasAdd output, then
    # rejects its own rewrite and keeps the graph as it was: a TensorFlow bug, met by any
    # conv + LeakyReLU model trained with a GradientTape (e.g. jrayzhang6/CFR-RL#7). The
    # step is correct, only unfused; turning the remapper off altogether measured x0.98
    # (README, "Performance"), so the fusions it fails to make are worth nothing here.
    r"remapper failed: INVALID_ARGUMENT: Mutation::Apply error: fanout '[^']*LeakyReluGrad",
    # oneDNN's string kernels are not built into this wheel; TensorFlow uses its own
    # (Eigen) ones instead, as the line says.
    r"oneDNN supports DT_STRING only on platforms with AVX-512",
))

_state: dict = {}


def is_noise(line: str) -> bool:
    return any(p.search(line) for p in NOISE)


def quiet_native_logs() -> None:
    """Filters descriptor 2 for the rest of the process (idempotent)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if _state:
        return
    sys.stderr.flush()
    console = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    thread = threading.Thread(target=_pump, args=(read_fd, console), daemon=True,
                              name="native-log-filter")
    thread.start()
    _state.update(console=console, thread=thread)
    atexit.register(_restore)


def _pump(read_fd: int, console: int) -> None:
    pending = b""
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        pending += chunk
        # Lines end at \n or \r (a progress bar redraws with \r); a partial line waits.
        cut = max(pending.rfind(b"\n"), pending.rfind(b"\r")) + 1
        complete, pending = pending[:cut], pending[cut:]
        out = b"".join(line for line in complete.splitlines(keepends=True)
                       if not is_noise(line.decode("utf-8", "replace")))
        if out:
            os.write(console, out)
    if pending:
        os.write(console, pending)
    os.close(read_fd)


def _restore() -> None:
    """At exit: the console back on descriptor 2, and everything in the pipe written."""
    sys.stderr.flush()
    os.dup2(_state["console"], 2)  # closes the pipe's last writer in this process
    _state["thread"].join(timeout=5)
