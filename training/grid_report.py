"""The discriminator grid's report: OUT/report.md, report.json, plots, samples.

`write(out, cells, expected, meta)` reads the finished cells' run directories (what the
in-training evaluation measured on held-out files, and D's verdicts on clean inputs),
aggregates each arm over seeds (mean, sd, range), and writes the report. The conclusion
is computed from the numbers by `conclusion`: a difference is stated only where the two
arms' seed ranges do not overlap, and everything else is called inconclusive.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

# Per-cell figures: (key, header, format, better). `better` is "low", "high" or None.
METRICS = [
    ("one_sided", "D one-sided", "{:.0%}", "low"),
    ("fooled", "of which D fooled", "{:.0%}", None),
    ("rank", "D ranks real above fake", "{:.2f}", None),
    ("d_loss_excess", "D loss − equilibrium", "{:+.2f}", None),
    ("is_ratio", "IS / real", "{:.2f}", "high"),
    ("fd_ratio", "FD / real-vs-real", "{:.1f}", "low"),
    ("ndb_k", "NDB/K", "{:.2f}", "low"),
    ("classes_covered", "classes", "{:.1f}", "high"),
    ("silent_share", "silent", "{:.2f}", "low"),
    ("steps_per_sec", "steps/s", "{:.2f}", "high"),
    ("minutes", "minutes", "{:.1f}", None),
]
FLOOR_IS = 1.2  # an IS this close to 1 means one class: no sample quality to compare
PLOTS = {"fd": "fd_curves.png", "balance": "balance_curves.png"}


def cell_summary(cell) -> dict:
    """What one finished cell measured: the final evaluation and the run's clean balance."""
    from tfgan.rundir import RunDir
    from training.quality import summarize_run

    run = RunDir(cell.path)
    s = summarize_run(cell.path) or {}
    rows = run.read_metrics()
    ranks = [r["clean_rank"] for r in rows if r.get("clean_rank") is not None]
    rel = run.load_config().train.loss == "rpgan"
    key = "clean_rank" if rel else "clean_fake_acc"
    verdicts = [r[key] for r in rows if r.get(key) is not None]
    excess = [r["clean_d_loss"] - r["clean_d_loss_eq"] for r in rows
              if r.get("clean_d_loss") is not None]
    rates = [r["steps_per_sec"] for r in rows[1:] if r.get("steps_per_sec")]
    evals = run.read_metrics("eval")
    record = cell.record()
    return {
        **{k: s.get(k) for k in ("one_sided", "is", "is_real", "is_ratio", "fd", "fd_real",
                                  "fd_ratio", "classes_covered", "n_classes", "silent_share",
                                  "silent_share_real", "steps")},
        "fd_curve": s.get("fd_curve", []),
        "rank_curve": [(r["step"], r["clean_rank"]) for r in rows
                       if r.get("clean_rank") is not None],
        "rank": statistics.fmean(ranks) if ranks else None,
        # G won outright, or D calls everything real: right on at most 5% of fakes.
        "fooled": (sum(v <= 0.05 for v in verdicts) / len(verdicts)) if verdicts else None,
        "d_loss_excess": statistics.median(excess) if excess else None,
        "steps_per_sec": statistics.median(rates) if rates else None,
        # From the logs rather than the wall clock, so a cell killed and resumed counts
        # each step once: training at the logged rates, plus the evaluations.
        "minutes": (s.get("train_minutes") or 0.0) + sum(r.get("eval_seconds", 0.0)
                                                          for r in evals) / 60,
        "status": record.get("status"), "ndb_k": ndb_score(cell, run),
    }


def ndb_score(cell, run) -> float | None:
    """NDB/K of the final generator against the held-out real set B (cached in the cell).

    The bins are k-means cells of set B's spectrograms, k = n/16 (at most 20), so that a
    bin holds about 16 real clips.
    """
    path = Path(cell.path) / "benchmark_ndb.json"
    if path.exists():
        return json.loads(path.read_text())["ndb_k"]
    import numpy as np

    from tfgan.data import pipeline
    from tfgan.eval import metrics
    from tfgan.eval.evaluate import generate
    from tfgan.eval.live import build_held_out
    from tfgan.models import balanced_labels, with_labels
    from tfgan.rundir import load_generator

    generator, config, stats, _ = load_generator(run)
    scan = pipeline.scan_folder(pipeline.builtin_or(config.data.data_dir), config.data)
    held = build_held_out(scan, config.data, stats, seed=config.train.seed, stream=None)
    if held is None:
        return None
    labels = balanced_labels(held.n, config.model.num_classes)
    if labels is None:
        fake = generate(generator, held.n, config.model.latent_dim, config.train.seed)
    else:
        import tensorflow as tf

        z = tf.random.stateless_normal([held.n, config.model.latent_dim],
                                       seed=[config.train.seed, 0])
        fake = with_labels(generator, z, labels, training=False).numpy()
    if not np.all(np.isfinite(fake)):
        return None
    k = max(2, min(20, held.n // 16))
    value = metrics.ndb_k(held.real_b, fake, k=k, seed=0)["ndb_over_k"]
    path.write_text(json.dumps({"ndb_k": value, "k": k, "n": held.n}))
    return value


def aggregate(values: list) -> dict | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"mean": statistics.fmean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "min": min(vals), "max": max(vals), "n": len(vals)}


def arm_table(summaries: dict) -> dict:
    """{dataset: {arm: {metric: aggregate}}} from {(dataset, arm, seed): summary}.

    A cell that diverged is not averaged with the finished ones (its last evaluation came
    before the divergence); its arm counts it under "diverged".
    """
    table: dict = {}
    for (data, arm, _), s in summaries.items():
        table.setdefault(data, {}).setdefault(arm, []).append(s)
    keys = [k for k, *_ in METRICS] + ["is"]
    out: dict = {}
    for data, arms in table.items():
        for arm, runs in arms.items():
            done = [s for s in runs if s.get("status") != "diverged"]
            out.setdefault(data, {})[arm] = {
                **{k: aggregate([s.get(k) for s in done]) for k in keys},
                "diverged": len(runs) - len(done), "seeds": len(runs)}
    return out


def differs(a: dict | None, b: dict | None) -> int:
    """+1 when a's seed range lies wholly above b's, -1 below, 0 when they overlap or
    either has fewer than two seeds (no spread to compare against)."""
    if not a or not b or a["n"] < 2 or b["n"] < 2:
        return 0
    if a["min"] > b["max"]:
        return 1
    if a["max"] < b["min"]:
        return -1
    return 0


def at_floor(arm: dict) -> bool:
    """No sample quality to compare: no quality figures, or one class in every seed
    (at most one class covered, or an Inception Score of about 1)."""
    if arm.get("fd_ratio") is None:
        return True
    classes, is_abs = arm.get("classes_covered"), arm.get("is")
    return bool((classes and classes["max"] <= 1) or (is_abs and is_abs["max"] <= FLOOR_IS))


def _ms(agg: dict | None, fmt: str) -> str:
    if agg is None:
        return "n/a"
    if agg["n"] < 2:
        return fmt.format(agg["mean"]) + " (1 seed)"
    return f"{fmt.format(agg['mean'])} ± {fmt.format(agg['sd']).lstrip('+')}"


def compare(data: str, arms: dict, a: str, b: str, key: str, what: str) -> str | None:
    """A sentence comparing arm a with arm b on `key`, or None when either is missing."""
    if a not in arms or b not in arms:
        return None
    if arms[a].get(key) is None or arms[b].get(key) is None:
        gone = [x for x in (a, b) if arms[x].get("diverged")]
        if gone:
            return (f"{data}, {what}: inconclusive ({', '.join(gone)} diverged in every "
                    "finished seed).")
        return None
    fmt, better = next((f, bt) for k, _, f, bt in METRICS if k == key)
    x, y = arms[a][key], arms[b][key]
    sign = differs(x, y)
    figures = f"{a} {_ms(x, fmt)} vs {b} {_ms(y, fmt)}"
    for arm in (a, b):
        if arms[arm].get("diverged"):
            figures += (f"; {arm} diverged in {arms[arm]['diverged']} of "
                        f"{arms[arm]['seeds']} seeds, not counted")
    if sign == 0:
        why = ("fewer than two seeds" if min(x["n"], y["n"]) < 2 else "the seed ranges overlap")
        return f"{data}, {what}: inconclusive ({figures}; {why})."
    if better == "low":
        winner = a if sign < 0 else b
    else:
        winner = a if sign > 0 else b
    return (f"{data}, {what}: {winner} is better ({figures}; the seed ranges do not "
            "overlap).")


def conclusion(table: dict, roles: dict) -> str:
    """The report's conclusion, computed from the per-arm aggregates."""
    out = []
    for data, arms in table.items():
        if arms and all(at_floor(a) for a in arms.values()):
            out.append(f"{data}: inconclusive: every arm is at the floor (one class or no "
                       "quality figures), so there is nothing to compare.")
            continue
        pairs = [
            (roles["simple"], roles["strong"], "is the simple D's fight more balanced than "
             "ResNet-9's (share of the run one-sided)", "one_sided"),
            (roles["simple"], roles["strong"], "sample quality, simple vs ResNet-9 (FD ratio)",
             "fd_ratio"),
            (roles["lr_cut"], roles["strong"], "does cutting ResNet-9's lr tenfold balance it",
             "one_sided"),
            (roles["strong_modern"], roles["strong"], "does the modern recipe balance ResNet-9",
             "one_sided"),
            (roles["strong_modern"], roles["strong"], "does the modern recipe improve ResNet-9's "
             "samples (FD ratio)", "fd_ratio"),
            (roles["controls"], roles["strong"], "do the pilot's controls balance ResNet-9",
             "one_sided"),
            (roles["controls"], roles["strong"], "do the pilot's controls improve ResNet-9's "
             "samples (FD ratio)", "fd_ratio"),
            (roles["simple_modern"], roles["strong_modern"], "under the modern recipe, simple vs "
             "ResNet-9 (FD ratio)", "fd_ratio"),
        ]
        for a, b, what, key in pairs:
            line = compare(data, arms, a, b, key, what)
            if line:
                out.append(line)
        best = sorted((a for a in arms if arms[a].get("fd_ratio")),
                      key=lambda a: arms[a]["fd_ratio"]["mean"])
        if len(best) >= 2:
            x, y = arms[best[0]]["fd_ratio"], arms[best[1]]["fd_ratio"]
            if all(differs(x, arms[o]["fd_ratio"]) < 0 for o in best[1:]):
                out.append(f"{data}: the best samples came from {best[0]} (FD ratio "
                           f"{_ms(x, '{:.1f}')}), ahead of every other arm beyond the seed "
                           "spread.")
            else:
                why = ("fewer than two seeds" if min(x["n"], y["n"]) < 2
                       else "their seed ranges overlap")
                out.append(f"{data}: best samples: inconclusive between {best[0]} (FD ratio "
                           f"{_ms(x, '{:.1f}')}) and {best[1]} ({_ms(y, '{:.1f}')}); {why}.")
    if not out:
        return "Inconclusive: no finished cells."
    return "\n".join(f"- {line}" for line in out)


def _band_plot(path: Path, summaries: dict, key: str, ylabel: str, title: str, logy=False):
    """One panel per dataset: each arm's mean over seeds, with the seed range as a band."""
    from tfgan.plots import _pyplot

    plt = _pyplot()
    datasets = sorted({d for d, _, _ in summaries})
    fig, axes = plt.subplots(1, max(1, len(datasets)), figsize=(6.2 * max(1, len(datasets)), 3.8),
                             dpi=80, squeeze=False)
    colours = plt.get_cmap("tab10")
    every_arm = sorted({a for _, a, _ in summaries})  # one colour per arm in every panel
    for ax, data in zip(axes[0], datasets):
        arms = sorted({a for d, a, _ in summaries if d == data})
        for arm in arms:
            i = every_arm.index(arm)
            curves = [dict(s[key]) for (d, a, _), s in summaries.items()
                      if d == data and a == arm and s.get(key)]
            steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
            pts = [(t, [c[t] for c in curves if c[t] is not None]) for t in steps]
            pts = [(t, v) for t, v in pts if v]
            if not pts:
                continue
            xs = [t for t, _ in pts]
            ax.plot(xs, [statistics.fmean(v) for _, v in pts], color=colours(i % 10),
                    label=f"{arm} ({len(curves)} seeds)", linewidth=1.3)
            ax.fill_between(xs, [min(v) for _, v in pts], [max(v) for _, v in pts],
                            color=colours(i % 10), alpha=0.15)
        if logy:
            ax.set_yscale("log")
        ax.set_title(data, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, framealpha=0.6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def copy_samples(out: Path, cells) -> dict:
    """Each arm's final sample grid and two WAVs, from its lowest finished seed."""
    dest = out / "samples"
    dest.mkdir(exist_ok=True)
    copied = {}
    for cell in sorted(cells, key=lambda c: c.seed):
        from training.benchmark import dataset_label

        key = f"{dataset_label(cell.data)}-{cell.arm}"
        grids = sorted((Path(cell.path) / "samples").glob("step_*.png"))
        if key in copied or not grids:
            continue
        last = grids[-1]
        files = [last, *sorted(last.parent.glob(f"{last.stem}_*.wav"))[:2]]
        copied[key] = []
        for f in files:
            target = dest / f"{key}-s{cell.seed}{f.name[len(last.stem):]}"
            shutil.copyfile(f, target)
            copied[key].append(str(target.relative_to(out)))
    return copied


def write(out, cells, expected: list[str], meta: dict) -> dict:
    from training.benchmark import dataset_label

    out = Path(out)
    summaries = {(dataset_label(c.data), c.arm, c.seed): cell_summary(c) for c in cells}
    table = arm_table(summaries)
    text = conclusion(table, meta["roles"])
    done = {f"{d}/{a}-s{s}" for d, a, s in summaries}
    missing = [e for e in expected if e not in done]
    minutes = sum(s["minutes"] for s in summaries.values())
    plots = {}
    if summaries:
        _band_plot(out / PLOTS["fd"], summaries, "fd_curve", "FD (held-out)",
                   "FD over steps: mean over seeds, band = seed range", logy=True)
        _band_plot(out / PLOTS["balance"], summaries, "rank_curve",
                   "share of pairs D ranks real above fake",
                   "Balance on clean inputs (0.5: D cannot tell; 1: D always right)")
        plots = dict(PLOTS)
    report = {"meta": meta, "conclusion": text, "missing": missing, "plots": plots,
              "samples": copy_samples(out, cells), "grid_minutes": minutes,
              "cells": {f"{d}/{a}-s{s}": {k: v for k, v in sm.items()
                                          if k not in ("fd_curve", "rank_curve")}
                        for (d, a, s), sm in summaries.items()},
              "arms": table}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(markdown(report))
    return report


def markdown(report: dict) -> str:
    meta = report["meta"]
    lines = ["# Discriminator benchmark: simple CNN vs ResNet-9, two recipes", "",
             f"Budget per cell: {meta['steps']} steps, batch {meta['batch_size']}, base width "
             f"c = {meta['base_width']} for G and every D, {meta['precision']}, the cpu preset; "
             f"seeds {', '.join(map(str, meta['seeds']))}; datasets "
             f"{', '.join(meta['datasets'])}. Every figure is measured by the in-training "
             "evaluation on held-out files the classifier never learned from, against "
             "real-vs-real FD of two disjoint real halves; balance is D's verdict on clean "
             "inputs (no augmentation, noise or smoothing).", "",
             f"Command: `{meta.get('command', 'python -m training.benchmark')}`", "",
             f"Grid time{' so far' if report['missing'] else ''}: "
             f"{report['grid_minutes']:.0f} min of training and evaluation on "
             f"{meta['cpu_count']} CPU cores"
             + (f" ({len(report['missing'])} of the grid's cells still to run)."
                if report["missing"] else ", every cell finished."), "",
             "## Conclusion", "",
             "A difference is stated only where the two arms' seed ranges do not overlap.", "",
             report["conclusion"], "", "## Arms", ""]
    lines += [f"- **{a}**: `{f}`" for a, f in meta["arms"].items()]
    pilot = meta.get("pilot") or {}
    if pilot.get("choice"):
        lines += ["", f"Controls pilot ({pilot['data']}, seed {pilot['seed']}, not scored): "
                      f"rule: {pilot['rule']}; chose **{pilot['choice']}**.", "",
                  "| candidate | flags | D one-sided | FD ratio | IS ratio | classes |",
                  "|---|---|---|---|---|---|"]
        for name, c in pilot["candidates"].items():
            def f(v, fmt):
                return "n/a" if v is None else fmt.format(v)
            lines.append(f"| {name} | `{c['flags']}` | {f(c['one_sided'], '{:.0%}')} | "
                         f"{f(c['fd_ratio'], '{:.1f}')} | {f(c['is_ratio'], '{:.2f}')} | "
                         f"{c['classes_covered']} |")
    for data, arms in report["arms"].items():
        lines += ["", f"## {data}: mean ± sd over seeds", "",
                  "| arm | " + " | ".join(h for _, h, _, _ in METRICS) + " |",
                  "|---|" + "---|" * len(METRICS)]
        for arm, m in sorted(arms.items()):
            name = arm + (f" ({m['diverged']} of {m['seeds']} diverged)" if m["diverged"]
                          else "")
            lines.append(f"| {name} | " + " | ".join(_ms(m[k], f) for k, _, f, _ in METRICS)
                         + " |")
    lines += ["", "D one-sided: share of log intervals in which D, on clean inputs, was right "
              "on ≥ 95% of both real and fake or on ≤ 5% of fakes (rpgan: ranked the real "
              "example above its paired fake in ≥ 95% or ≤ 5% of pairs); of which D fooled: "
              "the intervals of the second kind. D ranks real above "
              "fake: mean over the run of that pairwise share (0.5: D cannot tell). D loss − "
              "equilibrium: median of D's clean loss minus its value at logits 0."]
    if report["plots"]:
        lines += ["", f"![FD curves]({report['plots']['fd']})",
                  f"![balance]({report['plots']['balance']})"]
    if report["samples"]:
        lines += ["", "## Samples (final grid and two WAVs of each arm's first seed)", ""]
        for key, files in report["samples"].items():
            wavs = " ".join(f"[{Path(f).name}]({f})" for f in files[1:])
            lines.append(f"- {key}: ![]({files[0]}) {wavs}")
    lines += ["", "## Cost per cell", "", "| cell | status | minutes | steps/s |", "|---|---|---|---|"]
    for name, c in report["cells"].items():
        sps = "n/a" if c["steps_per_sec"] is None else f"{c['steps_per_sec']:.2f}"
        lines.append(f"| {name} | {c['status']} | {c['minutes']:.1f} | {sps} |")
    if report["missing"]:
        lines += ["", f"Not yet run ({len(report['missing'])}): " + ", ".join(report["missing"])]
    return "\n".join(lines) + "\n"
