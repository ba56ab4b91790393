"""`python -m training.perf --quick`: every section runs and reports numbers (no timing limits)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("machine", "pipeline", "train", "profile", "experiments", "serving", "scaling",
            "gpu")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("perf")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "training.perf", "--quick", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads((out / "perf.json").read_text()), (out / "perf.md").read_text()


def test_every_section_is_present_without_errors(quick_report):
    report, _ = quick_report
    assert report["quick"] is True and report["errors"] == {}
    for name in SECTIONS:
        assert name in report, name
    assert _positive(report["total_s"])
    m = report["machine"]
    assert m["intra_op_threads"] >= 1 and _positive(m["matmul"]["gflops"])


def test_pipeline_rates_and_ratios(quick_report):
    pipe = quick_report[0]["pipeline"]
    arms = ("cold", "warm", "librosa_loop") + (("cold_tfio_resample",) if pipe["tfio"] else ())
    for arm in arms:
        assert _positive(pipe[arm]["examples_per_s"]), arm
    for key in ("cold_vs_librosa", "warm_vs_librosa", "cold_vs_train", "warm_vs_train",
                "train_examples_per_s"):
        assert _positive(pipe[key]), key
    # The NumPy reference computes the same spectrogram as the TF graph.
    assert pipe["numpy_vs_tf_max_abs_diff"] < 1e-3


def test_train_arms_both_discriminators_both_presets(quick_report):
    train = quick_report[0]["train"]
    tf_arms = [a for a in train["arms"] if a["framework"] == "tensorflow"]
    assert {(a["preset"], a["disc"]) for a in tf_arms} == {
        (p, d) for p in ("cpu", "specgan") for d in ("simple", "resnet9")}
    for a in train["arms"]:
        for key in ("median_s", "min_s", "cpu_median_s", "steps_per_s", "examples_per_s",
                    "flops_per_step", "gflops", "fraction_of_matmul"):
            assert _positive(a[key]), (a["framework"], a["disc"], key)
    for a in tf_arms:
        # The analytic count agrees with tf.profiler's count of the forward graphs.
        profiled = a["profiled_forward_flops"]
        for net in ("generator", "discriminator"):
            assert abs(2 * a["forward_macs"][net] - profiled[net]) / profiled[net] < 0.05, net
    if train["torch"]:
        assert len(train["ratios"]) == 4
        for r in train["ratios"]:
            assert _positive(r["tf_over_torch_examples_per_s"])
        # Same architectures: equal trainable parameter counts in both frameworks.
        by_key = {(a["preset"], a["disc"], a["framework"]): a["params"] for a in train["arms"]}
        for p in ("cpu", "specgan"):
            for d in ("simple", "resnet9"):
                assert by_key[(p, d, "tensorflow")] == by_key[(p, d, "pytorch")], (p, d)
    else:
        assert "torch" in train["note"].lower()


def test_profile_experiments_scaling(quick_report):
    report = quick_report[0]
    for disc in ("simple", "resnet9"):
        prof = report["profile"][disc]
        assert _positive(prof["kernel_ms_per_step"]) and prof["top_ops"]
    variants = report["experiments"]["variants"]["simple"]
    assert set(variants) == {"baseline", "keras_batchnorm"}
    for v in variants.values():
        assert _positive(v["median_s"]) and _positive(v["speedup_wall"])
    rows = report["scaling"]["rows"]
    assert {r["sweep"] for r in rows} == {"batch", "size"}
    assert all(_positive(r["median_s"]) and _positive(r["ms_per_example"]) for r in rows)


def test_serving_latencies(quick_report):
    srv = quick_report[0]["serving"]
    got = {(r["signature"], r["batch"]) for r in srv["results"]}
    assert got == {(s, b) for s in ("serving_default", "audio") for b in (1, 16)}
    for r in srv["results"]:
        for mode in ("single_client", "concurrent"):
            q = r[mode]
            assert q["requests"] >= 1
            assert _positive(q["p50_ms"]) and q["p99_ms"] >= q["p50_ms"]
            assert _positive(q["requests_per_s"]) and _positive(q["examples_per_s"])
    for v in srv["model_only"].values():
        assert _positive(v["model_p50_ms"]) and _positive(v["json_encode_p50_ms"])


def test_gpu_section_skips_cleanly_without_gpu(quick_report):
    gpu = quick_report[0]["gpu"]
    if quick_report[0]["machine"]["gpus"] == 0:
        assert gpu["skipped"] is True and gpu["note"]


def test_markdown_has_the_tables(quick_report):
    report, md = quick_report
    assert md.startswith("# Performance report")
    for heading in ("## Targets", "## Train step", "## Input pipeline", "## Serving",
                    "## Scaling", "## GPU"):
        assert heading in md, heading
    assert "| target | value | threshold | met |" in md
    assert len(report["targets"]) >= 5
    for row in report["targets"]:
        assert _positive(row["value"]) and isinstance(row["met"], bool)
