#!/bin/bash
# The quality grid behind README's tables: 3000 steps (the default run's budget), simple D.
# Cells already finished are reused, interrupted ones resumed (training.quality).
# Usage: training/experiments/grid.sh {builtin|instruments} "SEEDS"
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
data=$1; seeds=${2:-0}
$PY -m training.quality --data "$data" --recipes reference --seeds $seeds --out docs/quality
$PY -m training.quality --data "$data" --recipes modern --seeds $seeds --tag bn --out docs/quality -- --d-norm batch
