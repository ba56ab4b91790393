#!/bin/bash
# The quality grid behind README's "Quality" table: the default run's budget as it was then
# (cpu preset, 3000 steps with R1/R2 on every step, pinned below; simple D) per dataset,
# recipe and seed. Finished cells are reused and interrupted ones resumed
# (training.quality), so the grid can fill over several sittings.
#
# The modern cells are named "-bn": they were trained while the modern recipe still had
# R3GAN's normalisation-free D, so they pass --d-norm batch, today's recipe default.
#
# Usage: training/experiments/grid.sh {builtin|instruments} "SEEDS"; then
#        python -m training.quality --report-only --data builtin instruments --seeds 0 1 2
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
data=$1; seeds=${2:-0}
$PY -m training.quality --data "$data" --recipes reference --seeds $seeds --out docs/quality -- --conditional off --steps 3000 --reg-every 1
$PY -m training.quality --data "$data" --recipes modern --seeds $seeds --tag bn --out docs/quality -- --conditional off --d-norm batch --steps 3000 --reg-every 1
