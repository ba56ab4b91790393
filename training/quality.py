"""python -m training.quality: does the GAN learn real sounds? The quality targets, measured.

Trains the default run's budget for each recipe on each dataset and seed, then prints
and writes (OUT/quality.md, OUT/quality.json) what the in-training evaluation of each run
measured at its last step, on held-out files (`tfgan.eval.live`), against the targets:

* IS at least 0.7 of the held-out real data's; FD at most 2x the real-vs-real FD of
  two disjoint real halves; every class covered; silent samples no more frequent than
  in the real slices;
* D one-sided (on clean inputs: right on >= 95% of both real and fake, or on <= 5% of
  fakes; for the relativistic loss, the real example ranked above its paired fake in
  >= 95% or <= 5% of pairs) in under 25% of the log intervals;
* time to quality: the modern recipe reaches the reference recipe's final FD within a
  quarter of the reference's steps.

Datasets: `builtin` (the procedural set), `instruments` (real one-shot recordings
rendered from Debian's FluidR3 soundfont, `tfgan.data.instruments`), or any folder.
Each cell is a run directory OUT/runs/<dataset>-<recipe>-s<seed>; a finished cell is
reused, an interrupted one resumed, so the grid can fill over several sittings; the
report covers the finished cells and lists the missing ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __name__ == "__main__":  # before TensorFlow is imported: see tfgan/console.py
    from tfgan.console import quiet_native_logs

    quiet_native_logs()

from tfgan.config import RECIPES  # noqa: E402

TARGETS = {"is_ratio": 0.7, "fd_ratio": 2.0, "one_sided": 0.25, "time_to_quality": 0.25}
DOMINANT, FOOLED = 0.95, 0.05


def dataset_dir(name: str) -> str | None:
    """None for the built-in set; the built (cached) instrument set; else the path."""
    if name == "builtin":
        return None
    if name == "instruments":
        from tfgan.data.instruments import build_instrument_dataset
        from tfgan.data.synthetic import default_cache_dir

        return str(build_instrument_dataset(default_cache_dir() / "instruments-s0"))
    return name


def one_sided_share(rows: list[dict], relativistic: bool) -> float | None:
    """Share of log intervals in which D, on clean inputs, won or lost outright."""
    flags = []
    for r in rows:
        if relativistic and "clean_rank" in r:
            flags.append(r["clean_rank"] >= DOMINANT or r["clean_rank"] <= FOOLED)
        elif not relativistic and "clean_fake_acc" in r:
            flags.append((r["clean_real_acc"] >= DOMINANT and r["clean_fake_acc"] >= DOMINANT)
                         or r["clean_fake_acc"] <= FOOLED)
    return sum(flags) / len(flags) if flags else None


def summarize_run(run_dir, raw: bool = False, at_step: int | None = None) -> dict | None:
    """The target figures of one finished run, or None when it has no evaluation.

    With `raw`, the live generator's figures where the run also kept an EMA: the EMA
    only reads G's weights, so they are those of the same run without an EMA. With
    `at_step`, the run as it stood at that step: its last evaluation at or before it, and
    balance and minutes over the log lines up to it.
    """
    from tfgan.rundir import RunDir

    run = RunDir(run_dir)
    config = run.load_config()
    limit = float("inf") if at_step is None else at_step

    def upto(rows):
        return [r for r in rows if r["step"] <= limit]

    evals = upto(run.read_metrics("eval"))
    if not evals:
        return None
    if raw:
        evals = [{**r, **{k: r[f"{k}_raw"] for k in ("fd", "is", "classes_covered",
                                                      "silent_share") if f"{k}_raw" in r}}
                 for r in evals]
    last = evals[-1]
    ok = last["fd"] is not None
    out = {
        "run_dir": str(run.path), "recipe": config.train.recipe, "steps": last["step"],
        "fd": last["fd"], "fd_real": last["fd_real"],
        "fd_ratio": last["fd"] / last["fd_real"] if ok else None,
        "is": last["is"], "is_real": last["is_real"],
        "is_ratio": last["is"] / last["is_real"] if ok else None,
        "classes_covered": last["classes_covered"], "n_classes": last.get("n_classes"),
        "silent_share": last["silent_share"], "silent_share_real": last["silent_share_real"],
        "one_sided": one_sided_share(upto(run.read_metrics()), config.train.loss == "rpgan"),
        "fd_curve": [(r["step"], r["fd"]) for r in evals],
        "n": last.get("n"),
    }
    train = upto(run.read_metrics())
    rates = [r["steps_per_sec"] for r in train[1:] if r.get("steps_per_sec")]
    every = config.train.log_every
    out["train_minutes"] = (sum(every / x for x in rates) / 60) if rates else None
    return out


def met(s: dict) -> dict:
    """Which targets one run meets (None where it cannot be judged)."""
    def le(v, t):
        return None if v is None else v <= t

    return {"is": None if s["is_ratio"] is None else s["is_ratio"] >= TARGETS["is_ratio"],
            "fd": le(s["fd_ratio"], TARGETS["fd_ratio"]),
            "classes": s["classes_covered"] == s["n_classes"],
            "silence": (None if s["silent_share"] is None
                        else s["silent_share"] <= s["silent_share_real"]),
            "balance": None if s["one_sided"] is None else s["one_sided"] < TARGETS["one_sided"]}


def time_to_quality(modern: dict, reference: dict) -> float | None:
    """First step at which modern's FD <= reference's final FD, over reference's steps."""
    goal = reference["fd"]
    if goal is None:
        return None
    for step, fd in modern["fd_curve"]:
        if fd is not None and fd <= goal:
            return step / reference["steps"]
    return None


def render(cells: dict, missing: list[str]) -> str:
    def f(v, fmt="{:.2f}"):
        return "–" if v is None else fmt.format(v)

    def tick(v):
        return "" if v is None else (" ✓" if v else " ✗")

    lines = ["| run | steps | IS / real | FD / real-vs-real | classes | silent (real) | "
             "D one-sided | minutes |", "|---|---|---|---|---|---|---|---|"]
    for name, s in sorted(cells.items()):
        m = met(s)
        steps = f"{s['steps']}" + (f" (--at-step {s['at_step']})" if s.get("at_step") else "")
        lines.append(
            f"| {name} | {steps} | {f(s['is'])} / {f(s['is_real'])} = {f(s['is_ratio'])}"
            f"{tick(m['is'])} | {f(s['fd'])} / {f(s['fd_real'])} = {f(s['fd_ratio'])}"
            f"{tick(m['fd'])} | {s['classes_covered']}/{s['n_classes']}{tick(m['classes'])} | "
            f"{f(s['silent_share'])} ({f(s['silent_share_real'])}){tick(m['silence'])} | "
            f"{f(s['one_sided'], '{:.0%}')}{tick(m['balance'])} | {f(s['train_minutes'], '{:.1f}')} |")
    ttq = []
    for name, s in sorted(cells.items()):
        if s["recipe"] == "modern":
            ref = cells.get(f"{s['data']}-reference-s{s['seed']}")
            if ref and ref["fd"] is not None:
                t = time_to_quality(s, ref)
                ttq.append(f"- {name}: reaches the reference's final FD ({ref['fd']:.2f}) at "
                           + ("never" if t is None else f"{t:.2f} of its steps")
                           + tick(None if t is None else t <= TARGETS["time_to_quality"]))
    out = "\n".join(lines)
    if ttq:
        out += "\n\nTime to quality (target: at most 0.25 of the reference's steps):\n" + "\n".join(ttq)
    if missing:
        out += "\n\nNot yet run: " + ", ".join(missing)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.quality", description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="+", default=["builtin", "instruments"],
                   help="datasets: builtin, instruments, or folders (default: both named)")
    p.add_argument("--recipes", nargs="+", choices=RECIPES, default=list(RECIPES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--out", default="docs/quality", help="report folder (runs under OUT/runs)")
    p.add_argument("--report-only", action="store_true", help="train nothing; report what is done")
    p.add_argument("--raw", action="store_true",
                   help="report the live generator where a run also kept an EMA")
    p.add_argument("--at-step", type=int, metavar="N",
                   help="report each run as it stood at step N (its last evaluation at or "
                        "before N), to compare runs of different lengths at equal steps")
    p.add_argument("--tag", default="",
                   help="suffix of the cell names, for a variant trained with extra flags")
    p.add_argument("run_flags", nargs=argparse.REMAINDER,
                   help="after --: more training.run flags for every cell (e.g. -- --steps 600)")
    args = p.parse_args(argv)
    if args.at_step is not None and args.at_step < 1:
        p.error(f"--at-step must be a positive step. Received: {args.at_step}")
    extra = [a for a in args.run_flags if a != "--"]
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    from training import run as run_cli
    from tfgan.rundir import RunDir

    cells, missing = {}, []
    # Seed by seed, so that a partial grid has every dataset and recipe at its first seeds.
    for seed in args.seeds:
        for data in args.data:
            label = Path(data).name if data not in ("builtin", "instruments") else data
            for recipe in args.recipes:
                name = f"{label}-{recipe}-s{seed}" + (f"-{args.tag}" if args.tag else "")
                run_dir = out / "runs" / name
                run = RunDir(run_dir)
                done = run.exists() and _finished(run)
                if not done and not args.report_only:
                    flags = ["--recipe", recipe, "--seed", str(seed), "--run-dir", str(run_dir)]
                    folder = dataset_dir(data)
                    if folder:
                        flags += ["--data", folder]
                    if run.exists():
                        flags.append("--resume")
                    print(f"== {name}: python -m training.run {' '.join(flags + extra)}",
                          flush=True)
                    code = run_cli.main(flags + extra)
                    if code != 0:
                        print(f"{name}: training.run exited {code}", file=sys.stderr)
                        return code
                    done = True
                summary = summarize_run(run_dir, args.raw, args.at_step) if done else None
                if summary is None:
                    missing.append(name)
                else:
                    cells[name] = {**summary, "data": label, "seed": seed, "tag": args.tag,
                                   "at_step": args.at_step}
    cells, missing = merged(out, cells, missing)
    text = render(cells, missing)
    print(text)
    (out / "quality.md").write_text(text + "\n")
    (out / "quality.json").write_text(json.dumps({"cells": cells, "missing": missing},
                                                 indent=1))
    return 0


def merged(out: Path, cells: dict, missing: list[str]) -> tuple[dict, list[str]]:
    """This invocation's cells added to those OUT's report already holds (other data,
    recipes, seeds or tags, from other invocations), so a narrower run adds its rows
    instead of replacing the report."""
    path = out / "quality.json"
    before = json.loads(path.read_text()) if path.exists() else {}
    cells = {**before.get("cells", {}), **cells}
    missing = sorted((set(before.get("missing", [])) | set(missing)) - set(cells))
    return cells, missing


def _finished(run) -> bool:
    rows = run.read_metrics()
    return bool(rows) and rows[-1]["step"] >= run.load_config().train.steps


if __name__ == "__main__":
    sys.exit(main())
