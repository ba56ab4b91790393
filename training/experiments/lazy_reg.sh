#!/bin/bash
# Lazy R1/R2 (--reg-every 4) in the default run: the same data, seeds and steps as
# conditional.sh's cells, which compute the penalties every step. If quality per step holds,
# the saving (about x1.3 steps/s) buys more steps within the default run's 15 minutes.
# Results in docs/quality/lazy; finished cells are reused and interrupted ones resumed.
#
# Usage: training/experiments/lazy_reg.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 \
#            --tag reg4 --out docs/quality/lazy
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-docs/quality/lazy}
seeds=${1:-0}; shift
data=${*:-builtin instruments}
$PY -m training.quality --data $data --recipes modern --seeds $seeds --tag reg4 --out "$OUT" \
    -- --conditional on --reg-every 4
