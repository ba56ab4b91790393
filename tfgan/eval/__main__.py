"""python -m tfgan.eval RUN [--samples N]: score a run directory, write RUN/eval.json."""

from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__":  # before TensorFlow is imported: see tfgan/console.py
    from tfgan.console import quiet_native_logs

    quiet_native_logs()


def parse_args(argv=None) -> argparse.Namespace:
    from tfgan.eval.cli import add_scoring_args

    p = argparse.ArgumentParser(
        prog="python -m tfgan.eval",
        description="Quality (IS, FD, NDB/K beside the real data's own scores) and balance "
                    "(D dominance, loss trend, gradient norms) of a trained run. Writes "
                    "RUN/eval.json.")
    p.add_argument("run_dir", metavar="RUN", help="a run directory of python -m training.run")
    p.add_argument("--seed", type=int, default=0, help="seed of the latents and real crops")
    add_scoring_args(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.samples < 10:
        print(f"error: --samples must be at least 10. Received: {args.samples}", file=sys.stderr)
        return 2
    if not os.path.isdir(args.run_dir):
        print(f"error: run directory does not exist: {args.run_dir}", file=sys.stderr)
        return 2
    from tfgan.data.pipeline import DataError
    from tfgan.eval.cli import classifier_options
    from tfgan.eval.evaluate import evaluate_run, format_summary
    from tfgan.rundir import RunError

    try:
        result = evaluate_run(args.run_dir, args.samples, seed=args.seed,
                              ndb_bins=args.ndb_bins, classifier_options=classifier_options(args))
    except (RunError, DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_summary(result))
    print(f"Wrote {os.path.join(args.run_dir, 'eval.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
