"""python -m tfgan.eval RUN [--samples N]: score a run directory, write RUN/eval.json."""

from __future__ import annotations

import argparse
import os
import sys

# TensorFlow's C++ start-up chatter is not actionable for a user (as in training.run).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_args(argv=None) -> argparse.Namespace:
    from tfgan.eval.evaluate import DEFAULT_NDB_BINS, DEFAULT_SAMPLES

    p = argparse.ArgumentParser(
        prog="python -m tfgan.eval",
        description="Quality (IS, FD, NDB/K beside the real data's own scores) and balance "
                    "(D dominance, loss trend, gradient norms) of a trained run. Writes "
                    "RUN/eval.json.")
    p.add_argument("run_dir", metavar="RUN", help="a run directory of python -m training.run")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                   help=f"generated samples scored, and real crops per real set "
                        f"(default {DEFAULT_SAMPLES})")
    p.add_argument("--seed", type=int, default=0, help="seed of the latents and real crops")
    p.add_argument("--ndb-bins", type=int, default=DEFAULT_NDB_BINS, metavar="K",
                   help=f"k-means bins of NDB/K (default {DEFAULT_NDB_BINS}, at most N/10)")
    p.add_argument("--classifier-epochs", type=int, metavar="E",
                   help="epochs of the classifier when it has to be trained (default 6)")
    p.add_argument("--classifier-width", type=int, metavar="W",
                   help="width of the classifier's first convolution (default 16)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.samples < 10:
        print(f"error: --samples must be at least 10. Received: {args.samples}", file=sys.stderr)
        return 2
    if not os.path.isdir(args.run_dir):
        print(f"error: run directory does not exist: {args.run_dir}", file=sys.stderr)
        return 2
    import dataclasses

    from tfgan.data.pipeline import DataError
    from tfgan.eval.classifier import ClassifierOptions
    from tfgan.eval.evaluate import evaluate_run, format_summary
    from tfgan.rundir import RunError

    options = ClassifierOptions()
    if args.classifier_epochs is not None:
        options = dataclasses.replace(options, epochs=args.classifier_epochs)
    if args.classifier_width is not None:
        options = dataclasses.replace(options, width=args.classifier_width)
    try:
        result = evaluate_run(args.run_dir, args.samples, seed=args.seed,
                              ndb_bins=args.ndb_bins, classifier_options=options)
    except (RunError, DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_summary(result))
    print(f"Wrote {os.path.join(args.run_dir, 'eval.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
