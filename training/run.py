"""python -m training.run --disc simple: train a spectrogram GAN.

Builds one config (preset, then the run's saved config when resuming, then the flags),
and calls tfgan.train. See README.md for every flag and the run-directory layout,
tfgan/recovery.py for the faults a run survives, and tfgan/trainer.py for training on
several machines.

Exit status:
  0    trained to --steps.
  2    refused: bad flags, data, or run directory (unwritable, too little disk space,
       holds another run or one of other shapes).
  3    diverged (a NaN or infinite loss, gradient or weight); the newest checkpoint is
       the last good one.
  130  stopped by SIGINT, 143 by SIGTERM (128 + the signal's number, as a shell reports
       it): a checkpoint of the last step was written; continue with --resume.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

if __name__ == "__main__":  # before TensorFlow is imported: see tfgan/console.py
    from tfgan.console import quiet_native_logs

    quiet_native_logs()

from training import cli  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m training.run",
        description="Train a GAN on log-magnitude spectrograms of a folder of audio files.",
        epilog="exit status: 0 done; 2 refused (bad flags, data or run directory); 3 diverged; "
               "130/143 stopped by SIGINT/SIGTERM after a final checkpoint (continue with "
               "--resume)")
    p.add_argument("--run-dir", metavar="DIR",
                   help="where the run is written (default: runs/<disc>-<date>-<time>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir from its newest checkpoint")
    p.add_argument("--loop", choices=("fit", "custom"), default="fit",
                   help="drive train_step with keras fit or a plain strategy.run loop")
    p.add_argument("--on-nan", choices=("stop", "lower-lr"), default="stop",
                   help="after a NaN/Inf loss, restore the last good checkpoint, then stop "
                        "(exit 3) or lower both learning rates 10x and go on")
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
        result = train(config, run_dir, resume=args.resume, loop=args.loop,
                       on_nan=args.on_nan)
    except (DataError, RunError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLoss as e:
        print(f"error: training diverged: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:  # a second Ctrl-C: no final checkpoint, the last one stands
        print("interrupted; resume from the newest checkpoint with --resume", file=sys.stderr)
        return 128 + signal.SIGINT
    if result["stopped_by"]:
        return 128 + signal.Signals[result["stopped_by"]]
    print(f"Done. Samples in {os.path.join(run_dir, 'samples')}; "
          f"export with: python -m export.saved_model --run-dir {run_dir} "
          f"--model-base-path models/generator", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
