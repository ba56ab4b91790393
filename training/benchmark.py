"""python -m training.benchmark: the simple CNN discriminator against ResNet-9.

Trains every arm with the same data, seed, step budget and generator, scores each with
`tfgan.eval.evaluate_run` (one shared classifier and real reference), and writes
OUT/report.md, OUT/report.json and PNG plots (training/report.py). Runs live under
OUT/runs/<arm> (or --runs-dir); a finished run with the same settings is reused, so a report can be
rewritten without retraining, and an interrupted benchmark resumes where it stopped.

Arms are names from ARMS or `NAME=FLAGS` with training.run's model and balance flags,
e.g. `--arms simple "resnet9-sn=--disc resnet9 --spectral-norm"`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time

if __name__ == "__main__":  # before TensorFlow is imported: see tfgan/console.py
    from tfgan.console import quiet_native_logs

    quiet_native_logs()

from tfgan.eval.cli import add_scoring_args, classifier_options  # noqa: E402
from training import cli  # noqa: E402

# The four arms of the issue. The balanced arm's controls were chosen by a 400-step pilot
# (docs/benchmark/pilot.md): label smoothing, DiffAugment and annealed instance noise each
# temper ResNet-9's overconfidence and together cut the share of the run that one side
# won outright from 90% to 34%. Spectral norm did nothing (BatchNorm follows every
# convolution), EMA made the samples worse at this budget, and R1 kept ResNet-9 in its
# initial state of calling everything real for most (gamma 1) or all (gamma 10) of the run.
# The arms the project's question compares, by their part in it; the report reads these
# names (through its meta) rather than knowing them.
ROLES = {"simple": "simple", "strong": "resnet9", "lr_cut": "resnet9-dlr0.1"}
ARMS = {
    ROLES["simple"]: "--disc simple",
    ROLES["strong"]: "--disc resnet9",
    ROLES["lr_cut"]: "--disc resnet9 --d-lr-scale 0.1",
    "resnet9-balanced": ("--disc resnet9 --label-smoothing 0.2 --augment shift,tmask,fmask "
                         "--instance-noise 0.5"),
}
# Sized for two CPU cores: all four arms and their evaluation in under 30 minutes.
DEFAULT_STEPS = 1000
DEFAULT_BASE_WIDTH = 8
DEFAULT_BATCH = 32
# Settings every arm must share; an arm's flags may not change them.
SHARED = ("steps", "batch_size", "base_width", "seed", "data", "log_every", "sample_every",
          "checkpoint_every", "precision", "strategy", "scale", "griffin_lim_iters")


ARM_RECORD = "benchmark_arm.json"  # in each arm's run directory


class BenchmarkError(ValueError):
    """Arms or an output folder that cannot be used as asked."""


class Stopped(Exception):
    """A stop signal (SIGINT, SIGTERM) ended an arm's training after a checkpoint."""

    def __init__(self, arm: str, signal_name: str):
        super().__init__(f"stopped by {signal_name} while training {arm}; run the same "
                         "command again to resume")
        self.signal_name = signal_name


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m training.benchmark",
        description="Train the simple and ResNet-9 discriminators (plus a 10x lower D lr and "
                    "balance controls) with the same data, seed, budget and generator; "
                    "write OUT/report.md, report.json and plots.")
    p.add_argument("--data", metavar="DIR", help="audio folder (default: the built-in dataset)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=f"steps per arm (default {DEFAULT_STEPS}, sized for 2 CPU cores; "
                        "raise it on a GPU)")
    p.add_argument("--out", default="runs/benchmark", metavar="DIR",
                   help="where report.md, report.json and the PNGs go (default runs/benchmark)")
    p.add_argument("--runs-dir", metavar="DIR",
                   help="where the arms' run directories go (default OUT/runs)")
    p.add_argument("--arms", nargs="+", default=list(ARMS), metavar="ARM",
                   help=f"arms to run: names from {', '.join(ARMS)} or NAME=FLAGS")
    p.add_argument("--base-width", type=int, default=DEFAULT_BASE_WIDTH, metavar="C",
                   help=f"base width c of G and D (default {DEFAULT_BASE_WIDTH})")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                   help=f"batch size (default {DEFAULT_BATCH})")
    p.add_argument("--seed", type=int, default=0, help="seed shared by all arms (default 0)")
    p.add_argument("--preset", choices=("cpu", "specgan"), default="cpu",
                   help="spectrogram shapes: cpu 64x64 (default) or specgan 128x128")
    p.add_argument("--log-every", type=int, help="steps per metrics record (default steps/100)")
    add_scoring_args(p)
    return p.parse_args(argv)


def _arm_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="arm", add_help=False, exit_on_error=False)
    cli.add_model_flags(p)
    cli.add_train_flags(p)
    return p


def parse_arm(spec: str) -> tuple[str, str, argparse.Namespace]:
    """`name` or `name=FLAGS` -> (name, flags, parsed flags)."""
    name, sep, flags = spec.partition("=")
    name = name.strip()
    if not sep:
        if name not in ARMS:
            raise BenchmarkError(f"unknown arm {name!r}; expected one of {', '.join(ARMS)} "
                                 "or NAME=FLAGS")
        flags = ARMS[name]
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise BenchmarkError(f"an arm name may hold letters, digits and -_. only: {spec!r}")
    try:
        args, unknown = _arm_parser().parse_known_args(shlex.split(flags))
    except (argparse.ArgumentError, SystemExit) as e:
        raise BenchmarkError(f"arm {name!r}: bad flags {flags!r} ({e})") from None
    if unknown:
        raise BenchmarkError(f"arm {name!r}: unknown flags {unknown}")
    shared = [k for k in SHARED if getattr(args, k, None) is not None]
    if shared or args.preset != "auto":
        raise BenchmarkError(f"arm {name!r} may not change shared settings "
                             f"({', '.join(shared or ['preset'])}); pass them to the benchmark")
    return name, flags, args


def base_config(args):
    """The config every arm starts from: preset plus the benchmark's shared settings."""
    from tfgan.config import preset

    # The arms are defined on the reference recipe (the earlier attempt's training).
    config = preset(args.preset, "reference")
    steps = args.steps
    log_every = args.log_every or max(1, steps // 100)
    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, data_dir=args.data),
        model=dataclasses.replace(config.model, base_width=args.base_width),
        train=dataclasses.replace(config.train, steps=steps, batch_size=args.batch_size,
                                  seed=args.seed, log_every=log_every, sample_every=steps,
                                  checkpoint_every=max(1, steps // 4)))


def train_arm(name: str, config, runs_dir, stream=sys.stdout) -> dict:
    """Trains (or reuses, or resumes) the arm's run in RUNS_DIR/<name>; returns how it went.

    How long training took and whether it diverged are kept in RUN/benchmark_arm.json, so
    a report rewritten from reused runs still states them.
    """
    from tfgan.callbacks import NonFiniteLoss
    from tfgan.rundir import RunDir
    from tfgan.trainer import train

    run = RunDir(os.path.join(runs_dir, name))
    record_path = run.path / ARM_RECORD
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    resume = False
    if run.exists():
        saved = run.load_config()
        same = dataclasses.replace(saved, train=dataclasses.replace(saved.train,
                                                                   steps=config.train.steps))
        if same != config:
            raise BenchmarkError(f"{run.path} holds a run with other settings; use another "
                                 "--out or remove it")
        records = run.read_metrics()
        finished = records and records[-1]["step"] >= config.train.steps
        gave_up = record.get("diverged") and record.get("steps") == config.train.steps
        if (finished or gave_up) and run.latest_checkpoint():
            print(f"== {name}: reusing the finished run in {run.path}", file=stream, flush=True)
            return {"reused": True, "diverged": record.get("diverged"),
                    "wall_seconds": record.get("wall_seconds")}
        resume = True
    print(f"== {name}: training {config.train.steps} steps in {run.path}", file=stream, flush=True)
    t0 = time.perf_counter()
    diverged = None
    try:
        result = train(config, run.path, resume=resume, stream=stream)
        if result.get("stopped_by"):
            raise Stopped(name, result["stopped_by"])
    except NonFiniteLoss as e:
        diverged = str(e)
        print(f"== {name}: diverged: {e}", file=stream, flush=True)
    earlier = (record.get("wall_seconds") or 0.0) if resume else 0.0
    wall = time.perf_counter() - t0 + earlier
    record_path.write_text(json.dumps({"steps": config.train.steps, "diverged": diverged,
                                       "wall_seconds": wall}))
    return {"reused": False, "diverged": diverged, "wall_seconds": wall}


def run_benchmark(args, stream=sys.stdout) -> dict:
    """Trains and scores every arm, then writes the report; returns report.json's dict."""
    from tfgan.eval.evaluate import build_reference, evaluate_run
    from tfgan.models import with_labels
    from tfgan.rundir import RunDir, load_generator
    from tfgan.trainer import fixed_labels, fixed_latents
    from training import report

    arms = [parse_arm(spec) for spec in args.arms]
    names = [a[0] for a in arms]
    if len(set(names)) != len(names):
        raise BenchmarkError(f"arm names must be unique. Received: {names}")
    if args.steps < 1 or args.samples < 10:
        raise BenchmarkError("--steps must be at least 1 and --samples at least 10")
    base = base_config(args)
    runs_dir = args.runs_dir or os.path.join(args.out, "runs")
    results = []
    for name, flags, arm_args in arms:
        config = cli.apply_flags(base, arm_args).validate()
        results.append({"arm": name, "flags": flags, "config": config,
                        **train_arm(name, config, runs_dir, stream)})

    t_eval = time.perf_counter()
    options = classifier_options(args)
    first = RunDir(os.path.join(runs_dir, names[0]))
    reference = build_reference(first.load_config(), first.load_stats(), args.samples,
                                args.seed, args.ndb_bins, options, stream=stream)
    report.save_grid(os.path.join(args.out, report.REAL_GRID), reference.real_a[:16])
    for r in results:
        run = RunDir(os.path.join(runs_dir, r["arm"]))
        print(f"== {r['arm']}: scoring {args.samples} samples", file=stream, flush=True)
        r["eval"] = evaluate_run(run.path, args.samples, seed=args.seed, ndb_bins=args.ndb_bins,
                                 classifier_options=options, reference=reference,
                                 stream=stream)
        r["records"] = run.read_metrics()
        generator, config, _, _ = load_generator(run)
        r["grid"] = f"samples_{r['arm']}.png"
        report.save_grid(os.path.join(args.out, r["grid"]),
                         with_labels(generator, fixed_latents(config), fixed_labels(config),
                                     training=False).numpy())
    meta = {
        "steps": args.steps, "batch_size": args.batch_size, "base_width": args.base_width,
        "seed": args.seed, "preset": args.preset, "samples": args.samples,
        "data_root": reference.data_root, "log_every": base.train.log_every,
        "runs_dir": runs_dir, "roles": ROLES,
        "train_seconds": sum(r["wall_seconds"] or 0.0 for r in results),
        "eval_seconds": time.perf_counter() - t_eval,
        "reused_arms": [r["arm"] for r in results if r["reused"]],
        "cpu_count": os.cpu_count(),
        "command": "python -m training.benchmark " + " ".join(
            shlex.quote(a) for a in getattr(args, "argv", [])),
    }
    return report.write_report(args.out, results, meta)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    from tfgan.data.pipeline import DataError
    from tfgan.rundir import RunError

    try:
        result = run_benchmark(args)
    except (BenchmarkError, DataError, RunError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Stopped as e:
        import signal

        print(f"error: {e}", file=sys.stderr)
        return 128 + signal.Signals[e.signal_name].value
    print(f"\n{result['conclusion']}\n\nWrote {os.path.join(args.out, 'report.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
