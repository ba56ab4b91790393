"""Generator/discriminator balance diagnostics from a run's ``metrics.jsonl``.

A training run appends one JSON object per logged step, e.g.::

    {"step": 1200, "d_loss": 1.31, "g_loss": 0.74, "d_real_acc": 0.62,
     "d_fake_acc": 0.58, "d_real": 0.55, "d_fake": 0.41,
     "d_grad_norm": 3.2, "g_grad_norm": 1.1}

``d_real`` / ``d_fake`` are mean discriminator outputs (probabilities or raw
scores depending on the loss), accuracies are in ``[0, 1]``, and the
``*_grad_norm`` fields are optional. The helpers here turn such a log into a
few numbers that flag the usual failure modes: a discriminator that wins
outright (:func:`d_dominance`), a generator loss that keeps climbing
(:func:`loss_trend`) and NaN/inf blow-ups (:func:`summarize`).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Iterable

import numpy as np

__all__ = ["load_metrics", "d_dominance", "loss_trend", "summarize"]

# Keys summarised whenever at least one record carries them.
_SUMMARY_KEYS = ("d_loss", "g_loss", "d_real", "d_fake", "d_real_acc", "d_fake_acc")
_GRAD_NORM_SUFFIX = "_grad_norm"


def load_metrics(path: str | os.PathLike) -> list[dict]:
    """Reads a ``metrics.jsonl`` file into a list of records sorted by step.

    Blank lines are ignored. A last line that is not valid JSON is skipped,
    because a run killed mid-write leaves exactly such a truncated line; a
    malformed line anywhere else means real corruption and raises. When a step
    occurs more than once (e.g. a run resumed from an earlier checkpoint
    re-logs steps) the record that appears last in the file wins.

    ``NaN`` / ``Infinity`` tokens (as written by Python's ``json`` module) are
    parsed into float NaN / inf.

    Args:
        path: Path to the JSON-lines file.

    Returns:
        One dict per unique step, in increasing step order.

    Raises:
        ValueError: If a non-final line is not valid JSON, a record is not a
            JSON object, or a record lacks an integer-valued ``"step"``.
        OSError: If the file cannot be read.
    """
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()

    # Index of the last non-blank line: only that one may be truncated.
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    by_step: dict[int, dict] = {}
    for pos, (lineno, line) in enumerate(numbered):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if pos == len(numbered) - 1:
                break  # Truncated final write of a killed run.
            raise ValueError(
                f"{os.fspath(path)}:{lineno}: invalid JSON in metrics log. "
                f"Received: {line[:80]!r} ({err})") from err
        if not isinstance(record, dict):
            raise ValueError(
                f"{os.fspath(path)}:{lineno}: each line must be a JSON object. "
                f"Received: {type(record).__name__}")
        step = record.get("step")
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(
                step) or step != int(step):
            raise ValueError(
                f"{os.fspath(path)}:{lineno}: record needs an integer 'step'. Received: {step!r}")
        record["step"] = int(step)
        if record.get("kind", "train") != "train":
            continue  # in-training quality rows share the file; they are not balance data
        # Later lines overwrite earlier ones: a resumed run's re-logged steps
        # describe the weights that training actually continued from.
        by_step[record["step"]] = record
    return [by_step[s] for s in sorted(by_step)]


def _is_number(value: Any) -> bool:
    """True for real numbers (including NaN/inf), False for bools/None/strings."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


def _check_records(records: Any) -> list[dict]:
    records = list(records)
    if not records:
        raise ValueError("`records` must contain at least one metrics record. Received: []")
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise ValueError(
                f"Every record must be a dict. Received: {type(r).__name__} at index {i}")
    return records


def _sorted_by_step(records: list[dict]) -> list[dict]:
    """Records in step order when every record has a numeric step, else as given."""
    if all(_is_number(r.get("step")) for r in records):
        # sorted() is stable, so records with equal steps keep their order.
        return sorted(records, key=lambda r: r["step"])
    return records


def d_dominance(records: Iterable[dict], threshold: float = 0.95) -> float:
    """Share of records in which the discriminator wins on both real and fake.

    A record counts as dominated when ``d_real_acc >= threshold`` and
    ``d_fake_acc >= threshold``. A persistently high share means the
    generator gets vanishing gradients.

    Args:
        records: Metrics records (see module docstring).
        threshold: Accuracy level in ``[0, 1]``.

    Returns:
        A float in ``[0, 1]``. Records lacking a finite value for either
        accuracy are left out of the denominator; if no record has both,
        returns NaN.

    Raises:
        ValueError: If ``records`` is empty or ``threshold`` is outside ``[0, 1]``.
    """
    records = _check_records(records)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"`threshold` must be in [0, 1]. Received: {threshold!r}")
    usable = 0
    dominated = 0
    for r in records:
        real_acc, fake_acc = r.get("d_real_acc"), r.get("d_fake_acc")
        if not (_is_number(real_acc) and _is_number(fake_acc)):
            continue
        if not (math.isfinite(real_acc) and math.isfinite(fake_acc)):
            continue
        usable += 1
        if real_acc >= threshold and fake_acc >= threshold:
            dominated += 1
    return dominated / usable if usable else float("nan")


def loss_trend(records: Iterable[dict], key: str = "g_loss") -> float:
    """Least-squares slope of ``key`` against step over the second half of training.

    "Second half" is by step: records with ``step >= (first_step + last_step) / 2``.
    Only the later half is used because the first steps of GAN training are
    dominated by transients that say nothing about where the run is heading.

    Args:
        records: Metrics records with a numeric ``"step"``.
        key: Record field to fit, e.g. ``"g_loss"`` or ``"d_loss"``.

    Returns:
        Slope in units of ``key`` per 1000 steps (positive = rising). NaN when
        fewer than two records with distinct steps and finite values remain in
        the second half.

    Raises:
        ValueError: If ``records`` is empty.
    """
    records = _check_records(records)
    points = [(float(r["step"]), float(r[key])) for r in records
              if _is_number(r.get("step")) and _is_number(r.get(key))
              and math.isfinite(r["step"]) and math.isfinite(r[key])]
    if not points:
        return float("nan")
    steps = np.array([p[0] for p in points])
    values = np.array([p[1] for p in points])
    midpoint = (steps.min() + steps.max()) / 2.0
    keep = steps >= midpoint
    steps, values = steps[keep], values[keep]
    if np.unique(steps).size < 2:
        return float("nan")
    # Closed-form OLS slope; centring the steps keeps it well conditioned at
    # large step counts.
    x = steps - steps.mean()
    slope = float(np.dot(x, values - values.mean()) / np.dot(x, x))
    return slope * 1000.0


def summarize(records: Iterable[dict]) -> dict:
    """Compact summary of a run's metrics log.

    Args:
        records: Metrics records, e.g. from :func:`load_metrics`. They are
            ordered by step before "final" values are taken.

    Returns:
        A dict with keys:

        * ``"num_records"`` (int).
        * ``"final"`` (dict[str, float]): per metric, the mean of the finite
          values in the last 10% of records (``ceil(0.1 * n)``, at least 1).
        * ``"median"`` (dict[str, float]): per metric, the median of all
          finite values.
        * ``"d_dominance"`` (float): :func:`d_dominance` at threshold 0.95.
        * ``"g_loss_trend"`` (float): :func:`loss_trend` of ``g_loss``, per 1000
          steps.
        * ``"non_finite"`` (dict[str, int]): count of NaN/inf values per field,
          over every numeric field of every record (fields with none omitted).
        * ``"non_finite_total"`` (int).

        Metrics are ``d_loss``, ``g_loss``, ``d_real``, ``d_fake``,
        ``d_real_acc``, ``d_fake_acc`` and every ``*_grad_norm`` field, each
        only if present in at least one record. A metric with no finite values
        in the window gets NaN (so one NaN step does not hide the rest, while a
        run that diverged for good still shows NaN).

    Raises:
        ValueError: If ``records`` is empty.
    """
    records = _sorted_by_step(_check_records(records))
    n = len(records)
    present = {key for r in records for key in r}
    grad_keys = sorted(k for k in present if k.endswith(_GRAD_NORM_SUFFIX))
    keys = [k for k in _SUMMARY_KEYS if k in present] + grad_keys

    n_tail = (n + 9) // 10  # ceil(n / 10), which is >= 1 because n >= 1
    tail = records[n - n_tail:]

    def finite_values(rows: list[dict], key: str) -> np.ndarray:
        vals = [float(r[key]) for r in rows if _is_number(r.get(key))]
        arr = np.array(vals, dtype=np.float64)
        return arr[np.isfinite(arr)]

    final: dict[str, float] = {}
    median: dict[str, float] = {}
    for key in keys:
        tail_vals = finite_values(tail, key)
        all_vals = finite_values(records, key)
        final[key] = float(tail_vals.mean()) if tail_vals.size else float("nan")
        median[key] = float(np.median(all_vals)) if all_vals.size else float("nan")

    non_finite: dict[str, int] = {}
    for r in records:
        for key, value in r.items():
            if _is_number(value) and not math.isfinite(value):
                non_finite[key] = non_finite.get(key, 0) + 1

    return {
        "num_records": n,
        "final": final,
        "median": median,
        "d_dominance": d_dominance(records),
        "g_loss_trend": loss_trend(records, "g_loss"),
        "non_finite": dict(sorted(non_finite.items())),
        "non_finite_total": int(sum(non_finite.values())),
    }
