"""Known-answer tests for tfgan.eval.balance (metrics.jsonl diagnostics)."""

import json
import math

import pytest

from tfgan.eval.balance import d_dominance, load_metrics, loss_trend, summarize


def _write_jsonl(path, records, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")
    return path


# ---------------------------------------------------------------- load_metrics


def test_load_skips_truncated_last_line(tmp_path):
    records = [{"step": s, "g_loss": 1.0 + s} for s in (0, 100, 200)]
    path = _write_jsonl(tmp_path / "metrics.jsonl", records, tail='{"step": 300, "g_lo')
    loaded = load_metrics(path)
    assert [r["step"] for r in loaded] == [0, 100, 200]
    assert loaded[-1]["g_loss"] == 201.0


def test_load_skips_blank_lines_and_truncated_line_followed_by_blanks(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "d_loss": 0.5}\n\n'
                    '{"step": 2, "d_loss": 0.4}\n'
                    '{"step": 3, "d_\n\n  \n')
    assert [r["step"] for r in load_metrics(path)] == [1, 2]


def test_load_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "d_loss": 0.5}\n{"step": 2, "d_loss": 0.4}')
    assert [r["step"] for r in load_metrics(path)] == [1, 2]


def test_load_duplicate_steps_keep_last_and_sort(tmp_path):
    # A run resumed from the step-100 checkpoint re-logs steps 100 and 200.
    records = [
        {"step": 0, "g_loss": 5.0},
        {"step": 100, "g_loss": 4.0},
        {"step": 200, "g_loss": 3.0},
        {"step": 100, "g_loss": 40.0},
        {"step": 200, "g_loss": 30.0},
        {"step": 300, "g_loss": 20.0},
    ]
    loaded = load_metrics(_write_jsonl(tmp_path / "metrics.jsonl", records))
    assert [(r["step"], r["g_loss"]) for r in loaded] == [
        (0, 5.0), (100, 40.0), (200, 30.0), (300, 20.0)]


def test_load_parses_nan_and_infinity(tmp_path):
    path = _write_jsonl(tmp_path / "m.jsonl", [{"step": 1, "d_loss": float("nan"),
                                                 "g_loss": float("inf")}])
    (rec,) = load_metrics(path)
    assert math.isnan(rec["d_loss"]) and rec["g_loss"] == math.inf


def test_load_corrupt_middle_line_raises(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, oops\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r":2: invalid JSON"):
        load_metrics(path)


@pytest.mark.parametrize("line", ['[1, 2]', '{"d_loss": 1.0}', '{"step": "ten"}', '{"step": 1.5}'])
def test_load_bad_record_raises(tmp_path, line):
    path = tmp_path / "metrics.jsonl"
    path.write_text(line + '\n{"step": 5}\n')
    with pytest.raises(ValueError, match="Received"):
        load_metrics(path)


def test_load_empty_file_gives_empty_list(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("")
    assert load_metrics(path) == []


# ---------------------------------------------------------------- d_dominance


def _acc(step, real, fake):
    return {"step": step, "d_real_acc": real, "d_fake_acc": fake}


def test_dominance_exactly_one_quarter():
    records = [
        _acc(0, 0.99, 0.99),  # dominated
        _acc(1, 0.95, 0.95),  # dominated: the threshold is inclusive
        _acc(2, 0.99, 0.50),
        _acc(3, 0.50, 0.99),
        _acc(4, 0.94, 0.99),
        _acc(5, 0.96, 0.949),
        _acc(6, 0.60, 0.60),
        _acc(7, 0.10, 0.20),
    ]
    assert d_dominance(records) == 0.25
    # Records without accuracies do not count either way.
    assert d_dominance(records + [{"step": 8, "d_loss": 0.1}]) == 0.25


def test_dominance_threshold_argument():
    records = [_acc(0, 0.99, 0.99), _acc(1, 0.6, 0.7), _acc(2, 0.4, 0.9), _acc(3, 0.1, 0.1)]
    assert d_dominance(records, threshold=0.95) == 0.25
    assert d_dominance(records, threshold=0.5) == 0.5
    assert d_dominance(records, threshold=0.0) == 1.0


def test_dominance_without_accuracies_is_nan_and_empty_raises():
    assert math.isnan(d_dominance([{"step": 0, "d_loss": 1.0}]))
    with pytest.raises(ValueError, match="Received"):
        d_dominance([])
    with pytest.raises(ValueError, match="Received"):
        d_dominance([_acc(0, 1.0, 1.0)], threshold=1.5)


# ---------------------------------------------------------------- loss_trend


def test_trend_linear_rise_has_exact_slope():
    records = [{"step": s, "g_loss": 1.0 + 0.002 * s} for s in range(0, 10_001, 100)]
    assert loss_trend(records) == pytest.approx(2.0, rel=1e-9)  # 0.002/step = 2 per 1000


def test_trend_uses_only_second_half():
    # Steep fall over the first half, gentle rise (0.5 per 1000 steps) in the second.
    records = []
    for s in range(0, 20_001, 200):
        g = 10.0 - 0.001 * s if s < 10_000 else 0.0005 * (s - 10_000)
        records.append({"step": s, "g_loss": g})
    assert loss_trend(records) == pytest.approx(0.5, rel=1e-9)


def test_trend_other_key_falling_and_unsorted():
    records = [{"step": s, "d_loss": 3.0 - 0.0001 * s} for s in range(0, 5000, 50)]
    records.reverse()
    assert loss_trend(records, key="d_loss") == pytest.approx(-0.1, rel=1e-9)


def test_trend_ignores_non_finite_and_needs_two_points():
    records = [{"step": s, "g_loss": 0.001 * s} for s in range(0, 1001, 100)]
    records[-2]["g_loss"] = float("nan")
    assert loss_trend(records) == pytest.approx(1.0, rel=1e-9)
    assert math.isnan(loss_trend([{"step": 0, "g_loss": 1.0}]))
    assert math.isnan(loss_trend([{"step": 0, "d_loss": 1.0}]))


# ---------------------------------------------------------------- summarize


def _run(n=20):
    out = []
    for i in range(n):
        out.append({
            "step": 100 * i,
            "d_loss": float(i),
            "g_loss": 1.0 + 0.01 * i,
            "d_real": 0.5,
            "d_fake": 0.25,
            "d_real_acc": 0.99 if i < 5 else 0.6,
            "d_fake_acc": 0.99 if i < 5 else 0.5,
        })
    return out


def test_summarize_known_values():
    records = _run(20)
    records[3]["g_grad_norm"] = 2.0
    records[19]["g_grad_norm"] = 4.0
    s = summarize(records)
    assert s["num_records"] == 20
    # Last 10% of 20 records = the last 2 (i = 18, 19).
    assert s["final"]["d_loss"] == pytest.approx(18.5)
    assert s["median"]["d_loss"] == pytest.approx(9.5)
    assert s["final"]["d_fake"] == pytest.approx(0.25)
    assert s["final"]["g_grad_norm"] == pytest.approx(4.0)
    assert s["median"]["g_grad_norm"] == pytest.approx(3.0)
    assert "d_grad_norm" not in s["final"]
    assert s["d_dominance"] == pytest.approx(0.25)
    # g_loss rises 0.01 per 100 steps = 0.1 per 1000 steps.
    assert s["g_loss_trend"] == pytest.approx(0.1, rel=1e-9)
    assert s["non_finite"] == {} and s["non_finite_total"] == 0


def test_summarize_counts_non_finite_and_skips_them():
    records = _run(20)
    records[19]["d_loss"] = float("nan")
    records[5]["g_loss"] = float("inf")
    records[7]["d_grad_norm"] = float("-inf")
    s = summarize(records)
    assert s["non_finite"] == {"d_grad_norm": 1, "d_loss": 1, "g_loss": 1}
    assert s["non_finite_total"] == 3
    assert s["final"]["d_loss"] == pytest.approx(18.0)  # NaN at i = 19 ignored
    assert math.isnan(s["final"]["d_grad_norm"])  # only value is -inf


def test_summarize_final_window_rounds_up_and_follows_step_order():
    records = _run(15)[::-1]  # unsorted input
    s = summarize(records)
    # ceil(15 / 10) = 2 last records by step: i = 13, 14.
    assert s["final"]["d_loss"] == pytest.approx(13.5)


def test_summarize_single_record_and_empty():
    s = summarize([{"step": 7, "d_loss": 0.3, "g_loss": 2.0}])
    assert s["num_records"] == 1
    assert s["final"] == {"d_loss": 0.3, "g_loss": 2.0}
    assert math.isnan(s["g_loss_trend"])
    with pytest.raises(ValueError, match="at least one"):
        summarize([])


def test_summarize_loaded_file_end_to_end(tmp_path):
    path = _write_jsonl(tmp_path / "metrics.jsonl", _run(10), tail='{"step": 1000, "d_')
    s = summarize(load_metrics(path))
    assert s["num_records"] == 10
    assert s["final"]["d_loss"] == pytest.approx(9.0)
    json.dumps(s)  # the summary is JSON-serialisable for logging
