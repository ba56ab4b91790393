"""The scaling section: seconds per step against batch size and spectrogram size."""

from __future__ import annotations

from training.perf.arms import TFArm, run_interleaved
from training.perf.common import forward_macs, step_flops, variant_config


def bench_scaling(quick: bool) -> dict:
    if quick:
        batches, sizes, width, steps = (2, 4), (64, 128), 2, 1
    else:
        batches, sizes, width, steps = (8, 16, 32, 64), (64, 128), None, 4
    rows = []
    arms = {}
    for b in batches:
        arms[("batch", b, 64)] = TFArm(variant_config("cpu", "simple", batch=b,
                                                      base_width=width))
    for s in sizes:
        b = batches[-2] if len(batches) > 2 else batches[-1]
        key = ("size", b, s)
        if ("batch", b, s) not in arms:
            arms[key] = TFArm(variant_config("cpu", "simple", batch=b, base_width=width,
                                             size=s))
    timings = run_interleaved(arms, rounds=2 if not quick else 1,
                              steps={k: steps for k in arms})
    for (kind, b, s), t in timings.items():
        cfg = arms[(kind, b, s)].cfg
        flops = step_flops(cfg, forward_macs(cfg))
        rows.append({"sweep": kind, "disc": "simple", "batch": b, "size": s,
                     "base_width": cfg.model.base_width, **t,
                     "ms_per_example": t["median_s"] / b * 1e3,
                     "gflop_per_step": flops / 1e9, "gflops": flops / t["median_s"] / 1e9})
    if len(sizes) > 1 and any(r["size"] == sizes[-1] for r in rows):
        b = batches[-2] if len(batches) > 2 else batches[-1]
        small = next(r for r in rows if r["size"] == sizes[0] and r["batch"] == b)
        large = next(r for r in rows if r["size"] == sizes[-1] and r["batch"] == b)
        size_ratio = {"time": large["median_s"] / small["median_s"],
                      "flops": large["gflop_per_step"] / small["gflop_per_step"]}
    else:
        size_ratio = {}
    return {"rows": rows, "size_128_over_64": size_ratio}
