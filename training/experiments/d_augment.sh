#!/bin/bash
# The default run (conditional, modern recipe, 4000 lazy steps) with D's augmentation cut to
# the circular time shift: no time or frequency masks, which replace part of every clip D
# sees with flat silence (docs/quality/screen/plan.md, section 10). Same cost. Tag
# daug-shift; results in docs/quality/daug; finished cells are reused and interrupted ones
# resumed.
#
# Usage: training/experiments/d_augment.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 1 2 \
#            --recipes modern --tag daug-shift --out docs/quality/daug
[ $# -ge 1 ] || { echo "usage: $0 SEEDS [DATA ...]" >&2; exit 2; }
seeds=$1; shift
exec "$(dirname "$0")/screen.sh" daug-shift docs/quality/daug "$seeds" "$@" -- --augment shift
