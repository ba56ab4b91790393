"""Command-line entry points: `python -m training.run`, `python -m training.benchmark`."""
