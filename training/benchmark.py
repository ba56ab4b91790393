"""python -m training.benchmark: the discriminator question, as a resumable grid.

Does a simple CNN discriminator give a balanced fight where ResNet-9 overpowers the
generator, and what makes even ResNet-9 train well? The grid trains

    discriminator {simple, resnet9} x recipe {reference, reference with D's lr / 10, modern}

plus ResNet-9 on the reference recipe with balance controls (`resnet9-controls`) chosen
by a pilot on a seed that is never scored, for every seed and dataset. Every cell is a
`python -m training.run` run directory, OUT/runs/<dataset>/<arm>-s<seed>, trained in a
child process with the same budget, width, batch and precision and evaluated while it
trains on held-out files (`tfgan.eval.live`). A finished cell is reused and an interrupted
one resumed, so the grid fills over several sittings; `--report-only` trains nothing.
The report (training/grid_report.py) covers the finished cells and lists the missing ones.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # before TensorFlow is imported: see tfgan/console.py
    from tfgan.console import quiet_native_logs

    quiet_native_logs()

# The arms the project's question compares, by their part in it; the report reads these
# names through meta["roles"] rather than knowing them.
ROLES = {"simple": "simple-reference", "strong": "resnet9-reference",
         "lr_cut": "resnet9-dlr0.1", "strong_modern": "resnet9-modern",
         "simple_modern": "simple-modern", "controls": "resnet9-controls"}
ARMS = {
    "simple-reference": "--disc simple --recipe reference",
    "simple-dlr0.1": "--disc simple --recipe reference --d-lr-scale 0.1",
    "simple-modern": "--disc simple --recipe modern",
    "resnet9-reference": "--disc resnet9 --recipe reference",
    "resnet9-dlr0.1": "--disc resnet9 --recipe reference --d-lr-scale 0.1",
    "resnet9-modern": "--disc resnet9 --recipe modern",
}
CONTROLS = "resnet9-controls"
CONTROLS_BASE = "--disc resnet9 --recipe reference"
# Balance controls the pilot chooses among. Candidates from the earlier 400-step pilot
# (docs/benchmark/pilot.md before the grid, run on the seed it was then scored on; hence
# this pilot, on a seed that is never scored).
CANDIDATES = {
    "smooth": "--label-smoothing 0.2",
    "augment": "--augment shift,tmask,fmask",
    "smooth-augment-noise": "--label-smoothing 0.2 --augment shift,tmask,fmask "
                            "--instance-noise 0.5",
}
PILOT_SEED = 100  # never among the scored seeds
# Sized so the 42-cell grid fits a few 3-hour sittings on 2 CPU cores.
DEFAULTS = {"steps": 1500, "base_width": 16, "batch_size": 32, "precision": "mixed_bfloat16"}
CELL_RECORD = "benchmark_cell.json"  # in each cell's run directory
DIVERGED = 3  # training.run's exit status after a non-finite loss


class BenchmarkError(ValueError):
    """A grid that cannot be run as asked."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m training.benchmark",
        description="Train the discriminator grid (simple and ResNet-9 under the reference "
                    "recipe, the reference with D's lr cut tenfold, and the modern recipe, "
                    "plus ResNet-9 with pilot-chosen balance controls) over seeds and "
                    "datasets; write OUT/report.md, report.json and plots.")
    p.add_argument("--data", nargs="+", default=["builtin", "instruments"], metavar="DATA",
                   help="datasets: builtin, instruments (real recordings built from "
                        "Debian's soundfont) or folders (default: builtin instruments)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=[*ARMS, CONTROLS], metavar="ARM",
                   help=f"arms to run (default all): {', '.join([*ARMS, CONTROLS])}")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"],
                   help=f"steps per cell (default {DEFAULTS['steps']})")
    p.add_argument("--base-width", type=int, default=DEFAULTS["base_width"], metavar="C",
                   help=f"base width c of G and every D (default {DEFAULTS['base_width']})")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    p.add_argument("--precision", default=DEFAULTS["precision"],
                   choices=("float32", "mixed_bfloat16", "mixed_float16"),
                   help=f"every arm's precision (default {DEFAULTS['precision']})")
    p.add_argument("--eval-every", type=int,
                   help="steps between in-training evaluations (default steps/6)")
    p.add_argument("--pilot-seed", type=int, default=PILOT_SEED,
                   help=f"seed of the controls pilot (default {PILOT_SEED}; never scored)")
    p.add_argument("--out", default="runs/benchmark", metavar="DIR",
                   help="report folder; cells go under OUT/runs (default runs/benchmark)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing; report the finished cells")
    args = p.parse_args(argv)
    if args.steps < 1 or args.base_width < 1 or args.batch_size < 1:
        p.error("--steps, --base-width and --batch-size must be positive")
    if args.pilot_seed in args.seeds:
        p.error(f"--pilot-seed {args.pilot_seed} is a scored seed; the controls must be "
                "chosen on a seed that is not scored")
    unknown = [a for a in args.arms if a not in ARMS and a != CONTROLS]
    if unknown:
        p.error(f"unknown arms {unknown}; expected some of {', '.join([*ARMS, CONTROLS])}")
    return args


def dataset_label(data: str) -> str:
    return data if data in ("builtin", "instruments") else Path(data).name


def shared_flags(args) -> list[str]:
    """Flags every cell gets: the budget, width, batch, precision and evaluation."""
    eval_every = args.eval_every or max(1, args.steps // 6)
    # Unconditional, as in the earlier attempt: the question is about D alone.
    return ["--conditional", "off", "--steps", str(args.steps), "--base-width", str(args.base_width),
            "--batch-size", str(args.batch_size), "--precision", args.precision,
            "--preset", "cpu", "--eval-every", str(eval_every),
            "--log-every", str(max(1, args.steps // 100)), "--sample-every", str(args.steps),
            "--checkpoint-every", str(max(1, args.steps // 4)),
            # The grid was measured with R1/R2 on every step, before the modern recipe
            # made them lazy; kept so that its cells stay comparable.
            "--reg-every", "1"]


class Cell:
    """One run of the grid: an arm's flags on one dataset and seed, in its own folder."""

    def __init__(self, out: Path, data: str, arm: str, seed: int, flags: str, shared):
        self.data, self.arm, self.seed, self.flags = data, arm, seed, flags
        self.name = f"{arm}-s{seed}"
        self.path = out / "runs" / dataset_label(data) / self.name
        self.argv = [*shlex.split(flags), "--seed", str(seed), *shared]

    @property
    def record_path(self) -> Path:
        return self.path / CELL_RECORD

    def record(self) -> dict:
        return json.loads(self.record_path.read_text()) if self.record_path.exists() else {}

    def same(self, r: dict) -> bool:
        """Whether a cell record is of this cell's settings (and data, where recorded:
        two folders of the same name share a cell name)."""
        return r.get("argv") == self.argv and r.get("data", self.data) == self.data

    def finished(self) -> bool:
        r = self.record()
        return r.get("status") in ("done", "diverged") and self.same(r)

    def check(self) -> None:
        r = self.record()
        if r and not self.same(r):
            raise BenchmarkError(f"{self.path} holds a cell trained with other settings "
                                 f"({' '.join(r.get('argv', []))}); use another --out or "
                                 "remove it")

    def train(self, stream=sys.stdout) -> str:
        """Trains (or resumes) the cell in a child process; returns its status."""
        from training.quality import dataset_dir

        self.check()
        r = self.record()
        resume = (self.path / "config.json").exists()
        argv = [*self.argv, "--run-dir", str(self.path)] + (["--resume"] if resume else [])
        folder = dataset_dir(self.data)
        if folder:
            argv += ["--data", folder]
        self.path.mkdir(parents=True, exist_ok=True)
        self.record_path.write_text(json.dumps({**r, "argv": self.argv, "data": self.data,
                                                "status": "running"}))
        print(f"== {dataset_label(self.data)}/{self.name}: python -m training.run "
              f"{' '.join(argv)}", file=stream, flush=True)
        t0 = time.perf_counter()

        def write_record(status: str, code) -> float:  # wall time adds up over sittings
            wall = time.perf_counter() - t0 + r.get("wall_seconds", 0.0)
            self.record_path.write_text(json.dumps({"argv": self.argv, "data": self.data,
                                                    "status": status, "exit": code,
                                                    "wall_seconds": wall}))
            return wall

        with open(self.path / "train.log", "a") as log:
            child = subprocess.Popen([sys.executable, "-m", "training.run", *argv],
                                     stdout=log, stderr=subprocess.STDOUT)
            try:
                code = child.wait()
            except BaseException:  # Ctrl-C or SIGTERM: let the cell checkpoint and stop
                child.send_signal(signal.SIGTERM)
                child.wait()
                write_record("stopped", child.returncode)
                raise
        status = {0: "done", DIVERGED: "diverged"}.get(code, "stopped")
        wall = write_record(status, code)
        print(f"== {dataset_label(self.data)}/{self.name}: {status} (exit {code}, "
              f"{wall / 60:.1f} min)", file=stream, flush=True)
        if status == "stopped":
            raise BenchmarkError(f"{self.name} stopped (exit {code}); see "
                                 f"{self.path / 'train.log'}; run the same command to resume")
        return status


def choose_controls(summaries: dict[str, dict]) -> tuple[str, str]:
    """The pilot's choice: the candidate whose fight was least one-sided; among those
    within 5 points of it, the lowest FD ratio. Returns (name, rule as a sentence)."""
    scored = {k: s for k, s in summaries.items() if s and s.get("one_sided") is not None}
    if not scored:
        raise BenchmarkError("no pilot candidate finished with a balance measurement (each "
                             "diverged or logged none)")
    least = min(s["one_sided"] for s in scored.values())
    near = {k: s for k, s in scored.items() if s["one_sided"] <= least + 0.05}
    name = min(near, key=lambda k: (near[k].get("fd_ratio") is None,
                                    near[k].get("fd_ratio") or 0.0))
    rule = ("least one-sided fight on clean inputs; among candidates within 5 points of it, "
            "the lowest FD ratio")
    return name, rule


def pilot(args, out: Path, data: str, shared, stream=sys.stdout) -> dict:
    """Runs (or reuses) the controls pilot on `data` at the pilot seed; OUT/pilot.json."""
    from training.quality import summarize_run

    path = out / "pilot.json"
    summaries, missing = {}, []
    for name, flags in CANDIDATES.items():
        cell = Cell(out, data, f"pilot-{name}", args.pilot_seed,
                    f"{CONTROLS_BASE} {flags}", shared)
        if not cell.finished() and not args.report_only:
            cell.train(stream)
        if cell.finished() and cell.record().get("status") == "diverged":
            summaries[name] = None  # a diverged candidate is never chosen
        elif cell.finished():
            summaries[name] = summarize_run(cell.path)
        else:
            missing.append(cell.name)
    if missing:
        return {"missing": missing}
    choice, rule = choose_controls(summaries)
    result = {"data": dataset_label(data), "seed": args.pilot_seed, "rule": rule,
              "choice": choice, "flags": CANDIDATES[choice],
              "candidates": {k: {"flags": CANDIDATES[k], "diverged": s is None,
                                 **{m: (s or {}).get(m) for m in (
                                     "one_sided", "fd_ratio", "is_ratio", "classes_covered")}}
                             for k, s in summaries.items()}}
    path.write_text(json.dumps(result, indent=1))
    return result


def run_grid(args, stream=sys.stdout) -> dict:
    """Trains the missing cells seed by seed (so a partial grid has every arm at its first
    seeds); the controls pilot runs once the first seed's other arms are done. Then writes
    the report."""
    from training import grid_report

    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    shared = shared_flags(args)
    chosen = {}

    def cell(data, arm, seed):
        flags = ARMS.get(arm) or f"{CONTROLS_BASE} {chosen.get('flags')}"
        return Cell(out, data, arm, seed, flags, shared)

    plain = [a for a in args.arms if a != CONTROLS]
    for c in (cell(d, a, s) for s in args.seeds for d in args.data for a in plain):
        c.check()
    cells = []
    for seed in args.seeds:
        for c in (cell(d, a, seed) for d in args.data for a in plain):
            if not c.finished() and not args.report_only:
                c.train(stream)
            cells.append(c)
        if CONTROLS in args.arms:
            if not chosen:
                chosen = pilot(args, out, args.data[0], shared, stream)
            if chosen.get("flags"):
                for c in (cell(d, CONTROLS, seed) for d in args.data):
                    if not c.finished() and not args.report_only:
                        c.train(stream)
                    cells.append(c)
    meta = {"steps": args.steps, "base_width": args.base_width, "batch_size": args.batch_size,
            "precision": args.precision, "seeds": args.seeds, "roles": ROLES,
            "arms": {a: (ARMS.get(a) or f"{CONTROLS_BASE} "
                                        f"{chosen.get('flags', '(chosen by the pilot)')}")
                     for a in args.arms},
            "datasets": [dataset_label(d) for d in args.data], "pilot": chosen,
            "cpu_count": os.cpu_count(), "shared_flags": shared,
            "command": "python -m training.benchmark " + " ".join(
                shlex.quote(a) for a in getattr(args, "argv", []) if a != "--report-only")}
    expected = [f"{dataset_label(d)}/{a}-s{s}" for s in args.seeds for d in args.data
                for a in args.arms]
    return grid_report.write(out, [c for c in cells if c.finished()], expected, meta)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        report = run_grid(args)
    except BenchmarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped; the cell in training checkpointed; run the same command again to "
              "resume", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"\n{report['conclusion']}\n\nWrote {os.path.join(args.out, 'report.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
