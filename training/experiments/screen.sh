#!/bin/bash
# One candidate of a screen (docs/quality/screen/plan.md): the default run (conditional,
# modern recipe, 4000 lazy steps) with the candidate's flags, on the given seeds and data
# sets; finished cells are reused and interrupted ones resumed. The per-candidate scripts
# (g_cond.sh, g_noise.sh, ...) call this with their tag, folder and flags.
#
# Usage: training/experiments/screen.sh TAG OUT "SEEDS" [DATA ...] -- FLAGS ...
#   e.g. screen.sh gnoise-pixel docs/quality/gnoise "0 1" builtin -- --g-noise pixel
# Report: python -m training.quality --report-only --data builtin instruments \
#             --seeds 0 1 2 --recipes modern --tag TAG --out OUT
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
usage() { echo "usage: $0 TAG OUT SEEDS [DATA ...] -- FLAGS ..." >&2; exit 2; }
[ $# -ge 4 ] || usage
tag=$1 out=${OUT:-$2} seeds=$3; shift 3
data=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do data+=("$1"); shift; done
[ "$1" = "--" ] || usage
shift
[ ${#data[@]} -gt 0 ] || data=(builtin instruments)
$PY -m training.quality --data "${data[@]}" --recipes modern --seeds $seeds --tag "$tag" \
    --out "$out" -- --conditional on "$@"
