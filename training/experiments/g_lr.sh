#!/bin/bash
# A faster G instead of a slower D: G's learning rate doubled (--lr 4e-4) and D's kept at the
# default 2e-4 (--d-lr-scale 0.5), in the default run (conditional, modern recipe, 4000 lazy
# steps). d_lr.sh slowed D down, which balanced the fight on the instruments and starved G
# on the built-in set; this gives G more per step instead, at the same cost.
# Results in docs/quality/glr; finished cells are reused and interrupted ones resumed.
#
# Usage: training/experiments/g_lr.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 1 2 \
#            --recipes modern --tag glr2 --out docs/quality/glr
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-docs/quality/glr}
seeds=${1:-0}; shift
data=${*:-builtin instruments}
$PY -m training.quality --data $data --recipes modern --seeds $seeds --tag glr2 --out "$OUT" \
    -- --conditional on --lr 4e-4 --d-lr-scale 0.5
