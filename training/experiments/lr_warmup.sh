#!/bin/bash
# G at twice D's learning rate with both rates decaying (lr_decay.sh glr2) and a linear
# warm-up over the first 500 steps (--lr-warmup 500, an eighth of the run), in the default
# run (conditional, modern recipe, 4000 lazy steps): same cost. Without the warm-up this
# gave the best built-in run at seed 0 (FD 2.95x real-vs-real) and failed at seeds 1 and 2
# in their first 1000 steps (20.7x and 25.6x); the warm-up asks whether a calmer start
# removes that failure. Tag glr2-warmup; results in docs/quality/warmup; finished cells
# are reused and interrupted ones resumed.
#
# Usage: training/experiments/lr_warmup.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 1 2 \
#            --recipes modern --tag glr2-warmup --out docs/quality/warmup
[ $# -ge 1 ] || { echo "usage: $0 SEEDS [DATA ...]" >&2; exit 2; }
seeds=$1; shift
exec "$(dirname "$0")/screen.sh" glr2-warmup docs/quality/warmup "$seeds" "$@" -- --lr 4e-4 --d-lr-scale 0.5 --lr-decay 0.25 --lr-warmup 500
