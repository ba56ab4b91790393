#!/bin/bash
# The default run with D's learning rate cut (--d-lr-scale 0.25): does a slower D make the
# modern recipe's fight less one-sided (the balance target: under 25% of the run) without
# giving up sample quality? The benchmark found that a tenfold cut balances ResNet-9 under
# the reference recipe but does not improve its samples. Everything else is the default run
# (conditional, modern recipe, 3000 steps); the comparison rows are conditional.sh's cells
# of the same data and seed. Results in docs/quality/dlr; finished cells are reused and
# interrupted ones resumed.
#
# Usage: training/experiments/d_lr.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data instruments builtin --seeds 0 \
#            --tag dlr0.25 --out docs/quality/dlr
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-docs/quality/dlr}
seeds=${1:-0}; shift
data=${*:-instruments builtin}
$PY -m training.quality --data $data --recipes modern --seeds $seeds --tag dlr0.25 --out "$OUT" \
    -- --conditional on --d-lr-scale 0.25 --steps 3000 --reg-every 1
