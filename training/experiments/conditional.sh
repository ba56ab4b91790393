#!/bin/bash
# The conditional model (--conditional) at the default run's budget, beside grid.sh's
# unconditional cells of the same data and seed; results in docs/quality/conditional.
# Finished cells are reused and interrupted ones resumed (training.quality).
#
# Usage: training/experiments/conditional.sh {builtin|instruments} "SEEDS"; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 1 2 \
#            --tag cond --out docs/quality/conditional
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-docs/quality/conditional}
data=$1; seeds=${2:-0}
$PY -m training.quality --data "$data" --recipes modern --seeds $seeds --tag cond --out "$OUT" \
    -- --conditional on --steps 3000 --reg-every 1
