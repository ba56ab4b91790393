"""perf.md from perf.json's dict: the targets, one table a section, the recommendations."""

from __future__ import annotations

TARGETS = {"train_vs_torch": 2.0, "pipeline_vs_librosa": 5.0, "pipeline_vs_train": 5.0,
           "serving_spec_p50_ms": 20.0, "serving_audio_p50_ms": 200.0}


def _f(x, digits=1):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:,.{digits}f}"


def summary_rows(r: dict) -> list[dict]:
    """Every target: value, threshold, met (None when not measured)."""
    rows = []
    train = r.get("train", {})
    for ratio in train.get("ratios", []):
        if ratio["preset"] != "cpu":
            continue
        v = ratio["tf_over_torch_examples_per_s"]
        rows.append({"target": f"train step examples/s, TF / PyTorch eager ({ratio['disc']})",
                     "value": v, "threshold": ">= 2.0", "met": v >= TARGETS["train_vs_torch"],
                     "also": f"best step {ratio['tf_over_torch_best_step']:.2f}x, "
                             f"CPU-seconds {ratio['tf_over_torch_cpu_s']:.2f}x"
                             + (f", vs PyTorch on 1 thread "
                                f"{ratio['tf_over_torch_1thread_examples_per_s']:.2f}x"
                                if "tf_over_torch_1thread_examples_per_s" in ratio else "")})
    pipe = r.get("pipeline", {})
    if "cold_vs_librosa" in pipe:
        for key, label in (("cold_vs_librosa", "cold"),
                           ("warm_vs_librosa", "warm (cached)")):
            v = pipe[key]
            rows.append({"target": f"pipeline {label} / librosa loop", "value": v,
                         "threshold": ">= 5", "met": v >= TARGETS["pipeline_vs_librosa"],
                         "also": ""})
    if "cold_vs_train" in pipe:
        for key, label in (("cold_vs_train", "cold"), ("warm_vs_train", "warm (cached)")):
            v = pipe[key]
            rows.append({"target": f"pipeline {label} / train step consumption (simple)",
                         "value": v, "threshold": ">= 5",
                         "met": v >= TARGETS["pipeline_vs_train"], "also": ""})
    for row in r.get("serving", {}).get("results", []):
        if row["batch"] != 1:
            continue
        spec = row["signature"] == "serving_default"
        limit = TARGETS["serving_spec_p50_ms" if spec else "serving_audio_p50_ms"]
        v = row["single_client"]["p50_ms"]
        rows.append({"target": f"serving batch-1 {'spectrogram' if spec else 'audio'} p50 ms "
                               "(one client)", "value": v, "threshold": f"< {limit:.0f}",
                     "met": v < limit,
                     "also": f"8 clients: p50 {row['concurrent']['p50_ms']:.1f} ms"})
    return rows


def recommendation_lines(r: dict) -> list[str]:
    """Library changes this run supports, each with its prediction and measured effect."""
    prof = r.get("profile", {})
    exp = r.get("experiments", {}).get("variants", {})
    pipe = r.get("pipeline", {})
    out = []

    def speedups(variant, invert=False):
        parts = []
        for disc, rows in exp.items():
            q = rows.get(variant, {})
            if "speedup_wall" in q:
                w, c = q["speedup_wall"], q["speedup_cpu"]
                if invert:
                    w, c = 1.0 / w, 1.0 / c
                parts.append(f"{disc} x{w:.2f} wall, x{c:.2f} CPU-seconds")
        return "; ".join(parts) or "not measured"

    if exp:
        out.append("- **Fused BatchNorm** (applied: `tfgan/models/batchnorm.py`, "
                   "`FusedBatchNormV3` in training calls). Measured against Keras's unfused "
                   "layer: " + speedups("keras_batchnorm", invert=True) + ".")
        out.append("- **mixed_bfloat16 on CPU** (`--precision mixed_bfloat16`; the default "
                   "stays float32, since bfloat16's 8-bit mantissa changes the numbers the "
                   "benchmark's results were measured with). Measured: "
                   + speedups("mixed_bfloat16") + ".")
        out.append("- **Keep `jit_compile=False`** on CPU (the library's default). Measured "
                   "with XLA: " + speedups("jit_compile") + ".")
        out.append("- **Keep oneDNN on** (TF's default on x86). Measured with it off: "
                   + speedups("onednn_off") + ".")
        out.append("- **Leave grappler's remapper on**: its `remapper failed ... LeakyReluGrad` "
                   "log line only means one fusion is skipped. Measured with remapping off: "
                   + speedups("no_remapping") + ".")
        out.append("- **Threads**: `inter_op_parallelism_threads=1` measured "
                   + speedups("inter_op_1") + "; no change recommended.")
    if pipe.get("cold_tfio_resample"):
        out.append("- **Resample with soxr in the graph decoder** (applied: "
                   "`decoders.resample_graph`, `tf.numpy_function` around soxr, instead of "
                   "tensorflow-io's `io_audio_resample`, whose build reports it was compiled "
                   "without SSE3/AVX). Measured cold pipeline "
                   f"x{pipe['cold_vs_cold_tfio']:.2f} "
                   f"({pipe['cold_tfio_resample']['examples_per_s']:,.0f} -> "
                   f"{pipe['cold']['examples_per_s']:,.0f} examples/s).")
    if pipe.get("warm_options"):
        gain = pipe["warm_options"]["examples_per_s"] / pipe["warm"]["examples_per_s"]
        out.append("- **tf.data options** (`deterministic=False`, `parallel_batch`): warm "
                   f"pipeline x{gain:.2f}; not applied: `deterministic=False` gives up the "
                   "reproducible example order (two runs with one seed train identically), "
                   "and the cached pipeline already feeds "
                   f"{pipe.get('warm_vs_train', float('nan')):.0f}x what the train step "
                   "consumes.")
    return (["", "## Changes and recommendations (measured in this run)", ""]
            + out) if out else []


def to_markdown(r: dict) -> str:
    m = r.get("machine", {})
    lines = ["# Performance report (`python -m training.perf`)", ""]
    lines.append(f"Machine: {m.get('platform', '?')}, {m.get('cpu_count', '?')} CPUs, "
                 f"TF {m.get('tensorflow', '?')} (intra-op threads "
                 f"{m.get('intra_op_threads', '?')}), PyTorch {m.get('torch') or 'not installed'}. "
                 f"Load average {m.get('load_start', '?')} at start, {r.get('load_end', '?')} "
                 f"at end. Float32 matmul: {_f(m.get('matmul', {}).get('gflops'))} GFLOP/s "
                 f"({_f(m.get('matmul', {}).get('gflops_per_cpu_s'))} GFLOP per CPU-second). "
                 f"Quick run: {r.get('quick')}. Total {_f(r.get('total_s'))} s.")
    lines += ["", "## Targets", "", "| target | value | threshold | met | notes |",
              "|---|---:|---|---|---|"]
    for row in summary_rows(r):
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        lines.append(f"| {row['target']} | {_f(row['value'], 2)} | {row['threshold']} | {met} "
                     f"| {row['also']} |")
    train = r.get("train", {})
    if train.get("arms"):
        lines += ["", "## Train step", "",
                  "Fixed in-memory batch, after warm-up, arms interleaved round by round. "
                  "GFLOP/s from analytic FLOPs (forward 1x, backward 2x); `% matmul` is the "
                  "achieved fraction of the measured float32 matmul rate.", "",
                  "| preset | D | framework | batch | ms/step (median) | best | CPU s/step | "
                  "steps/s | examples/s | GFLOP/step | GFLOP/s | % matmul |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for a in train["arms"]:
            lines.append(
                f"| {a['preset']} ({a['size']}, c={a['base_width']}) | {a['disc']} | "
                f"{a['framework']} | {a['batch']} | {_f(a['median_s'] * 1e3)} | "
                f"{_f(a['min_s'] * 1e3)} | {_f(a['cpu_median_s'], 3)} | "
                f"{_f(a['steps_per_s'], 2)} | "
                f"{_f(a['examples_per_s'])} | {_f(a['flops_per_step'] / 1e9, 2)} | "
                f"{_f(a['gflops'])} | {_f(100 * a['fraction_of_matmul'])} |")
        if train.get("ratios"):
            lines += ["", "TF / PyTorch at the same threads: by median examples/s (the "
                      "target), by best step, by CPU-seconds per step; and against PyTorch "
                      "on one thread (a sensitivity check).", "",
                      "| preset | D | TF / PyTorch (examples/s) | best step | CPU-seconds | "
                      "vs PyTorch 1 thread |", "|---|---|---:|---:|---:|---:|"]
            for q in train["ratios"]:
                lines.append(f"| {q['preset']} | {q['disc']} | "
                             f"{_f(q['tf_over_torch_examples_per_s'], 2)} | "
                             f"{_f(q['tf_over_torch_best_step'], 2)} | "
                             f"{_f(q['tf_over_torch_cpu_s'], 2)} | "
                             f"{_f(q.get('tf_over_torch_1thread_examples_per_s'), 2)} |")
        if train.get("note"):
            lines += ["", f"Note: {train['note']}"]
    pipe = r.get("pipeline", {})
    if pipe.get("cold"):
        lines += ["", "## Input pipeline", "",
                  f"Built-in dataset, {pipe['files']} files, cpu preset "
                  f"({pipe['sample_rate']} Hz), batch {pipe['batch']}; tensorflow-io decoders: "
                  f"{pipe['tfio']}. NumPy vs TF spectrogram max |diff| on one file: "
                  f"{pipe['numpy_vs_tf_max_abs_diff']:.2e}.", "",
                  "| arm | examples/s | first batch s | vs librosa | vs train step |",
                  "|---|---:|---:|---:|---:|"]
        lib = pipe["librosa_loop"]["examples_per_s"]
        train_rate = pipe.get("train_examples_per_s")
        for key, label in (("cold", "tf.data cold (cache off)"),
                           ("warm", "tf.data warm (cached)"),
                           ("warm_options", "tf.data warm, deterministic=False + parallel_batch"),
                           ("cold_tfio_resample",
                            "tf.data cold, tensorflow-io resampler (former default)")):
            if key not in pipe:
                continue
            v = pipe[key]["examples_per_s"]
            lines.append(f"| {label} | {_f(v)} | {_f(pipe[key]['first_batch_s'], 2)} | "
                         f"{_f(v / lib, 1)} | {_f(v / train_rate, 1) if train_rate else '-'} |")
        lines.append(f"| librosa + NumPy loop | {_f(lib)} | - | 1.0 | "
                     f"{_f(lib / train_rate, 2) if train_rate else '-'} |")
    prof = r.get("profile", {})
    if prof:
        lines += ["", "## Profile of the TF train step (cpu preset)", "",
                  "Kernel time by op category from a tf.profiler trace, summed over the "
                  "executor's threads (it exceeds the step's wall time: ops overlap, and a "
                  "loaded machine preempts them); the shares are what matter.", "",
                  "| D | category | ms/step | share |", "|---|---|---:|---:|"]
        for disc, p in prof.items():
            for cat, v in p.get("categories", {}).items():
                lines.append(f"| {disc} | {cat} | {_f(v['ms_per_step'])} | "
                             f"{_f(100 * v['share'])}% |")
    exp = r.get("experiments", {})
    if exp.get("variants"):
        lines += ["", "## Train-step experiments (cpu preset, child processes, ABAB order)", "",
                  "| D | variant | ms/step | best | CPU s/step | speed-up (median) | (best) | "
                  "(CPU) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for disc, rows in exp["variants"].items():
            for v, q in rows.items():
                if "median_s" not in q:
                    lines.append(f"| {disc} | {v} | error | | | | | |")
                    continue
                lines.append(f"| {disc} | {v} | {_f(q['median_s'] * 1e3)} | "
                             f"{_f(q['min_s'] * 1e3)} | {_f(q['cpu_median_s'], 3)} | "
                             f"{_f(q.get('speedup_wall'), 2)} | {_f(q.get('speedup_best'), 2)} | "
                             f"{_f(q.get('speedup_cpu'), 2)} |")
    srv = r.get("serving", {})
    if srv.get("results"):
        lines += ["", "## Serving (`serving.server`, loopback, JSON row format)", "",
                  f"Freshly initialised generator, cpu preset (c={srv['base_width']}), "
                  f"Griffin-Lim {srv['griffin_lim_iters']} iterations; "
                  f"{srv['clients']} concurrent clients.", "",
                  "| signature | batch | 1 client p50 ms | p99 ms | 8 clients p50 ms | p99 ms | "
                  "requests/s | examples/s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for row in srv["results"]:
            s, c = row["single_client"], row["concurrent"]
            lines.append(f"| {row['signature']} | {row['batch']} | {_f(s['p50_ms'])} | "
                         f"{_f(s['p99_ms'])} | {_f(c['p50_ms'])} | {_f(c['p99_ms'])} | "
                         f"{_f(c['requests_per_s'])} | {_f(c['examples_per_s'])} |")
        if srv.get("model_only"):
            lines += ["", "In-process: the signature alone, and the server's JSON encoding of "
                      "its outputs.", "",
                      "| signature/batch | model p50 ms | JSON encode ms | response bytes |",
                      "|---|---:|---:|---:|"]
            for k, v in srv["model_only"].items():
                lines.append(f"| {k} | {_f(v['model_p50_ms'])} | {_f(v['json_encode_p50_ms'])} | "
                             f"{v['response_bytes']:,} |")
    sc = r.get("scaling", {})
    if sc.get("rows"):
        lines += ["", "## Scaling (TF, simple D)", "",
                  "| sweep | batch | size | c | ms/step | ms/example | GFLOP/step | GFLOP/s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for q in sc["rows"]:
            lines.append(f"| {q['sweep']} | {q['batch']} | {q['size']} | {q['base_width']} | "
                         f"{_f(q['median_s'] * 1e3)} | {_f(q['ms_per_example'], 2)} | "
                         f"{_f(q['gflop_per_step'], 2)} | {_f(q['gflops'])} |")
        if sc.get("size_128_over_64"):
            q = sc["size_128_over_64"]
            lines.append(f"\n128x128 / 64x64: time x{q['time']:.2f}, FLOPs x{q['flops']:.2f}.")
    lines += recommendation_lines(r)
    gpu = r.get("gpu", {})
    lines += ["", "## GPU", ""]
    if gpu.get("skipped", True):
        lines.append(f"Skipped: {gpu.get('note', 'not run')}.")
    else:
        for p in gpu.get("precision", []):
            lines.append(f"- {p['disc']} {p['precision']}: {p['steps_per_s']:.2f} steps/s, "
                         f"{p['tflops']:.1f} TFLOP/s ({100 * p['fraction_of_peak']:.0f}% of peak)")
        for p in gpu.get("mirrored", []):
            lines.append(f"- MirroredStrategy x{p['replicas']}: {p['examples_per_s']:.0f} "
                         "examples/s")
    for name, err in r.get("errors", {}).items():
        lines.append(f"\nSection {name} failed: {err}")
    return "\n".join(lines) + "\n"
