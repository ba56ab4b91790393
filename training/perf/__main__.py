"""python -m training.perf (see the package's docstring)."""

import sys

from training.perf.cli import main

sys.exit(main())
