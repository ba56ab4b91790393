"""python -m training.benchmark end to end at tiny size, its arm specs and its conclusion."""

from __future__ import annotations

import json
import os

import pytest

from training import benchmark, report

TINY = ["--steps", "3", "--log-every", "1", "--base-width", "4", "--batch-size", "8",
        "--samples", "30", "--classifier-epochs", "1", "--classifier-width", "4"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, helpers):
    return helpers.write_synth_folder(tmp_path_factory.mktemp("bench_data"), 8000,
                                      ("sine", "chirp_down", "snare"), per_class=6)


@pytest.fixture(scope="module")
def bench(tmp_path_factory, data_dir):
    """All four default arms, three steps each."""
    out = tmp_path_factory.mktemp("bench") / "out"
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("TFGAN_CACHE")
    os.environ["TFGAN_CACHE"] = str(cache)
    try:
        assert benchmark.main(["--data", str(data_dir), "--out", str(out), *TINY]) == 0
    finally:
        if old is None:
            os.environ.pop("TFGAN_CACHE")
        else:
            os.environ["TFGAN_CACHE"] = old
    return out


def test_benchmark_writes_report_json_md_and_plots(bench):
    rep = json.loads((bench / "report.json").read_text())
    meta = rep["meta"]
    assert meta["steps"] == 3 and meta["base_width"] == 4 and meta["samples"] == 30
    assert meta["train_seconds"] > 0 and meta["eval_seconds"] > 0 and not meta["reused_arms"]
    assert "--steps 3" in meta["command"]
    assert [a["arm"] for a in rep["arms"]] == list(benchmark.ARMS)
    assert set(rep["real"]) == {"inception_score", "frechet_distance", "ndb_over_k"}
    assert all(isinstance(v, float) for v in rep["real"].values())
    assert rep["classifier"]["n_classes"] == 3
    every = [k for k, _, _ in report.BALANCE_COLUMNS + report.QUALITY_COLUMNS]
    for arm in rep["arms"]:
        for key in every + ["d_gap_median", "flags", "generator", "sample_grid"]:
            assert arm[key] is not None, (arm["arm"], key)
        assert arm["steps"] == 3 and arm["diverged"] is None
        assert arm["eval"]["samples"] == 30
        assert (bench / "runs" / arm["arm"] / "eval.json").exists()
    balanced = rep["arms"][-1]
    assert balanced["generator"] == "generator" and "--augment" in balanced["flags"]
    assert rep["arms"][2]["eval"]["balance"]["num_records"] == 3

    pngs = [rep["plots"][k] for k in report.PLOTS] + [rep["plots"]["real_samples"]] + list(
        rep["plots"]["samples"].values())
    assert len(pngs) == 3 + 1 + 4
    for name in pngs:
        data = (bench / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 200_000, name

    md = (bench / "report.md").read_text()
    assert rep["conclusion"] in md and "## Conclusion" in md
    for header in ("D loss final", "D loss median", "G loss final", "G loss median",
                   "D dominance", "IS", "FD", "NDB/K", "steps/s", "wall s",
                   "real data (ceiling)"):
        assert header in md, header
    for name in pngs:
        assert f"({name})" in md
    for arm in benchmark.ARMS:
        assert f"**{arm}**" in md and arm in rep["conclusion"]


def test_finished_arms_are_reused(bench, data_dir):
    from training import cli

    name, _, arm_args = benchmark.parse_arm("simple")

    def config(*extra):
        args = benchmark.parse_args(["--data", str(data_dir), *TINY, *extra])
        return cli.apply_flags(benchmark.base_config(args), arm_args).validate()

    with open(os.devnull, "w") as quiet:
        again = benchmark.train_arm(name, config(), bench / "runs", stream=quiet)
        assert again["reused"] and again["wall_seconds"] > 0 and again["diverged"] is None
        with pytest.raises(benchmark.BenchmarkError, match="other settings"):
            benchmark.train_arm(name, config("--seed", "1"), bench / "runs", stream=quiet)


def test_arm_specs_are_checked(capsys):
    name, flags, args = benchmark.parse_arm("mine=--disc resnet9 --spectral-norm --r1-gamma 1")
    assert name == "mine" and args.disc == "resnet9" and args.spectral_norm and args.r1_gamma == 1
    assert benchmark.parse_arm("resnet9-dlr0.1")[2].d_lr_scale == 0.1
    for spec, message in (("nope", "unknown arm"), ("x=--steps 5", "shared settings"),
                          ("x=--base-width 8", "shared settings"), ("x=--bogus", "unknown flags"),
                          ("x=--disc vgg", "bad flags"), ("a b=--disc simple", "letters")):
        with pytest.raises(benchmark.BenchmarkError, match=message):
            benchmark.parse_arm(spec)
    assert benchmark.main(["--arms", "simple", "simple", "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: arm names must be unique") and "Traceback" not in err


def _row(arm, dom, gap, d_loss, g_loss, fd, flags=None, fooled=0.0):
    return {"arm": arm, "flags": flags or f"--disc {arm}", "diverged": None,
            "d_dominance": dom, "d_fooled": fooled, "one_sided": dom + fooled,
            "d_gap_median": gap, "d_loss_final": d_loss,
            "g_loss_final": g_loss, "frechet_distance": fd, "inception_score": 2.0,
            "ndb_over_k": 0.5}


def test_conclusion_is_generated_from_the_numbers():
    meta = {"steps": 100, "batch_size": 8, "base_width": 4, "seed": 0, "samples": 30,
            "roles": benchmark.ROLES}
    real = {"frechet_distance": 0.1, "inception_score": 3.0, "ndb_over_k": 0.05}
    fair_simple = [_row("simple", 0.0, 0.2, 1.2, 0.9, 5.0),
                   _row("resnet9", 0.9, 0.97, 0.002, 6.7, 20.0)]
    text = report.conclusion(fair_simple, real, meta)
    assert "the most balanced fight was simple" in text
    assert "best samples by FD came from simple" in text
    assert "this run supports the hypothesis" in text
    assert "resnet9 reproduced the earlier attempt's pattern" in text
    # The same sentences with the numbers swapped reach the opposite verdict.
    fair_resnet = [_row("simple", 0.9, 0.97, 0.002, 6.7, 20.0),
                   _row("resnet9", 0.0, 0.2, 1.2, 0.9, 5.0)]
    text = report.conclusion(fair_resnet, real, meta)
    assert "the most balanced fight was resnet9" in text
    assert "does not support the hypothesis" in text
    assert "simple reproduced the earlier attempt's pattern" in text
    # A ResNet-9 that calls everything real is never "dominant", but it is no fair fight.
    broken = fair_simple + [_row("resnet9-dlr0.1", 0.0, 0.01, 5.8, 0.01, 30.0,
                                 flags="--disc resnet9 --d-lr-scale 0.1", fooled=1.0)]
    text = report.conclusion(broken, real, meta)
    assert "the most balanced fight was simple" in text
    assert "Cutting resnet9's learning rate 10× worsened the balance" in text
    assert "D fooled 100%" in text
    # A win on balance by a discriminator that still dominates most of the run says so.
    both_dominant = [_row("simple", 0.8, 0.9, 0.1, 4.8, 60.0), _row("resnet9", 0.95, 0.97, 0.01,
                                                                     5.7, 70.0)]
    assert "only relative to resnet9" in report.conclusion(both_dominant, real, meta)
    # Differences within the tie margins decide nothing.
    close = [_row("simple", 0.50, 0.60, 0.3, 3.0, 10.0),
             _row("resnet9", 0.52, 0.62, 0.3, 3.1, 10.2)]
    text = report.conclusion(close, real, meta)
    assert "about equally balanced" in text and "samples of about equal quality" in text
    assert "cannot decide the hypothesis" in text and "a tie within 5%" in text
    # The names come from the benchmark's roles, not from the report.
    renamed = dict(meta, roles={"simple": "cnn", "strong": "deep", "lr_cut": "deep-slow"})
    rows = [dict(r, arm={"simple": "cnn", "resnet9": "deep"}[r["arm"]]) for r in fair_simple]
    rows.append(_row("deep-slow", 0.0, 0.01, 5.8, 0.01, 30.0,
                     flags="--disc resnet9 --d-lr-scale 0.1", fooled=1.0))
    text = report.conclusion(rows, real, renamed)
    assert "Of the two discriminators at their reference settings, cnn gave" in text
    assert "Cutting deep's learning rate 10×" in text
    # Without a classifier, quality is ranked by NDB/K.
    no_fd = [dict(r, frechet_distance=None) for r in fair_simple]
    assert "best samples by NDB/K" in report.conclusion(no_fd, real, meta)


def test_a_stop_signal_ends_the_benchmark_resumably(tmp_path, monkeypatch, capsys):
    import tfgan.trainer

    # What train() returns after SIGINT: it checkpointed and stopped early.
    monkeypatch.setattr(tfgan.trainer, "train", lambda *a, **k: {"stopped_by": "SIGINT"})
    code = benchmark.main(["--out", str(tmp_path), "--arms", "simple", "--steps", "5"])
    assert code == 130
    err = capsys.readouterr().err
    assert err.startswith("error: stopped by SIGINT while training simple") and "resume" in err
