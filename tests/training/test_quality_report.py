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
