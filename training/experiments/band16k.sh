#!/bin/bash
# The cpu preset at 16 kHz for the same cost: the same 64x64 spectrogram and 0.52 s clip,
# from 16 kHz audio on a 64-band mel scale (n_fft 256, hop 128) instead of 8 kHz audio on a
# linear scale (n_fft 128, hop 64). Everything else is the default run (conditional, modern
# recipe, 3000 steps); the 8 kHz rows are conditional.sh's cells of the same data and seed.
# Results in docs/quality/16k; finished cells are reused and interrupted ones resumed.
#
# Usage: training/experiments/band16k.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 1 \
#            --tag 16k --out docs/quality/16k
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-docs/quality/16k}
seeds=${1:-0}; shift
data=${*:-builtin instruments}
$PY -m training.quality --data $data --recipes modern --seeds $seeds --tag 16k --out "$OUT" \
    -- --conditional on --sample-rate 16000 --scale mel --hop-length 128 --steps 3000 \
    --reg-every 1
