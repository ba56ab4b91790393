#!/bin/bash
# Modern-recipe variants on the built-in set (the set the project tunes on), 1000 steps,
# seed 0, scored by the in-training evaluation; results in docs/quality/sweep/quality.md.
# Usage: training/experiments/modern_sweep.sh {a|b|c}   (a and b side by side; c after)
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
run() { $PY -m training.quality --data builtin --recipes modern --tag "$1" --out docs/quality/sweep -- --conditional off --steps 1000 --reg-every 1 "${@:2}"; }
case $1 in
  a) run noaug --augment "" ; run gamma0.005 --r1-gamma 0.005 --r2-gamma 0.005 ;;
  b) run dnormbatch --d-norm batch ; run gamma0.1 --r1-gamma 0.1 --r2-gamma 0.1 ;;
  # After BatchNorm won: stronger penalties on the chosen (BatchNorm) D, for balance.
  c) run bn-gamma0.1 --d-norm batch --r1-gamma 0.1 --r2-gamma 0.1
     run bn-gamma0.4 --d-norm batch --r1-gamma 0.4 --r2-gamma 0.4 ;;
esac
