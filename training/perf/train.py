"""The train section: steps/s of the real train step against PyTorch eager, and FLOP rates."""

from __future__ import annotations

import numpy as np

from training.perf.arms import TFArm, TorchArm, run_interleaved
from training.perf.common import (forward_macs, intra_op_threads, load_avg,
                                  profiled_forward_flops, step_flops, torch_available,
                                  variant_config)


def bench_train(quick: bool, matmul: dict) -> tuple[dict, dict]:
    """Returns (section, the TF arms of the cpu preset for the profile section)."""
    threads = intra_op_threads()
    have_torch = torch_available()
    plans = []  # (preset, overrides, rounds, steps per round, warm-up steps after the first)
    if quick:
        plans.append(("cpu", dict(batch=8, base_width=4), 1, {"simple": 2, "resnet9": 1}, 1))
        plans.append(("specgan", dict(batch=2, base_width=2), 1, {"simple": 1, "resnet9": 1},
                      0))
    else:
        plans.append(("cpu", {}, 4, {"simple": 6, "resnet9": 2}, 1))
        # The specgan preset's batch of 64 takes minutes per step on two cores: batch 8, and
        # the first step (taken when an arm is built) is the only warm-up.
        plans.append(("specgan", dict(batch=8), 2, {"simple": 2, "resnet9": 1}, 0))
    section = {"threads": threads, "torch": have_torch, "arms": [], "ratios": []}
    if not have_torch:
        section["note"] = ("PyTorch is not installed (pip install torch==2.13.0): PyTorch "
                           "arms skipped")
    keep = {}
    for preset_name, overrides, rounds, per_disc, warmup in plans:
        arms, steps, cfgs = {}, {}, {}
        for disc in ("simple", "resnet9"):
            cfg = variant_config(preset_name, disc, **overrides)
            cfgs[disc] = cfg
            arms[("tensorflow", disc)] = TFArm(cfg)
            steps[("tensorflow", disc)] = per_disc[disc]
            if have_torch:
                arms[("pytorch", disc)] = TorchArm(cfg, threads)
                steps[("pytorch", disc)] = per_disc[disc]
                if preset_name == "cpu" and threads > 1 and not quick:
                    # Sensitivity check: OpenMP's spinning threads suffer most on a loaded
                    # machine; one thread shows what PyTorch does without that.
                    arms[("pytorch-1thread", disc)] = TorchArm(cfg, 1)
                    steps[("pytorch-1thread", disc)] = per_disc[disc]
        load0 = load_avg()
        timings = run_interleaved(arms, rounds, steps, warmup=warmup)
        for (framework, disc), t in timings.items():
            cfg = cfgs[disc]
            b = cfg.train.batch_size
            macs = forward_macs(cfg)
            flops = step_flops(cfg, macs)
            arm = arms[(framework, disc)]
            row = {"preset": preset_name, "disc": disc, "framework": framework, "batch": b,
                   "size": cfg.model.height, "base_width": cfg.model.base_width,
                   "first_step_s": arm.trace_s, **t,
                   "steps_per_s": 1.0 / t["median_s"], "examples_per_s": b / t["median_s"],
                   "flops_per_step": flops, "gflops": flops / t["median_s"] / 1e9,
                   "fraction_of_matmul": flops / t["median_s"] / 1e9 / matmul["gflops"],
                   "gflops_per_cpu_s": flops / t["cpu_median_s"] / 1e9,
                   "load": [load0, load_avg()]}
            row["fraction_of_matmul_per_cpu_s"] = (row["gflops_per_cpu_s"]
                                                   / matmul["gflops_per_cpu_s"])
            if framework == "tensorflow":
                row["forward_macs"] = macs
                row["profiled_forward_flops"] = profiled_forward_flops(arm.gan, cfg)
                row["params"] = {"generator": int(sum(np.prod(v.shape) for v in
                                                      arm.gan.generator.trainable_weights)),
                                 "discriminator": int(sum(np.prod(v.shape) for v in
                                                          arm.gan.discriminator.trainable_weights))}
            else:
                row["params"] = arm.params
            section["arms"].append(row)
        if have_torch:
            for disc in ("simple", "resnet9"):
                tf_t, pt_t = timings[("tensorflow", disc)], timings[("pytorch", disc)]
                ratio = {"preset": preset_name, "disc": disc,
                         "tf_over_torch_examples_per_s": pt_t["median_s"] / tf_t["median_s"],
                         "tf_over_torch_best_step": pt_t["min_s"] / tf_t["min_s"],
                         "tf_over_torch_cpu_s": pt_t["cpu_median_s"] / tf_t["cpu_median_s"]}
                one = timings.get(("pytorch-1thread", disc))
                if one:
                    ratio["tf_over_torch_1thread_examples_per_s"] = (one["median_s"]
                                                                     / tf_t["median_s"])
                section["ratios"].append(ratio)
        if preset_name == "cpu":
            keep = {d: arms[("tensorflow", d)] for d in ("simple", "resnet9")}
        del arms
    return section, keep
