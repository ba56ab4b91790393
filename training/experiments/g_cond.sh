#!/bin/bash
# The default run (conditional, modern recipe, 4000 lazy steps) with the class steering
# every block of G: --g-cond norm (a scale and offset per class in each of G's BatchNorms,
# as in the generators of Miyato & Koyama, 2018, and BigGAN) beside the default's class
# embedding at the input only. Same cost. Tag gcond-norm; results in docs/quality/gcond;
# finished cells are reused and interrupted ones resumed.
#
# Usage: training/experiments/g_cond.sh "SEEDS" [DATA ...]; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 1 2 \
#            --recipes modern --tag gcond-norm --out docs/quality/gcond
[ $# -ge 1 ] || { echo "usage: $0 SEEDS [DATA ...]" >&2; exit 2; }
seeds=$1; shift
exec "$(dirname "$0")/screen.sh" gcond-norm docs/quality/gcond "$seeds" "$@" -- --g-cond norm
