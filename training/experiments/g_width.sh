#!/bin/bash
# A wider generator in the default run: G's base width 48, 1.5x D's 32 (--g-scale), with fewer
# steps so that the run costs the default's CPU time (STEPS; the width's cost per step is
# measured side by side in docs/quality/gwidth/timing.md). Tag g48-STEPS.
# Results in docs/quality/gwidth; finished cells are reused and interrupted ones resumed.
#
# Usage: [STEPS=3200] training/experiments/g_width.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 1 2 \
#            --recipes modern --tag g48-3200 --out docs/quality/gwidth
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-docs/quality/gwidth}
STEPS=${STEPS:-3200}
seeds=${1:-0}; shift
data=${*:-builtin instruments}
$PY -m training.quality --data $data --recipes modern --seeds $seeds --tag "g48-$STEPS" \
    --out "$OUT" -- --conditional on --g-scale 1.5 --steps "$STEPS"
