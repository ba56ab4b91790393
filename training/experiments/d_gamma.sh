#!/bin/bash
# The default run (conditional, modern recipe, 4000 lazy steps) with R1 and R2 at a quarter
# or half of their weight (gamma 0.0064 or 0.0128 against 0.0256), so that D may react to
# pixel-scale texture; quarter-resize also draws G's last layer without a checkerboard
# (--g-last resize); quarter-noise adds noise on every pixel of G's output instead
# (--g-noise pixel). docs/quality/screen/plan.md, sections 10-12. Same cost. Tags
# dgamma-q, dgamma-h, dgamma-qr, dgamma-qn; results in docs/quality/dgamma; finished cells
# are reused and interrupted ones resumed.
#
# Usage: training/experiments/d_gamma.sh quarter|half|quarter-resize|quarter-noise "SEEDS" [DATA ...]
# Report: python -m training.quality --report-only --data builtin instruments --seeds 0 1 2 \
#             --recipes modern --tag dgamma-q --out docs/quality/dgamma   (or the other tags)
usage() { echo "usage: $0 quarter|half|quarter-resize|quarter-noise SEEDS [DATA ...]" >&2; exit 2; }
extra=()
case $1 in
    quarter) tag=dgamma-q gamma=0.0064 ;;
    half) tag=dgamma-h gamma=0.0128 ;;
    quarter-resize) tag=dgamma-qr gamma=0.0064 extra=(--g-last resize) ;;
    quarter-noise) tag=dgamma-qn gamma=0.0064 extra=(--g-noise pixel) ;;
    *) usage ;;
esac
[ $# -ge 2 ] || usage
seeds=$2; shift 2
exec "$(dirname "$0")/screen.sh" "$tag" docs/quality/dgamma "$seeds" "$@" -- \
    --r1-gamma "$gamma" --r2-gamma "$gamma" "${extra[@]}"
