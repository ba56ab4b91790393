"""Scoring flags of `python -m tfgan.eval`."""

from __future__ import annotations

import argparse
import dataclasses


def add_scoring_args(p: argparse.ArgumentParser) -> None:
    """--samples, --ndb-bins, --classifier-epochs, --classifier-width."""
    from tfgan.eval.evaluate import DEFAULT_NDB_BINS, DEFAULT_SAMPLES

    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                   help=f"generated samples scored per run, and real crops per real set "
                        f"(default {DEFAULT_SAMPLES})")
    p.add_argument("--ndb-bins", type=int, default=DEFAULT_NDB_BINS, metavar="K",
                   help=f"k-means bins of NDB/K (default {DEFAULT_NDB_BINS}, at most N/10)")
    p.add_argument("--classifier-epochs", type=int, metavar="E",
                   help="epochs of the classifier when it has to be trained (default 6)")
    p.add_argument("--classifier-width", type=int, metavar="W",
                   help="width of the classifier's first convolution (default 16)")


def classifier_options(args: argparse.Namespace):
    """`ClassifierOptions` with the flags given on the command line."""
    from tfgan.eval.classifier import ClassifierOptions

    given = {"epochs": args.classifier_epochs, "width": args.classifier_width}
    return dataclasses.replace(ClassifierOptions(),
                               **{k: v for k, v in given.items() if v is not None})
