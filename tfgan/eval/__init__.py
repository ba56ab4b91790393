"""Quality and balance metrics of trained runs.

* `metrics`: Inception Score, Frechet distance, NDB/K (pure NumPy/SciPy).
* `balance`: D dominance, G loss trend and summaries of a run's metrics.jsonl.
* `classifier`: the spectrogram classifier behind IS and FD, trained once per dataset.
* `evaluate`: `evaluate_run(run_dir)`, which writes RUN/eval.json; also
  `python -m tfgan.eval RUN [--samples N]`.

Importing the package loads nothing heavy; TensorFlow is imported by the functions
that need it.
"""
