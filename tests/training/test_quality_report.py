"""training.quality's report: each invocation adds its cells to the report in OUT."""

from __future__ import annotations

import json
from pathlib import Path

from training import quality

ROOT = Path(__file__).resolve().parents[2]


def test_a_narrower_invocation_adds_to_the_report_instead_of_replacing_it(tmp_path):
    # A finished cell from an earlier invocation (a real one, from the project's grid).
    earlier = json.loads((ROOT / "docs" / "quality" / "quality.json").read_text())
    name, cell = sorted(earlier["cells"].items())[0]
    (tmp_path / "quality.json").write_text(json.dumps({"cells": {name: cell},
                                                       "missing": ["gone-s9"]}))
    # Another dataset, seed and tag, nothing trained yet: reported as missing.
    assert quality.main(["--data", "instruments", "--recipes", "modern", "--seeds", "7",
                         "--tag", "cond", "--out", str(tmp_path), "--report-only"]) == 0
    report = json.loads((tmp_path / "quality.json").read_text())
    assert report["cells"] == {name: cell}
    assert report["missing"] == ["gone-s9", "instruments-modern-s7-cond"]
    text = (tmp_path / "quality.md").read_text()
    assert f"| {name} |" in text and "Not yet run: gone-s9, instruments-modern-s7-cond" in text


def test_a_cell_that_finished_leaves_the_missing_list(tmp_path):
    earlier = json.loads((ROOT / "docs" / "quality" / "quality.json").read_text())
    name, cell = sorted(earlier["cells"].items())[0]
    (tmp_path / "quality.json").write_text(json.dumps({"cells": {}, "missing": [name]}))
    cells, missing = quality.merged(tmp_path, {name: cell}, [])
    assert cells == {name: cell} and missing == []


def test_at_step_reports_a_run_as_it_stood_then(tmp_path):
    import dataclasses

    from tfgan.config import preset
    from tfgan.rundir import RunDir

    run = RunDir(tmp_path / "runs" / "builtin-modern-s0")
    run.path.mkdir(parents=True)
    c = preset("cpu")
    (run.path / "config.json").write_text(
        dataclasses.replace(c, train=dataclasses.replace(c.train, steps=40)).to_json())
    rows = [{"step": s, "steps_per_sec": 5.0, "clean_rank": 1.0 if s > 20 else 0.5}
            for s in range(10, 41, 10)]
    rows += [{"step": s, "kind": "eval", "fd": fd, "fd_real": 1.0, "is": 2.0, "is_real": 4.0,
              "classes_covered": 3, "n_classes": 3, "silent_share": 0.0,
              "silent_share_real": 0.0} for s, fd in ((20, 6.0), (40, 3.0))]
    run.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    end, then = quality.summarize_run(run.path), quality.summarize_run(run.path, at_step=30)
    assert (end["steps"], end["fd_ratio"], end["one_sided"]) == (40, 3.0, 0.5)
    assert (then["steps"], then["fd_ratio"]) == (20, 6.0)  # the last evaluation by step 30
    assert then["one_sided"] == 1 / 3  # log lines 10, 20, 30: one of them one-sided

    # Through the command: the report says which step it was asked for.
    assert quality.main(["--data", "builtin", "--recipes", "modern", "--seeds", "0",
                         "--at-step", "30", "--out", str(tmp_path), "--report-only"]) == 0
    cell = json.loads((tmp_path / "quality.json").read_text())["cells"]["builtin-modern-s0"]
    assert (cell["steps"], cell["at_step"], cell["fd_ratio"]) == (20, 30, 6.0)
    assert "| builtin-modern-s0 | 20 (--at-step 30) |" in (tmp_path / "quality.md").read_text()
