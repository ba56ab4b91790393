"""python -m training.run --disc simple: train a spectrogram GAN.

Builds one config (preset, then the run's saved config when resuming, then the flags),
and calls tfgan.train. See README.md for every flag and the run-directory layout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from training import cli  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m training.run",
        description="Train a GAN on log-magnitude spectrograms of a folder of audio files.")
    p.add_argument("--run-dir", metavar="DIR",
                   help="where the run is written (default: runs/<disc>-<date>-<time>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir from its newest checkpoint")
    p.add_argument("--loop", choices=("fit", "custom"), default="fit",
                   help="drive train_step with keras fit or a plain strategy.run loop")
    cli.add_model_flags(p)
    cli.add_train_flags(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from tfgan.config import preset
    from tfgan.callbacks import NonFiniteLoss
    from tfgan.data.pipeline import DataError
    from tfgan.rundir import RunDir, RunError
    from tfgan.trainer import train

    if args.resume and not args.run_dir:
        print("error: --resume needs --run-dir", file=sys.stderr)
        return 2
    disc = args.disc or "simple"
    run_dir = args.run_dir or os.path.join("runs", f"{disc}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        run = RunDir(run_dir)
        base = run.load_config() if args.resume and run.exists() else preset(args.preset)
        config = cli.apply_flags(base, args).validate()
        print(f"Run directory: {run_dir}", flush=True)
        result = train(config, run_dir, resume=args.resume, loop=args.loop)
    except (DataError, RunError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLoss as e:
        print(f"error: training diverged: {e}", file=sys.stderr)
        return 3
    print(f"Done. Samples in {os.path.join(run_dir, 'samples')}; "
          f"export with: python -m export.saved_model --run-dir {run_dir} "
          f"--model-base-path models/generator", flush=True)
    del result
    return 0


if __name__ == "__main__":
    sys.exit(main())
