#!/bin/bash
# The default run (conditional, modern recipe, 4000 lazy steps) with R1 and R2 at a quarter
# of their weight (gamma 0.0064 against 0.0256), so that D may react to pixel-scale texture
# (docs/quality/screen/plan.md, section 10). Same cost. Tag dgamma-q; results in
# docs/quality/dgamma; finished cells are reused and interrupted ones resumed.
#
# Usage: training/experiments/d_gamma.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 1 2 \
#            --recipes modern --tag dgamma-q --out docs/quality/dgamma
[ $# -ge 1 ] || { echo "usage: $0 SEEDS [DATA ...]" >&2; exit 2; }
seeds=$1; shift
exec "$(dirname "$0")/screen.sh" dgamma-q docs/quality/dgamma "$seeds" "$@" -- \
    --r1-gamma 0.0064 --r2-gamma 0.0064
