"""The benchmark's report: report.json, report.md and PNG plots from trained, scored arms.

`write_report(out, results, meta)` takes what training/benchmark.py gathered per arm (its
name, flags, metrics records and eval.json dict) and writes everything. The conclusion
paragraph is generated from the numbers by `conclusion`, never written by hand.
"""

from __future__ import annotations

import json
import os

from tfgan.eval.evaluate import DOMINANCE_THRESHOLD, FOOLED_THRESHOLD

PLOTS = {"losses": "losses.png", "d_outputs": "d_outputs.png", "grad_norms": "grad_norms.png"}
REAL_GRID = "samples_real.png"  # written by the benchmark, from the real reference set
# Columns of the two markdown tables: (row key, header, format).
BALANCE_COLUMNS = [
    ("d_loss_final", "D loss final", "{:.3f}"), ("d_loss_median", "D loss median", "{:.3f}"),
    ("g_loss_final", "G loss final", "{:.3f}"), ("g_loss_median", "G loss median", "{:.3f}"),
    ("d_real_final", "D(x) final", "{:.2f}"), ("d_fake_final", "D(G(z)) final", "{:.2f}"),
    ("d_dominance", "D dominance", "{:.0%}"), ("d_fooled", "D fooled", "{:.0%}"),
    ("g_loss_trend", "G loss trend /1k", "{:+.2f}"),
    ("d_grad_norm_median", "‖∇D‖ median", "{:.3g}"),
    ("g_grad_norm_median", "‖∇G‖ median", "{:.3g}"),
]
QUALITY_COLUMNS = [
    ("inception_score", "IS ↑", "{:.2f}"), ("frechet_distance", "FD ↓", "{:.4g}"),
    ("ndb_over_k", "NDB/K ↓", "{:.2f}"), ("classes_covered", "classes covered", "{}"),
    ("steps_per_sec", "steps/s", "{:.2f}"), ("train_seconds", "train s", "{:.0f}"),
    ("wall_seconds", "wall s", "{:.0f}"),
]


def _fmt(value, fmt="{:.3f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def _num(value) -> str:
    """Three significant digits below 10, one decimal above: 0.117, 63.0, 103.4."""
    if value is None:
        return "n/a"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def arm_row(result: dict) -> dict:
    """The flat numbers of one arm (one row of each table)."""
    ev = result["eval"]
    b = ev["balance"]
    final, median = b.get("final", {}), b.get("median", {})
    hist = ev.get("class_histogram")
    return {
        "arm": result["arm"], "flags": result["flags"], "diverged": result.get("diverged"),
        "steps": b.get("steps"), "generator": ev["generator"],
        "d_loss_final": final.get("d_loss"), "d_loss_median": median.get("d_loss"),
        "g_loss_final": final.get("g_loss"), "g_loss_median": median.get("g_loss"),
        "d_real_final": final.get("d_real"), "d_fake_final": final.get("d_fake"),
        "d_gap_median": b.get("d_gap_median"), "d_dominance": b.get("d_dominance"),
        "d_fooled": b.get("d_fooled"), "one_sided": b.get("one_sided"),
        "g_loss_trend": b.get("g_loss_trend"),
        "d_grad_norm_median": median.get("d_grad_norm"),
        "g_grad_norm_median": median.get("g_grad_norm"),
        "inception_score": ev["inception_score"]["generated"],
        "frechet_distance": ev["frechet_distance"]["generated"],
        "ndb_over_k": ev["ndb"]["generated"]["ndb_over_k"],
        # A class counts as covered when it gets at least half its fair share of samples.
        "classes_covered": (None if not hist else
                            sum(v >= 0.5 / len(hist) for v in hist.values())),
        "steps_per_sec": b.get("steps_per_sec"), "train_seconds": b.get("train_seconds"),
        "wall_seconds": result.get("wall_seconds"),
        "sample_grid": result.get("grid"),
    }


def save_grid(path, specs, scale: int = 2) -> None:
    """`specs` `[n, H, W, 1]` in [-1, 1] as a tiled PNG (`tfgan.plots.grid_image`).

    Palette PNG, upscaled by whole pixels: spectrograms hold too much fine detail for
    PNG's compression, and a full-colour matplotlib figure of 16 of them is ~250 KB.
    """
    from PIL import Image

    from tfgan import plots

    image = Image.fromarray(plots.grid_image(specs)).convert("P", palette=Image.ADAPTIVE,
                                                           colors=256)
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    image.save(path, optimize=True)


def _plot(path, results, panels, title):
    """One figure, one panel per (ylabel, [(metric key, line style, label)], log y)."""
    from tfgan.plots import _pyplot

    plt = _pyplot()
    width = 5.2 * len(panels) if len(panels) > 1 else 7.5
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 3.4), dpi=80, squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, (ylabel, lines, logy) in zip(axes[0], panels):
        for i, r in enumerate(results):
            recs = r["records"]
            for key, style, label in lines:
                pts = [(x["step"], x[key]) for x in recs if x.get(key) is not None]
                if logy:
                    pts = [(s, v) for s, v in pts if v > 0]
                if pts:
                    ax.plot(*zip(*pts), style, color=colours(i % 10), linewidth=1.3,
                            label=f"{r['arm']}{label}")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len(panels) == 1:  # many lines: keep the legend off the curves
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            ax.legend(fontsize=7, framealpha=0.6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_plots(out, results) -> None:
    _plot(os.path.join(out, PLOTS["losses"]), results,
          [("D loss", [("d_loss", "-", "")], True), ("G loss", [("g_loss", "-", "")], True)],
          "Losses (interval means)")
    _plot(os.path.join(out, PLOTS["d_outputs"]), results,
          [("mean sigmoid of D's logit",
            [("d_real", "-", " D(x)"), ("d_fake", "--", " D(G(z))")], False)],
          "D(x) solid, D(G(z)) dashed")
    _plot(os.path.join(out, PLOTS["grad_norms"]), results,
          [("‖∇D‖", [("d_grad_norm", "-", "")], True),
           ("‖∇G‖", [("g_grad_norm", "-", "")], True)],
          "Gradient norms")


# Differences smaller than these are called ties: one seed and a short run cannot
# separate them.
ONE_SIDED_TIE = 0.05  # share of logged intervals
QUALITY_TIE = 0.05  # relative difference of FD or NDB/K


def _balance_key(row):
    """Sorts the most balanced first: not diverged, least one-sided, smallest |gap|.

    One-sided: the share of logged intervals in which either side won outright (D
    dominance plus D fooled). Counting only D dominance would crown a D that never works.
    """
    one = row["one_sided"] if row["one_sided"] is not None else 1.0
    gap = abs(row["d_gap_median"]) if row["d_gap_median"] is not None else 1.0
    return (bool(row["diverged"]), round(one, 3), round(gap, 3))


def _compare_balance(a, b) -> int:
    """-1 when `a` fought more evenly than `b`, 1 when less, 0 for a tie.

    By the one-sided share alone: the D(x) - D(G(z)) gap only orders a ranking, since a D
    that takes everything for real has a small gap too.
    """
    ka, kb = _balance_key(a), _balance_key(b)
    for i, tie in ((0, 0.5), (1, ONE_SIDED_TIE)):
        if abs(ka[i] - kb[i]) >= tie:
            return -1 if ka[i] < kb[i] else 1
    return 0


def _compare_quality(a, b, metric) -> int:
    """-1 when `a`'s samples score better than `b`'s by `metric`, 1 when worse, 0 for a tie."""
    if bool(a["diverged"]) != bool(b["diverged"]):
        return 1 if a["diverged"] else -1
    va, vb = a[metric], b[metric]
    if va is None or vb is None or abs(va - vb) < QUALITY_TIE * max(abs(va), abs(vb), 1e-12):
        return 0
    return -1 if va < vb else 1


def _balance_change(before, after) -> str:
    """How `after` compares with `before` in balance, in words."""
    return {-1: "improved the balance", 1: "worsened the balance",
            0: "left the balance about where it was"}[_compare_balance(after, before)]


def _quality_key(row, metric):
    v = row[metric]
    return (bool(row["diverged"]), v is None, v if v is not None else 0.0,
            -(row["inception_score"] or 0.0))


def conclusion(rows: list[dict], real: dict, meta: dict) -> str:
    """One paragraph saying which arm fought most evenly and which sampled best, from numbers."""
    def pct(v):
        return _fmt(v, "{:.0%}")

    def sides(r):  # "90%: D dominance 85%, D fooled 4%"
        return (f"{pct(r['one_sided'])}: D dominance {pct(r['d_dominance'])}, D fooled "
                f"{pct(r['d_fooled'])}")

    def gap(r):
        return _fmt(None if r["d_gap_median"] is None else abs(r["d_gap_median"]), "{:.2f}")

    def q(r):
        return _num(r[metric])

    metric = ("frechet_distance" if all(r["frechet_distance"] is not None for r in rows)
              else "ndb_over_k")
    label = {"frechet_distance": "FD", "ndb_over_k": "NDB/K"}[metric]
    bal = min(rows, key=_balance_key)
    ranked = sorted(rows, key=lambda r: _quality_key(r, metric))
    best = ranked[0]
    runner_up = ("" if len(ranked) < 2 else
                 f", ahead of {ranked[1]['arm']} at {q(ranked[1])}"
                 + (", a tie within 5%" if _compare_quality(best, ranked[1], metric) == 0
                    else ""))
    others = "; ".join(f"{r['arm']} {pct(r['one_sided'])}" for r in rows if r is not bal)
    text = [
        f"Over {meta['steps']} steps per arm (batch {meta['batch_size']}, base width "
        f"{meta['base_width']}, seed {meta['seed']}), the most balanced fight was "
        f"{bal['arm']}: one side won outright in {pct(bal['one_sided'])} of the logged "
        f"intervals (D dominance, D ≥ {DOMINANCE_THRESHOLD:.0%} right on both real and fake: "
        f"{pct(bal['d_dominance'])}; D fooled, D ≤ {FOOLED_THRESHOLD:.0%} right on fakes: "
        f"{pct(bal['d_fooled'])}), its median |D(x) − D(G(z))| was {gap(bal)} and its final "
        f"D/G losses {_fmt(bal['d_loss_final'])}/{_fmt(bal['g_loss_final'])}"
        + (f" (one-sided share of the others: {others})." if others else "."),
        f"The best samples by {label} came from {best['arm']}{runner_up} ({label} {q(best)} "
        f"against {_num(real.get(metric))} for real data; IS "
        f"{_fmt(best['inception_score'], '{:.2f}')} against "
        f"{_fmt(real.get('inception_score'), '{:.2f}')}; NDB/K "
        f"{_fmt(best['ndb_over_k'], '{:.2f}')} against {_fmt(real.get('ndb_over_k'), '{:.2f}')}).",
    ]
    by = {r["arm"]: r for r in rows}
    roles = meta["roles"]  # the benchmark's names for the arms its question compares
    simple, strong = roles["simple"], roles["strong"]
    if simple in by and strong in by:
        s, n = by[simple], by[strong]
        fight, samples = _compare_balance(s, n), _compare_quality(s, n, metric)
        fight_text = {-1: f"{simple} gave the more balanced fight",
                      1: f"{strong} gave the more balanced fight",
                      0: "the two fights were about equally balanced"}[fight]
        sample_text = {-1: f"{simple} the better samples", 1: f"{strong} the better samples",
                       0: "samples of about equal quality"}[samples]
        verdict = {-1: "supports", 1: "does not support", 0: "cannot decide"}[fight]
        caveat = ""
        if fight == -1 and (s["one_sided"] or 0.0) >= 0.5:
            caveat = (f", though only relative to {strong}: {simple}'s fight too was "
                      f"one-sided for {pct(s['one_sided'])} of the run")
        text.append(
            f"Of the two discriminators at their reference settings, {fight_text} (one-sided "
            f"share of {simple} {sides(s)}; of {strong} {sides(n)}), with {sample_text} "
            f"({label} {q(s)} vs {q(n)}), so this run {verdict} the hypothesis that the simple "
            f"CNN discriminator gives a balanced fight{caveat}.")
        for r in rows:  # variants of the strong arm: its flags and more
            if r["arm"] in (simple, strong) or not r["flags"].startswith(n["flags"] + " "):
                continue
            what = (f"Cutting {strong}'s learning rate 10×" if r["arm"] == roles.get("lr_cut")
                    else f"{r['arm']} ({r['flags'][len(n['flags']):].strip()})")
            text.append(f"{what} {_balance_change(n, r)} relative to plain {strong} "
                        f"(one-sided share {pct(n['one_sided'])} → {sides(r)}; {label} {q(n)} → "
                        f"{q(r)}).")
    collapsed = [r["arm"] for r in rows if r["d_loss_final"] is not None
                 and r["g_loss_final"] is not None and r["d_loss_final"] < 0.05
                 and r["g_loss_final"] > 4.0]
    if collapsed:
        text.append(f"{', '.join(collapsed)} reproduced the earlier attempt's pattern (D loss "
                    "below 0.05 while G's loss exceeded 4).")
    diverged = [r["arm"] for r in rows if r["diverged"]]
    if diverged:
        text.append(f"{', '.join(diverged)} diverged (non-finite loss) and ranks last.")
    text.append(f"These are single-seed numbers from a short budget on N = {meta['samples']} "
                "samples; read differences near the real-data ceiling as noise.")
    return " ".join(text)


def _table(rows, columns, extra=None) -> list[str]:
    lines = ["| arm | " + " | ".join(h for _, h, _ in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for r in rows + (extra or []):
        lines.append(f"| {r['arm']} | " + " | ".join(_fmt(r.get(k), f) for k, _, f in columns)
                     + " |")
    return lines


def write_markdown(out, report: dict) -> None:
    m, rows, real, clf = report["meta"], report["arms"], report["real"], report["classifier"]
    lines = [
        "# Discriminator benchmark: simple CNN vs ResNet-9", "",
        f"Budget: {m['steps']} steps per arm, batch {m['batch_size']}, base width c = "
        f"{m['base_width']} for G and D, seed {m['seed']}, the `{m['preset']}` preset, on "
        f"`{m['data_root']}`. Every arm shares data, seed, budget and generator. Quality is "
        f"scored on N = {m['samples']} generated samples against two independent sets of N "
        f"real random crops; the real-data row scores one real set against the other (the "
        f"ceiling). Time on {m['cpu_count']} CPU cores: training "
        f"{m['train_seconds'] / 60:.1f} min, evaluation {m['eval_seconds'] / 60:.1f} min"
        + (f" (training of {', '.join(m['reused_arms'])} done by an earlier invocation with "
           "the same settings, its time kept)." if m["reused_arms"] else "."),
        "", f"Command: `{m['command']}`", "", "## Conclusion", "", report["conclusion"], "",
        "## Arms", "",
    ]
    lines += [f"- **{r['arm']}**: `{r['flags']}`" + (f" (diverged: {r['diverged']})"
                                                      if r["diverged"] else "") for r in rows]
    lines += ["", "## Balance", "",
              f"D dominance: share of logged intervals ({m['log_every']} steps each) in which "
              f"D's accuracy on real and on fake were both ≥ {DOMINANCE_THRESHOLD:.0%}. D "
              f"fooled: share in which D's accuracy on fakes was ≤ {FOOLED_THRESHOLD:.0%} (G "
              "wins outright, or D does not work). Final: mean of the last 10% of records; "
              "G loss trend: slope over the second half.", ""]
    lines += _table(rows, BALANCE_COLUMNS)
    real_row = {"arm": "real data (ceiling)", **real}
    lines += ["", "## Quality and speed", ""]
    lines += _table(rows, QUALITY_COLUMNS, [real_row])
    lines.append("")
    if clf:
        lines.append(f"Classifier behind IS and FD: held-out accuracy {clf['accuracy']:.3f} on "
                     f"{clf['test_files']} files of {clf['n_classes']} classes (chance "
                     f"{clf['chance']:.3f}), trained on {clf['train_examples']} crops of "
                     f"{clf['train_files']} files. Classes covered: classes that get at least "
                     "half their fair share of the generated samples.")
    else:
        lines.append(f"IS and FD unavailable: {report['classifier_reason']}")
    lines += ["", "## Plots", ""]
    lines += [f"![{k}]({report['plots'][k]})" for k in PLOTS]
    lines += ["", "### Samples (fixed latents, the sampler each run exports)", ""]
    grids = {"real data": report["plots"]["real_samples"], **report["plots"]["samples"]}
    lines += ["| " + " | ".join(grids) + " |", "|" + "---|" * len(grids),
              "| " + " | ".join(f"![{a}]({g})" for a, g in grids.items()) + " |", ""]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines))


def write_report(out, results: list[dict], meta: dict) -> dict:
    """Writes OUT/report.json, OUT/report.md and the plots; returns the report dict.

    Args:
      out: the benchmark's output folder (sample grids already written there).
      results: per arm: arm, flags, diverged, wall_seconds, grid, records, eval.
      meta: the shared settings (steps, batch_size, base_width, seed, preset, samples,
        data_root, log_every, total_seconds, cpu_count, command).
    """
    os.makedirs(out, exist_ok=True)
    write_plots(out, results)
    rows = [arm_row(r) for r in results]
    ev = results[0]["eval"]
    real = {"inception_score": ev["inception_score"]["real"],
            "frechet_distance": ev["frechet_distance"]["real"],
            "ndb_over_k": ev["ndb"]["real"]["ndb_over_k"]}
    report = {
        "meta": meta,
        "real": real,
        "classifier": ev["classifier"],
        "classifier_reason": ev["classifier_reason"],
        "conclusion": conclusion(rows, real, meta),
        "arms": [{**row, "eval": r["eval"]} for row, r in zip(rows, results)],
        "plots": {**PLOTS, "real_samples": REAL_GRID,
                  "samples": {r["arm"]: r["grid"] for r in results}},
    }
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    write_markdown(out, {**report, "arms": rows})
    return report
