#!/bin/bash
# The default run with D judging each real batch and its fakes in one call (--d-batch
# joint), so that its BatchNorm layers cannot tell the two batches apart by their
# statistics. bn_probe.py found that, apart, the BatchNorm D of every finished run ranks
# real above fake ~100% of the time, and 78-99% when real and fake share the statistics:
# part of its lead is the batch statistics. Does sharing them make the fight less
# one-sided (the balance target: under 25% of the run) without giving up sample quality?
# Everything else is the default run (conditional, modern recipe, 3000 steps); the
# comparison rows are conditional.sh's cells of the same data and seed. Results in
# docs/quality/joint; finished cells are reused and interrupted ones resumed.
#
# Usage: training/experiments/joint_batch.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data instruments builtin --seeds 0 \
#            --tag joint --out docs/quality/joint
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-docs/quality/joint}
seeds=${1:-0}; shift
data=${*:-instruments builtin}
$PY -m training.quality --data $data --recipes modern --seeds $seeds --tag joint --out "$OUT" \
    -- --conditional on --d-batch joint --steps 3000 --reg-every 1
