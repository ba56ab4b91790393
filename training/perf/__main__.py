"""python -m training.perf (see the package's docstring)."""

import sys

from tfgan.console import quiet_native_logs

quiet_native_logs()  # before TensorFlow loads: see tfgan/console.py

from training.perf.cli import main  # noqa: E402

sys.exit(main())
