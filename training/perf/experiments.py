"""The experiments section: train-step variants, each in a child process, in ABAB order."""

from __future__ import annotations

import numpy as np

from training.perf.child import run_child


EXPERIMENTS = {
    "baseline": "the library as it is (jit_compile=False, Keras BatchNorm, default threads)",
    "jit_compile": "tf.function(train_step, jit_compile=True): XLA on CPU",
    "no_remapping": "tf.config.optimizer.set_experimental_options({'remapping': False})",
    "keras_batchnorm": "Keras's unfused BatchNorm instead of tfgan's FusedBatchNorm",
    "mixed_bfloat16": "mixed_bfloat16 policy (this CPU has AVX512_BF16)",
    "inter_op_1": "tf.config.threading.set_inter_op_parallelism_threads(1)",
    "onednn_off": "TF_ENABLE_ONEDNN_OPTS=0 (Eigen kernels instead of oneDNN)",
}


def bench_experiments(quick: bool) -> dict:
    if quick:
        plan = {"simple": ["baseline", "keras_batchnorm"]}
        base = dict(batch=8, base_width=4, steps=2, warmup=1)
        reps = 1
    else:
        plan = {"simple": list(EXPERIMENTS), "resnet9": ["baseline", "keras_batchnorm",
                                                         "mixed_bfloat16", "inter_op_1"]}
        base = dict(steps=6, warmup=2)
        reps = 2
    results = {}
    for disc, variants in plan.items():
        spec_base = dict(base, disc=disc)
        if disc == "resnet9" and not quick:
            spec_base["steps"] = 2
        runs = {v: [] for v in variants}
        specs = []
        for _ in range(reps):  # ABAB...: drift in the machine's load hits every variant
            for v in variants:
                spec = dict(spec_base, variant=v)
                if v == "jit_compile" and not quick:
                    spec["steps"] = 3
                specs.append(spec)
        if quick:  # timings do not matter in a quick run: start the children together
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(specs)) as pool:
                done = list(pool.map(run_child, specs))
        else:
            done = [run_child(spec) for spec in specs]
        for spec, result in zip(specs, done):
            runs[spec["variant"]].append(result)
        rows = {}
        for v, rs in runs.items():
            good = [r for r in rs if "median_s" in r]
            if not good:
                rows[v] = {"description": EXPERIMENTS[v], "error": rs[0].get("error", "")}
                continue
            rows[v] = {"description": EXPERIMENTS[v],
                       "median_s": float(np.median([r["median_s"] for r in good])),
                       "min_s": float(min(r["min_s"] for r in good)),
                       "cpu_median_s": float(np.median([r["cpu_median_s"] for r in good])),
                       "first_step_s": float(np.median([r["first_step_s"] for r in good])),
                       "runs": len(good), "load": [r["load"] for r in good]}
        if "median_s" in rows.get("baseline", {}):
            b = rows["baseline"]
            for v, r in rows.items():
                if "median_s" in r:
                    r["speedup_wall"] = b["median_s"] / r["median_s"]
                    r["speedup_best"] = b["min_s"] / r["min_s"]
                    r["speedup_cpu"] = b["cpu_median_s"] / r["cpu_median_s"]
        results[disc] = rows
    return {"preset": "cpu", "batch": base.get("batch", 32), "variants": results}
