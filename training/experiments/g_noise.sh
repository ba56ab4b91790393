#!/bin/bash
# The default run (conditional, modern recipe, 4000 lazy steps) with noise on every pixel
# of G's output: --g-noise pixel (Gaussian noise before the tanh, scaled per pixel by a map
# G learns, 0.1 at the start, like StyleGAN's noise inputs but at the output) for the noise floor
# of the data, which a stack of transposed convolutions draws smooth. Same cost. Tag
# gnoise-pixel; results in docs/quality/gnoise; finished cells are reused and interrupted
# ones resumed.
#
# Usage: training/experiments/g_noise.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 1 2 \
#            --recipes modern --tag gnoise-pixel --out docs/quality/gnoise
[ $# -ge 1 ] || { echo "usage: $0 SEEDS [DATA ...]" >&2; exit 2; }
seeds=$1; shift
exec "$(dirname "$0")/screen.sh" gnoise-pixel docs/quality/gnoise "$seeds" "$@" -- --g-noise pixel
