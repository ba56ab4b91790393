"""The profile section: the train step's kernel time by op type, from a tf.profiler trace."""

from __future__ import annotations

import shutil
from pathlib import Path

from training.perf.common import import_tf, timed


BN_OPS = {"Mean", "SquaredDifference", "Sub", "Mul", "Rsqrt", "Tile", "Sum", "AddV2",
          "Reshape", "BroadcastTo", "StopGradient", "Square", "RealDiv", "AddN", "Neg"}


def _op_category(op_type: str) -> str:
    if "Conv2D" in op_type or "Conv3D" in op_type:
        return "convolution"
    if "MatMul" in op_type:
        return "matmul"
    if "BatchNorm" in op_type:
        return "fused_batchnorm"
    if op_type in ("Relu", "ReluGrad", "LeakyRelu", "LeakyReluGrad", "Tanh", "TanhGrad",
                   "MaxPool", "MaxPoolGrad", "Max", "_MklMaxPool", "_MklMaxPoolGrad"):
        return "activation_pooling"
    if op_type.startswith("Assign") or op_type in ("ReadVariableOp", "Sqrt", "Pow", "L2Loss",
                                                   "ResourceApplyAdam"):
        return "optimizer_state"
    if op_type in BN_OPS:
        return "elementwise_reductions"
    return "other"


def profile_step(arm, steps: int, logdir: Path) -> dict:
    """Kernel time by op type over `steps` train steps, from a tf.profiler trace."""
    tf = import_tf()
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError:
        return {"error": "xplane_pb2 not importable"}
    shutil.rmtree(logdir, ignore_errors=True)
    tf.profiler.experimental.start(str(logdir))
    try:
        wall, cpu, _ = timed(lambda: [arm.step() for _ in range(steps)])
    finally:
        tf.profiler.experimental.stop()
    files = sorted(logdir.rglob("*.xplane.pb"))
    if not files:
        return {"error": "no trace written"}
    space = xplane_pb2.XSpace()
    space.ParseFromString(files[-1].read_bytes())
    by_type, counts = {}, {}
    for plane in space.planes:
        names = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for ev in line.events:
                name = names[ev.metadata_id].name
                if name.startswith("ExecutorState"):
                    continue
                op_type = name.rsplit(":", 1)[-1]
                by_type[op_type] = by_type.get(op_type, 0.0) + ev.duration_ps / 1e9 / steps
                counts[op_type] = counts.get(op_type, 0) + 1
    total = sum(by_type.values()) or 1.0
    cats = {}
    for op_type, ms in by_type.items():
        cat = _op_category(op_type)
        cats[cat] = cats.get(cat, 0.0) + ms
    top = sorted(by_type.items(), key=lambda kv: -kv[1])[:15]
    return {"steps": steps, "wall_ms_per_step": wall / steps * 1e3,
            "cpu_ms_per_step": cpu / steps * 1e3, "kernel_ms_per_step": total,
            "categories": {k: {"ms_per_step": v, "share": v / total}
                           for k, v in sorted(cats.items(), key=lambda kv: -kv[1])},
            "top_ops": [{"op": k, "ms_per_step": v, "share": v / total,
                         "calls_per_step": counts[k] / steps} for k, v in top]}


def bench_profile(quick: bool, arms: dict, tmp: Path) -> dict:
    return {disc: profile_step(arm, 1 if quick else (4 if disc == "simple" else 2),
                               tmp / f"profile-{disc}")
            for disc, arm in arms.items()}
