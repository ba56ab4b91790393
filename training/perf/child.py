"""The child-process protocol: one experiment arm per process, one marked JSON line back.

The parent runs `python -m training.perf --child SPEC_JSON`; the child prints its result as
`CHILD_MARK + json` on stdout, so TensorFlow's own output around it does not matter.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

from training.perf.arms import TFArm, run_interleaved
from training.perf.common import ROOT, import_tf, load_avg, variant_config

CHILD_MARK = "PERF_CHILD_JSON "


@contextlib.contextmanager
def keras_batchnorm():
    """Builds the models with Keras's own (unfused) BatchNorm training call."""
    from tfgan.models.batchnorm import FusedBatchNorm

    fusable = FusedBatchNorm._fusable
    FusedBatchNorm._fusable = lambda self, *args: False
    try:
        yield
    finally:
        FusedBatchNorm._fusable = fusable


def child_train(spec: dict) -> dict:
    """One experiment arm, in its own process (threads and oneDNN are fixed at start-up)."""
    tf = import_tf()
    variant = spec["variant"]
    if variant == "inter_op_1":
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if variant == "no_remapping":
        tf.config.optimizer.set_experimental_options({"remapping": False})
    cfg = variant_config("cpu", spec["disc"], batch=spec.get("batch"),
                         base_width=spec.get("base_width"))
    ctx = keras_batchnorm() if variant == "keras_batchnorm" else contextlib.nullcontext()
    with ctx:
        arm = TFArm(cfg, jit_compile=variant == "jit_compile",
                    precision="mixed_bfloat16" if variant == "mixed_bfloat16" else "float32")
    t = run_interleaved({"arm": arm}, rounds=1, steps={"arm": spec["steps"]},
                        warmup=spec.get("warmup", 2))["arm"]
    return {**t, "first_step_s": arm.trace_s, "load": load_avg()}


def run_child(spec: dict, timeout: float = 900) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    if spec["variant"] == "onednn_off":
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "training.perf", "--child", json.dumps(spec)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(CHILD_MARK):
            return {**json.loads(line[len(CHILD_MARK):]),
                    "process_s": time.perf_counter() - start}
    return {"error": (proc.stderr or proc.stdout)[-600:], "returncode": proc.returncode}


def child_main(spec_json: str) -> int:
    """The child's side: run the arm `spec_json` describes, print the marked result."""
    print(CHILD_MARK + json.dumps(child_train(json.loads(spec_json))), flush=True)
    return 0
