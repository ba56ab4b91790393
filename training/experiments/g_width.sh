#!/bin/bash
# A wider generator in the default run: G's base width (--g-width) above D's 32, with fewer
# steps so that the run costs the default's wall time (STEPS; the width's cost per step is
# measured side by side in docs/quality/gwidth/timing.md). Tag gW-STEPS.
# Results in docs/quality/gwidth; finished cells are reused and interrupted ones resumed.
#
# Usage: [WIDTH=48] [STEPS=3200] training/experiments/g_width.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 1 2 \
#            --recipes modern --tag gW-N --out docs/quality/gwidth
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-docs/quality/gwidth}
WIDTH=${WIDTH:-48}
STEPS=${STEPS:-3200}
seeds=${1:-0}; shift
data=${*:-builtin instruments}
$PY -m training.quality --data $data --recipes modern --seeds $seeds --tag "g$WIDTH-$STEPS" \
    --out "$OUT" -- --conditional on --g-width "$WIDTH" --steps "$STEPS"
