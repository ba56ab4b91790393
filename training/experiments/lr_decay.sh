#!/bin/bash
# Both learning rates falling on a half cosine to a quarter of their start by the last step
# (--lr-decay 0.25: R3GAN's schedule takes 2e-4 to 5e-5), in the default run (conditional,
# modern recipe, 4000 lazy steps) as it was measured before: same cost.
#   glr2: with G at twice D's rate (g_lr.sh), whose built-in FD moved a lot between the
#         last evaluations (seed 2: 3.83 at step 2250, 7.17 at 4000); smaller steps at the
#         end should let G settle. Tag glr2-decay.
#   same: both at 2e-4, as the default run then was: the decay alone. Tag decay.
# Results in docs/quality/decay; finished cells are reused and interrupted ones resumed.
#
# Usage: training/experiments/lr_decay.sh {glr2|same} "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 1 2 \
#            --recipes modern --tag TAG --out docs/quality/decay
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-docs/quality/decay}
usage() { echo "usage: $0 {glr2|same} SEEDS [DATA ...]" >&2; exit 2; }
[ $# -ge 2 ] || usage
case $1 in
  glr2) tag=glr2-decay; rates="--lr 4e-4 --d-lr-scale 0.5" ;;
  same) tag=decay; rates="--lr 2e-4 --d-lr-scale 1" ;;
  *) usage ;;
esac
seeds=$2; shift 2
data=${*:-builtin instruments}
$PY -m training.quality --data $data --recipes modern --seeds $seeds --tag $tag --out "$OUT" \
    -- --conditional on $rates --lr-decay 0.25
