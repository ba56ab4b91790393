#!/bin/bash
# The default run (conditional, modern recipe, 4000 lazy steps) with both of G's texture
# changes: --g-last resize (nearest x2 and a 3x3 convolution, no checkerboard) and
# --g-noise pixel (noise on every output pixel, scaled by a map G learns). Same cost. Tag
# glast-noise; results in docs/quality/glastnoise; finished cells are reused and
# interrupted ones resumed.
#
# Usage: training/experiments/g_last_noise.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 1 2 \
#            --recipes modern --tag glast-noise --out docs/quality/glastnoise
[ $# -ge 1 ] || { echo "usage: $0 SEEDS [DATA ...]" >&2; exit 2; }
seeds=$1; shift
exec "$(dirname "$0")/screen.sh" glast-noise docs/quality/glastnoise "$seeds" "$@" -- --g-last resize --g-noise pixel
