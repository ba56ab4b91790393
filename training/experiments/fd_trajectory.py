"""The FD ratio (G's FD to the held-out set over the real-vs-real FD) at every in-training
evaluation of each run, and its mean over the run's last quarter: how settled a run ends.

Usage: python training/experiments/fd_trajectory.py RUN_DIR [RUN_DIR ...]
"""

import json
import sys
from pathlib import Path


def main(paths):
    for path in paths:
        lines = (Path(path) / "metrics.jsonl").read_text().splitlines()
        rows = [r for r in map(json.loads, lines) if r.get("kind") == "eval"]
        if not rows:
            print(f"{Path(path).name}: no evaluations")
            continue
        ratios = [(r["step"], r["fd"] / r["fd_real"]) for r in rows]
        last = ratios[-1][0]
        tail = [x for s, x in ratios if s > 0.75 * last]
        best_step, best = min(ratios, key=lambda sr: sr[1])
        print(f"{Path(path).name}: last quarter mean {sum(tail) / len(tail):.2f} "
              f"(min {min(tail):.2f}, max {max(tail):.2f}), best {best:.2f} at step {best_step}")
        print("  " + "  ".join(f"{s}:{x:.1f}" for s, x in ratios))


if __name__ == "__main__":
    main(sys.argv[1:])
