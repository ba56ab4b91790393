#!/bin/bash
# The reference recipe at the default run's budget and conditioning (conditional, 4000
# steps), beside the default run's cells in docs/quality/lazy, so that the report can say
# at what share of the reference's steps the default run reaches the reference's final FD
# (issue 10's time-to-quality target). Untagged: the report pairs each modern cell with
# the reference cell of the same dataset and seed.
#
# Usage: training/experiments/time_to_quality.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 \
#            --recipes reference modern --tag reg4-4000 --out docs/quality/lazy
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-docs/quality/lazy}
seeds=${1:-0}; shift
data=${*:-builtin instruments}
$PY -m training.quality --data $data --recipes reference --seeds $seeds --out "$OUT" \
    -- --conditional on --steps 4000
