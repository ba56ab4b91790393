"""`main` of `python -m training.perf`: the flags, the sections in order, perf.json and perf.md."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from training.perf.child import child_main
from training.perf.common import load_avg
from training.perf.experiments import bench_experiments
from training.perf.gpu import bench_gpu
from training.perf.machine import bench_machine
from training.perf.pipeline import bench_pipeline
from training.perf.profile import bench_profile
from training.perf.report import summary_rows, to_markdown
from training.perf.scaling import bench_scaling
from training.perf.serving import bench_serving
from training.perf.train import bench_train

SECTIONS = ("machine", "pipeline", "train", "profile", "experiments", "serving", "scaling", "gpu")


def main(argv=None) -> int:
    import training.perf

    p = argparse.ArgumentParser(prog="python -m training.perf",
                                description=training.perf.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/perf", help="where perf.json and perf.md go")
    p.add_argument("--quick", action="store_true", help="tiny models and counts (tests)")
    p.add_argument("--gpu", action="store_true", help="run the GPU arms (skipped without one)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(args.child)
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {sorted(unknown)}")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="tfgan-perf-"))
    report = {"quick": args.quick, "sections": wanted, "errors": {}}
    start = time.perf_counter()
    tf_arms = {}

    def section(name, fn):
        if name not in wanted:
            return
        print(f"[perf] {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            report[name] = fn()
        except Exception as e:  # noqa: BLE001 - one broken section must not lose the rest
            import traceback

            traceback.print_exc()
            report["errors"][name] = f"{type(e).__name__}: {e}"[:500]
        print(f"[perf] {name} done in {time.perf_counter() - t0:.1f} s", flush=True)

    try:
        report["machine"] = bench_machine(args.quick)
        section("pipeline", lambda: bench_pipeline(args.quick, tmp))

        def train():
            result, arms = bench_train(args.quick, report["machine"]["matmul"])
            tf_arms.update(arms)
            return result

        section("train", train)
        if tf_arms:
            section("profile", lambda: bench_profile(args.quick, tf_arms, tmp))
        tf_arms.clear()
        section("experiments", lambda: bench_experiments(args.quick))
        section("serving", lambda: bench_serving(args.quick, tmp))
        section("scaling", lambda: bench_scaling(args.quick))
        section("gpu", lambda: bench_gpu(args.gpu, args.quick))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pipe, train = report.get("pipeline"), report.get("train")
    if pipe and train:
        simple = [a for a in train["arms"] if a["preset"] == "cpu" and a["disc"] == "simple"
                  and a["framework"] == "tensorflow"]
        if simple:
            rate = simple[0]["examples_per_s"]
            pipe["train_examples_per_s"] = rate
            pipe["cold_vs_train"] = pipe["cold"]["examples_per_s"] / rate
            pipe["warm_vs_train"] = pipe["warm"]["examples_per_s"] / rate
    report["load_end"] = load_avg()
    report["total_s"] = time.perf_counter() - start
    report["targets"] = summary_rows(report)
    (out_dir / "perf.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (out_dir / "perf.md").write_text(to_markdown(report))
    print(to_markdown(report))
    print(f"Wrote {out_dir / 'perf.json'} and {out_dir / 'perf.md'}")
    return 1 if report["errors"] else 0

