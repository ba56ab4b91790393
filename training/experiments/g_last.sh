#!/bin/bash
# The default run (conditional, modern recipe, 4000 lazy steps) with G's last layer drawn
# by nearest-neighbour x2 and a 3x3 convolution: --g-last resize, in place of a stride-2
# transposed convolution, whose uneven overlap draws a checkerboard (Odena et al., 2016).
# Same cost. Tag glast-resize; results in docs/quality/glast; finished cells are reused and
# interrupted ones resumed.
#
# Usage: training/experiments/g_last.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 1 2 \
#            --recipes modern --tag glast-resize --out docs/quality/glast
[ $# -ge 1 ] || { echo "usage: $0 SEEDS [DATA ...]" >&2; exit 2; }
seeds=$1; shift
exec "$(dirname "$0")/screen.sh" glast-resize docs/quality/glast "$seeds" "$@" -- --g-last resize
