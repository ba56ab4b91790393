"""`python -m training.perf`: the arithmetic and the report on known inputs, then one `--quick` run.

The quick run's timings depend on the machine, so its tests check what does not: how many
steps each timing holds, that every derived figure is the one its inputs give, that the FLOP
counts belong to the configuration that ran, and that the report shows what was measured.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from training.perf.cli import main
from training.perf.common import forward_macs, stats_of, step_flops
from training.perf.report import summary_rows, to_markdown

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("machine", "pipeline", "train", "profile", "experiments", "serving", "scaling",
            "gpu")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _cfg(size, base_width, disc, batch, latent_dim=100):
    """The fields the FLOP count reads (both presets draw z from 100 dimensions)."""
    return SimpleNamespace(model=SimpleNamespace(height=size, width=size, base_width=base_width,
                                                 disc=disc, latent_dim=latent_dim),
                           train=SimpleNamespace(batch_size=batch))


# ----------------------------------------------------------------------------- known inputs

def test_stats_of_known_walls():
    s = stats_of([0.5, 0.1, 0.4, 0.2, 0.3], cpus=[1.0, 6.0, 2.0])
    assert s["n"] == 5
    assert s["median_s"] == pytest.approx(0.3)
    assert s["min_s"] == pytest.approx(0.1)
    assert s["p90_s"] == pytest.approx(0.46)  # linear between 0.4 (p75) and 0.5 (p100)
    assert s["cpu_median_s"] == pytest.approx(2.0)
    assert "cpu_median_s" not in stats_of([0.2, 0.4])


def test_forward_macs_by_hand():
    # 64x64, c = 1, z of 100: k = log2(64 / 4) - 1 = 3 up-sampling blocks, 4x4x8 at the top.
    g = (100 * 4 * 4 * 8          # Dense z -> 4x4x8
         + 4 * 4 * 16 * 8 * 4     # ConvT 4x4 s2: 4x4x8 -> 8x8x4 (16 taps per input pixel)
         + 8 * 8 * 16 * 4 * 2     # 8x8x4 -> 16x16x2
         + 16 * 16 * 16 * 2 * 1   # 16x16x2 -> 32x32x1
         + 32 * 32 * 16 * 1 * 1)  # 32x32x1 -> 64x64x1
    simple = (32 * 32 * 16 * 1 * 1  # Conv 4x4 s2: 64x64x1 -> 32x32x1 (16 taps per output)
              + 16 * 16 * 16 * 1 * 2 + 8 * 8 * 16 * 2 * 4 + 4 * 4 * 16 * 4 * 8
              + 4 * 4 * 8)          # Flatten -> Dense(1)
    resnet9 = (64 * 64 * 9 * 1 * 1 + 64 * 64 * 9 * 1 * 2  # prep c, conv 2c (3x3, stride 1)
               + 2 * 32 * 32 * 9 * 2 * 2                  # pool, residual [2c, 2c]
               + 32 * 32 * 9 * 2 * 4                      # conv 4c
               + 16 * 16 * 9 * 4 * 8                      # pool, conv 8c
               + 2 * 8 * 8 * 9 * 8 * 8                    # pool, residual [8c, 8c]
               + 8)                                       # global max pool -> Dense(1)
    assert (g, simple, resnet9) == (53760, 41088, 405512)
    assert forward_macs(_cfg(64, 1, "simple", 3)) == {"generator": g, "discriminator": simple}
    assert forward_macs(_cfg(64, 1, "resnet9", 3)) == {"generator": g, "discriminator": resnet9}
    # A step: 4 G and 8 D passes per example, 2 FLOPs a multiply-accumulate, batch 3.
    cfg = _cfg(64, 1, "simple", 3)
    assert step_flops(cfg, forward_macs(cfg)) == 2 * (4 * g + 8 * simple) * 3


def _arm(**kw):
    row = {"preset": "cpu", "size": 64, "base_width": 32, "disc": "simple",
           "framework": "tensorflow", "batch": 32, "median_s": 0.125, "min_s": 0.1,
           "cpu_median_s": 0.25, "steps_per_s": 8.0, "examples_per_s": 256.0,
           "flops_per_step": 2.5e9, "gflops": 20.0, "fraction_of_matmul": 0.2}
    return {**row, **kw}


def _serving_row(sig, batch, p50, conc_p50):
    return {"signature": sig, "batch": batch,
            "single_client": {"p50_ms": p50, "p99_ms": 2 * p50},
            "concurrent": {"p50_ms": conc_p50, "p99_ms": 1.5 * conc_p50,
                           "requests_per_s": 100.0, "examples_per_s": 100.0 * batch}}


KNOWN = {
    "quick": False, "total_s": 421.0, "load_end": 1.5, "errors": {"scaling": "RuntimeError: boom"},
    "machine": {"platform": "Linux-test", "cpu_count": 2, "tensorflow": "2.16.2",
                "intra_op_threads": 2, "torch": "2.13.0", "load_start": 0.5,
                "matmul": {"gflops": 100.0, "gflops_per_cpu_s": 50.0}},
    "train": {"arms": [_arm(), _arm(framework="pytorch", median_s=0.25, min_s=0.2)],
              "ratios": [{"preset": "cpu", "disc": "simple", "tf_over_torch_examples_per_s": 2.5,
                          "tf_over_torch_best_step": 2.25, "tf_over_torch_cpu_s": 1.75},
                         {"preset": "cpu", "disc": "resnet9", "tf_over_torch_examples_per_s": 1.5,
                          "tf_over_torch_best_step": 1.25, "tf_over_torch_cpu_s": 1.1,
                          "tf_over_torch_1thread_examples_per_s": 0.8},
                         {"preset": "specgan", "disc": "simple",
                          "tf_over_torch_examples_per_s": 9.0, "tf_over_torch_best_step": 9.0,
                          "tf_over_torch_cpu_s": 9.0}]},
    "pipeline": {"files": 20, "sample_rate": 8000, "batch": 32, "tfio": False,
                 "numpy_vs_tf_max_abs_diff": 1.25e-4,
                 "cold": {"examples_per_s": 1500.0, "first_batch_s": 1.5},
                 "warm": {"examples_per_s": 6000.0, "first_batch_s": 0.25},
                 "librosa_loop": {"examples_per_s": 500.0},
                 "cold_vs_librosa": 3.0, "warm_vs_librosa": 12.0, "train_examples_per_s": 256.0,
                 "cold_vs_train": 1500.0 / 256.0, "warm_vs_train": 6000.0 / 256.0},
    "experiments": {"variants": {"simple": {
        "baseline": {"median_s": 0.04, "min_s": 0.03, "cpu_median_s": 0.05, "speedup_wall": 1.0,
                     "speedup_best": 1.0, "speedup_cpu": 1.0},
        "keras_batchnorm": {"median_s": 0.05, "min_s": 0.04, "cpu_median_s": 0.08,
                            "speedup_wall": 0.8, "speedup_best": 0.75, "speedup_cpu": 0.625},
        "jit_compile": {"description": "XLA", "error": "it broke"}}}},
    "serving": {"base_width": 32, "griffin_lim_iters": 32, "clients": 8,
                "results": [_serving_row("serving_default", 1, 12.5, 30.0),
                            _serving_row("audio", 1, 250.0, 400.0),
                            _serving_row("audio", 16, 900.0, 1800.0)]},
    "gpu": {"skipped": False, "precision": [{"disc": "simple", "precision": "mixed_float16",
                                             "steps_per_s": 12.5, "tflops": 3.5,
                                             "fraction_of_peak": 0.4}],
            "mirrored": [{"replicas": 2, "examples_per_s": 1234.0}]},
}


def test_summary_rows_judge_each_target():
    got = [(r["target"], r["value"], r["threshold"], r["met"]) for r in summary_rows(KNOWN)]
    assert got == [
        ("train step examples/s, TF / PyTorch eager (simple)", 2.5, ">= 2.0", True),
        ("train step examples/s, TF / PyTorch eager (resnet9)", 1.5, ">= 2.0", False),
        ("pipeline cold / librosa loop", 3.0, ">= 5", False),
        ("pipeline warm (cached) / librosa loop", 12.0, ">= 5", True),
        ("pipeline cold / train step consumption (simple)", 1500.0 / 256.0, ">= 5", True),
        ("pipeline warm (cached) / train step consumption (simple)", 6000.0 / 256.0, ">= 5",
         True),
        ("serving batch-1 spectrogram p50 ms (one client)", 12.5, "< 20", True),
        ("serving batch-1 audio p50 ms (one client)", 250.0, "< 200", False)]


def test_targets_at_their_thresholds():
    at = {"train": {"ratios": [{"preset": "cpu", "disc": "simple",
                                "tf_over_torch_examples_per_s": 2.0,
                                "tf_over_torch_best_step": 2.0, "tf_over_torch_cpu_s": 2.0}]},
          "pipeline": {"cold_vs_librosa": 5.0, "warm_vs_librosa": 5.0},
          "serving": {"results": [_serving_row("serving_default", 1, 20.0, 20.0),
                                  _serving_row("audio", 1, 200.0, 200.0)]}}
    # ">= 2.0" and ">= 5" include the threshold; "< 20" and "< 200" (latency) exclude it.
    assert [r["met"] for r in summary_rows(at)] == [True, True, True, False, False]


def test_markdown_shows_the_figures_it_is_given():
    lines = to_markdown(KNOWN).splitlines()
    assert lines[0] == "# Performance report (`python -m training.perf`)"
    assert ("Float32 matmul: 100.0 GFLOP/s (50.0 GFLOP per CPU-second). Quick run: False. "
            "Total 421.0 s.") in lines[2]
    for line in (
            "| train step examples/s, TF / PyTorch eager (simple) | 2.50 | >= 2.0 | yes "
            "| best step 2.25x, CPU-seconds 1.75x |",
            "| train step examples/s, TF / PyTorch eager (resnet9) | 1.50 | >= 2.0 | **no** "
            "| best step 1.25x, CPU-seconds 1.10x, vs PyTorch on 1 thread 0.80x |",
            "| serving batch-1 audio p50 ms (one client) | 250.00 | < 200 | **no** "
            "| 8 clients: p50 400.0 ms |",
            # ms/step, best, CPU s/step, steps/s, examples/s, GFLOP/step, GFLOP/s, % matmul
            "| cpu (64, c=32) | simple | tensorflow | 32 | 125.0 | 100.0 | 0.250 | 8.00 | 256.0 "
            "| 2.50 | 20.0 | 20.0 |",
            "| cpu | resnet9 | 1.50 | 1.25 | 1.10 | 0.80 |",
            "| specgan | simple | 9.00 | 9.00 | 9.00 | - |",
            # examples/s, first batch, vs librosa, vs train step
            "| tf.data cold (cache off) | 1,500.0 | 1.50 | 3.0 | 5.9 |",
            "| tf.data warm (cached) | 6,000.0 | 0.25 | 12.0 | 23.4 |",
            "| librosa + NumPy loop | 500.0 | - | 1.0 | 1.95 |",
            "| simple | keras_batchnorm | 50.0 | 40.0 | 0.080 | 0.80 | 0.75 | 0.62 |",
            "| simple | jit_compile | error | | | | | |",
            "| serving_default | 1 | 12.5 | 25.0 | 30.0 | 45.0 | 100.0 | 100.0 |",
            "| audio | 16 | 900.0 | 1,800.0 | 1,800.0 | 2,700.0 | 100.0 | 1,600.0 |",
            "- simple mixed_float16: 12.50 steps/s, 3.5 TFLOP/s (40% of peak)",
            "- MirroredStrategy x2: 1234 examples/s",
            "Section scaling failed: RuntimeError: boom"):
        assert line in lines, line
    md = "\n".join(lines)
    assert "max |diff| on one file: 1.25e-04." in md
    # Keras's BatchNorm ran at 0.8x the fused one's speed: the recommendation inverts it.
    assert "Measured against Keras's unfused layer: simple x1.25 wall, x1.60 CPU-seconds." in md
    assert "Measured with XLA: not measured." in md
    assert "9.00" not in md.split("## Train step")[0]  # the specgan ratio is not a target


def test_markdown_of_an_empty_or_skipped_report():
    md = to_markdown({"gpu": {"skipped": True, "note": "GPU arms run only with --gpu"}})
    assert "Skipped: GPU arms run only with --gpu." in md
    for heading in ("## Train step", "## Input pipeline", "## Serving", "## Scaling"):
        assert heading not in md
    assert "Skipped: not run." in to_markdown({})


def test_unknown_section_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--sections", "machine,warp", "--out", "/nonexistent/never-written"])
    assert e.value.code == 2
    assert "unknown sections: ['warp']" in capsys.readouterr().err


# ----------------------------------------------------------------------------- one quick run

@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("perf")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    # --gpu: without a GPU the section must say so; with one it must measure.
    proc = subprocess.run([sys.executable, "-m", "training.perf", "--quick", "--gpu", "--out",
                           str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads((out / "perf.json").read_text()), (out / "perf.md").read_text()


def _check_stats(t, n):
    assert t["n"] == n
    assert 0 < t["min_s"] <= t["median_s"] <= t["p90_s"]


def test_every_section_is_present_without_errors(quick_report):
    report, _ = quick_report
    assert report["quick"] is True and report["errors"] == {}
    assert report["sections"] == list(SECTIONS)
    for name in SECTIONS:
        assert name in report, name
    m = report["machine"]
    assert m["intra_op_threads"] >= 1
    assert m["matmul"]["n"] == 256 and m["matmul"]["reps"] >= 2
    assert _positive(m["matmul"]["gflops"])


def test_pipeline_counts_and_ratios(quick_report):
    pipe = quick_report[0]["pipeline"]
    assert pipe["batch"] == 8 and pipe["files"] > 0
    for arm, batches in (("cold", 2), ("warm", 4), ("warm_options", 4)):
        q = pipe[arm]
        assert q["batches"] == batches, arm
        assert q["examples_per_s"] == pytest.approx(batches * 8 / q["seconds"]), arm
    lib = pipe["librosa_loop"]
    assert lib["examples"] == 8
    assert lib["examples_per_s"] == pytest.approx(8 / lib["seconds"])
    assert pipe["cold_vs_librosa"] == pytest.approx(
        pipe["cold"]["examples_per_s"] / lib["examples_per_s"])
    assert pipe["warm_vs_librosa"] == pytest.approx(
        pipe["warm"]["examples_per_s"] / lib["examples_per_s"])
    if pipe["tfio"]:
        assert pipe["cold_tfio_resample"]["batches"] == 2
    # The train step's consumption is the cpu preset's simple TF arm.
    tf_simple = next(a for a in quick_report[0]["train"]["arms"]
                     if (a["preset"], a["disc"], a["framework"]) == ("cpu", "simple",
                                                                     "tensorflow"))
    assert pipe["train_examples_per_s"] == tf_simple["examples_per_s"]
    assert pipe["cold_vs_train"] == pytest.approx(
        pipe["cold"]["examples_per_s"] / tf_simple["examples_per_s"])
    # The NumPy reference computes the same spectrogram as the TF graph.
    assert pipe["numpy_vs_tf_max_abs_diff"] < 1e-3


def test_train_arms_time_the_planned_steps_of_the_planned_configs(quick_report):
    train = quick_report[0]["train"]
    # --quick: (batch, c, steps timed) per (preset, D).
    plan = {("cpu", "simple"): (8, 4, 2), ("cpu", "resnet9"): (8, 4, 1),
            ("specgan", "simple"): (2, 2, 1), ("specgan", "resnet9"): (2, 2, 1)}
    tf_arms = [a for a in train["arms"] if a["framework"] == "tensorflow"]
    assert {(a["preset"], a["disc"]) for a in tf_arms} == set(plan)
    for a in train["arms"]:
        batch, width, steps = plan[(a["preset"], a["disc"])]
        assert (a["batch"], a["base_width"]) == (batch, width)
        _check_stats(a, steps)
        cfg = _cfg(a["size"], width, a["disc"], batch)
        flops = step_flops(cfg, forward_macs(cfg))
        assert a["flops_per_step"] == flops
        assert a["steps_per_s"] == pytest.approx(1 / a["median_s"])
        assert a["examples_per_s"] == pytest.approx(batch / a["median_s"])
        assert a["gflops"] == pytest.approx(flops / a["median_s"] / 1e9)
        assert _positive(a["cpu_median_s"]) and _positive(a["fraction_of_matmul"])
    for a in tf_arms:
        assert a["first_step_s"] > a["median_s"]  # the first call traces the graph
        # The analytic count agrees with tf.profiler's count of the forward graphs.
        profiled = a["profiled_forward_flops"]
        for net in ("generator", "discriminator"):
            assert abs(2 * a["forward_macs"][net] - profiled[net]) / profiled[net] < 0.05, net
    if train["torch"]:
        by = {(a["preset"], a["disc"], a["framework"]): a for a in train["arms"]}
        assert len(train["ratios"]) == 4
        for r in train["ratios"]:
            tf_a, pt_a = by[(r["preset"], r["disc"], "tensorflow")], by[(r["preset"], r["disc"],
                                                                          "pytorch")]
            assert r["tf_over_torch_examples_per_s"] == pytest.approx(
                pt_a["median_s"] / tf_a["median_s"])
            # Same architectures: equal trainable parameter counts in both frameworks.
            assert tf_a["params"] == pt_a["params"], (r["preset"], r["disc"])
    else:
        assert "torch" in train["note"].lower() and train["ratios"] == []


def test_profile_finds_the_convolutions(quick_report):
    for disc in ("simple", "resnet9"):
        prof = quick_report[0]["profile"][disc]
        assert prof["steps"] == 1
        cats = prof["categories"]
        assert sum(c["ms_per_step"] for c in cats.values()) == pytest.approx(
            prof["kernel_ms_per_step"])
        assert sum(c["share"] for c in cats.values()) == pytest.approx(1.0)
        assert cats["convolution"]["ms_per_step"] > 0  # both networks are convolutional
        ms = [op["ms_per_step"] for op in prof["top_ops"]]
        assert ms == sorted(ms, reverse=True) and any("Conv2D" in op["op"]
                                                      for op in prof["top_ops"])


def test_experiments_ran_in_child_processes(quick_report):
    variants = quick_report[0]["experiments"]["variants"]["simple"]
    assert set(variants) == {"baseline", "keras_batchnorm"}
    for name, v in variants.items():
        assert "error" not in v, v.get("error")  # the child's marked JSON line came back
        assert v["runs"] == 1 and 0 < v["min_s"] <= v["median_s"], name
    base, other = variants["baseline"], variants["keras_batchnorm"]
    assert base["speedup_wall"] == base["speedup_best"] == base["speedup_cpu"] == 1.0
    assert other["speedup_wall"] == pytest.approx(base["median_s"] / other["median_s"])


def test_scaling_rows_and_the_size_ratio(quick_report):
    sc = quick_report[0]["scaling"]
    rows = {(r["sweep"], r["batch"], r["size"]): r for r in sc["rows"]}
    assert set(rows) == {("batch", 2, 64), ("batch", 4, 64), ("size", 4, 128)}
    for (_, b, s), r in rows.items():
        _check_stats(r, 1)
        cfg = _cfg(s, 2, "simple", b)
        flops = step_flops(cfg, forward_macs(cfg))
        assert r["gflop_per_step"] == pytest.approx(flops / 1e9)
        assert r["ms_per_example"] == pytest.approx(r["median_s"] / b * 1e3)
    small, large = rows[("batch", 4, 64)], rows[("size", 4, 128)]
    assert sc["size_128_over_64"]["flops"] == pytest.approx(
        large["gflop_per_step"] / small["gflop_per_step"])
    assert sc["size_128_over_64"]["time"] == pytest.approx(large["median_s"] / small["median_s"])


def test_serving_latencies(quick_report):
    srv = quick_report[0]["serving"]
    got = {(r["signature"], r["batch"]) for r in srv["results"]}
    assert got == {(s, b) for s in ("serving_default", "audio") for b in (1, 16)}
    for r in srv["results"]:
        assert 1 <= r["single_client"]["requests"] <= 3  # 3, fewer if its 5 s budget ran out
        assert r["concurrent"]["requests"] == 8  # 8 clients, one request each
        for mode in ("single_client", "concurrent"):
            q = r[mode]
            assert 0 < q["p50_ms"] <= q["p99_ms"]
            assert q["examples_per_s"] == pytest.approx(q["requests_per_s"] * r["batch"])
    assert set(srv["model_only"]) == {f"{s}/b{b}" for s in ("serving_default", "audio")
                                      for b in (1, 16)}
    for v in srv["model_only"].values():
        assert _positive(v["model_p50_ms"]) and v["response_bytes"] > 0


def test_gpu_section_skips_with_a_reason_or_measures(quick_report):
    report, md = quick_report
    gpu, n_gpus = report["gpu"], report["machine"]["gpus"]
    if n_gpus == 0:
        assert gpu == {"skipped": True, "note": "--gpu given but no GPU is visible to "
                                                "TensorFlow; GPU arms skipped"}
        assert f"Skipped: {gpu['note']}." in md
        return
    assert gpu["skipped"] is False and gpu["gpus"] == n_gpus
    assert set(gpu["peak"]) == {"float32", "float16"}
    assert all(p["n"] == 1024 and _positive(p["tflops"]) for p in gpu["peak"].values())
    assert {(p["disc"], p["precision"]) for p in gpu["precision"]} == {
        (d, p) for d in ("simple", "resnet9") for p in ("float32", "mixed_float16")}
    for p in gpu["precision"]:
        _check_stats(p, 2)
        assert p["batch"] == 8 and p["steps_per_s"] == pytest.approx(1 / p["median_s"])
        assert _positive(p["fraction_of_peak"])
    (mirrored,) = gpu["mirrored"]
    assert mirrored["replicas"] == n_gpus and mirrored["global_batch"] == 8 * n_gpus
    _check_stats(mirrored, 2)
    assert "- simple float32: " in md


def test_targets_and_markdown_match_the_measurements(quick_report):
    report, md = quick_report
    assert report["targets"] == summary_rows(report)
    assert len(report["targets"]) >= 4  # pipeline ratios and serving latencies at least
    for row in report["targets"]:
        op, limit = row["threshold"].split()
        assert row["met"] == (row["value"] >= float(limit) if op == ">=" else
                              row["value"] < float(limit)), row
        assert f"| {row['target']} | {row['value']:,.2f} | {row['threshold']} |" in md
    for heading in ("## Targets", "## Train step", "## Input pipeline",
                    "## Profile of the TF train step", "## Train-step experiments",
                    "## Serving", "## Scaling", "## GPU"):
        assert heading in md, heading
    for a in report["train"]["arms"]:
        assert (f"| {a['disc']} | {a['framework']} | {a['batch']} | "
                f"{a['median_s'] * 1e3:,.1f} |") in md
