#!/bin/bash
# G at twice the learning rate (g_lr.sh), with both rates falling on a half cosine to a
# quarter of their start by the last step (--lr-decay 0.25: R3GAN's schedule takes 2e-4 to
# 5e-5). g_lr.sh balanced the fight on both sets, but its built-in FD moved a lot between
# the last evaluations (seed 2: 4.09 at step 2250, 7.17 at 4000); smaller steps at the end
# should let G settle. Same cost as the default run (conditional, modern, 4000 lazy steps).
# Results in docs/quality/decay; finished cells are reused and interrupted ones resumed.
#
# Usage: training/experiments/lr_decay.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 1 2 \
#            --recipes modern --tag glr2-decay --out docs/quality/decay
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-docs/quality/decay}
seeds=${1:-0}; shift
data=${*:-builtin instruments}
$PY -m training.quality --data $data --recipes modern --seeds $seeds --tag glr2-decay \
    --out "$OUT" -- --conditional on --lr 4e-4 --d-lr-scale 0.5 --lr-decay 0.25
