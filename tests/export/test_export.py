"""Export of a real trained run: TF Serving layout, signatures, fidelity, no PyFunc, versions;
and of a class-conditional run: signatures with a class by index and by name."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]


def test_layout_and_assets(exported, trained_run):
    base, path = exported
    assert path == base / "1"
    assert (path / "saved_model.pb").exists() and (path / "variables").is_dir()
    config = json.loads((path / "assets.extra" / "config.json").read_text())
    assert config == json.loads((trained_run / "config.json").read_text())
    stats = json.loads((path / "assets.extra" / "stats.json").read_text())
    assert len(stats["mean"]) == 64
    assert not [p for p in base.iterdir() if p.name.startswith(".tmp")]


def test_checkpoint_restore_brings_back_the_trained_generator(trained_run):
    """Every variable, BatchNorm's moving statistics included, comes back from the file."""
    import tensorflow as tf
    from tfgan.checkpoint_layout import checkpoint_key, variable_paths
    from tfgan.rundir import RunDir, load_generator

    g, config, _, step = load_generator(RunDir(trained_run))
    assert step == 6
    reader = tf.train.load_checkpoint(str(trained_run / "checkpoints" / "ckpt-6"))
    model = "ema_generator" if config.train.ema_decay > 0 else "generator"
    paths = variable_paths(g)
    assert len(paths) == len(g.weights)
    for path, w in paths.items():
        np.testing.assert_array_equal(w.numpy(), reader.get_tensor(checkpoint_key(model, path)))
    variances = [w.numpy() for w in g.weights if "moving_variance" in w.path]
    assert len(variances) == 4 and not any(np.allclose(v, 1.0) for v in variances)


LOADER = textwrap.dedent("""
    import sys

    class BlockProject:
        # An editable install puts the project on every path, -I or not: refuse its packages
        # here so that loading the model cannot lean on them.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"tfgan", "export", "serving", "training"}:
                raise ImportError(f"{name} is not importable in this process")
            return None

    sys.meta_path.insert(0, BlockProject())
    import numpy as np
    try:
        import tfgan
        sys.exit("tfgan must not be importable here")
    except ImportError:
        pass
    import tensorflow as tf
    m = tf.saved_model.load(sys.argv[1])
    z = np.load(sys.argv[2])
    spec = m.signatures["serving_default"](z=tf.constant(z))
    aud = m.signatures["audio"](z=tf.constant(z))
    gen = m.signatures["generate"](seed=tf.constant(5, tf.int64), count=tf.constant(3))
    gen2 = m.signatures["generate"](seed=tf.constant(5, tf.int64), count=tf.constant(3))
    np.savez(sys.argv[3], spectrogram=spec["spectrogram"].numpy(),
             log_magnitude=spec["log_magnitude"].numpy(), audio=aud["audio"].numpy(),
             gen_z=gen["z"].numpy(), gen_spec=gen["spectrogram"].numpy(),
             gen_z2=gen2["z"].numpy())
""")


def test_loads_without_the_project_and_matches_keras(exported, trained_run, tmp_path):
    import tensorflow as tf
    from tfgan import audio
    from tfgan.rundir import RunDir, load_generator

    _, path = exported
    z = np.random.default_rng(0).normal(size=(4, 100)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    script = tmp_path / "load.py"
    script.write_text(LOADER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # -I: isolated mode, neither the working directory nor PYTHONPATH is on sys.path; the
    # script also blocks the project's packages (an editable install would provide them).
    proc = subprocess.run([sys.executable, "-I", str(script), str(path), str(tmp_path / "z.npy"),
                           str(tmp_path / "out.npz")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = np.load(tmp_path / "out.npz")

    g, config, stats, _ = load_generator(RunDir(trained_run))
    expected = g(z, training=False).numpy()
    np.testing.assert_allclose(out["spectrogram"], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["log_magnitude"][..., 0],
                               audio.denormalise(expected[..., 0], stats).numpy(), rtol=1e-5,
                               atol=1e-4)
    wave = audio.to_waveform(expected, stats, 8).numpy()
    assert out["audio"].shape == (4, config.data.clip_samples)
    np.testing.assert_allclose(out["audio"], wave, atol=1e-4)
    assert np.abs(out["audio"]).max() <= 1.0 and audio.rms(out["audio"]).min() > 0
    # generate: reproducible from the seed, and its spectrogram is G(z) for its z.
    assert out["gen_z"].shape == (3, 100)
    np.testing.assert_array_equal(out["gen_z"], out["gen_z2"])
    np.testing.assert_allclose(out["gen_spec"], g(out["gen_z"], training=False).numpy(),
                               rtol=1e-5, atol=1e-5)
    del tf


def _op_types(saved_model_dir: Path) -> set:
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((saved_model_dir / "saved_model.pb").read_bytes())
    ops = set()
    for mg in sm.meta_graphs:
        ops |= {n.op for n in mg.graph_def.node}
        for f in mg.graph_def.library.function:
            ops |= {n.op for n in f.node_def}
    return ops


def test_graph_holds_no_python_ops(exported):
    ops = _op_types(exported[1])
    assert {"RFFT", "IRFFT", "Conv2DBackpropInput"} <= ops  # the graph really was read
    assert not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}


def test_signatures_are_named(exported):
    import tensorflow as tf

    m = tf.saved_model.load(str(exported[1]))
    assert set(m.signatures) == {"serving_default", "audio", "generate"}
    sd = m.signatures["serving_default"]
    assert list(sd.structured_input_signature[1]) == ["z"]
    assert set(sd.structured_outputs) == {"spectrogram", "log_magnitude"}
    assert set(m.signatures["audio"].structured_outputs) == {"audio"}
    assert set(m.signatures["generate"].structured_input_signature[1]) == {"seed", "count"}
    with pytest.raises(tf.errors.InvalidArgumentError, match="count must be at most"):
        m.signatures["generate"](seed=tf.constant(1, tf.int64), count=tf.constant(10_000))


def test_versions_are_never_overwritten(exported, trained_run):
    base, _ = exported
    cli = [sys.executable, "-m", "export.saved_model", "--run-dir", str(trained_run),
           "--model-base-path", str(base), "--griffin-lim-iters", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    second = subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"Exported {base / '2'}" in second.stdout
    assert "signature_def['audio']" in second.stdout  # the saved_model_cli summary
    before = (base / "1" / "saved_model.pb").read_bytes()
    again = subprocess.run(cli + ["--version", "1", "--quiet"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    assert (base / "1" / "saved_model.pb").read_bytes() == before
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]


def test_export_of_a_missing_run_is_a_clear_error(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "export.saved_model", "--run-dir",
                           str(tmp_path / "none"), "--model-base-path", str(tmp_path / "m")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Not a run directory" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- class-conditional runs ------------------------------------------------------------

# The same guard as the unconditional loader: the project's packages cannot be imported.
_GUARD = LOADER.split("import tensorflow as tf")[0]
CONDITIONAL_LOADER = _GUARD + textwrap.dedent("""
    import tensorflow as tf
    m = tf.saved_model.load(sys.argv[1])
    z = tf.constant(np.load(sys.argv[2]))
    s = m.signatures
    labels = tf.constant([2, 0, 1, -1], tf.int32)
    names = tf.constant(["snare", "sine", "kick", ""])
    by_index = s["serving_default"](z=z, label=labels)
    by_name = s["spectrogram_by_name"](z=z, class_name=names)
    aud = s["audio"](z=z, label=labels)
    aud_name = s["audio_by_name"](z=z, class_name=names)
    gen = s["generate"](seed=tf.constant(5, tf.int64), count=tf.constant(4),
                        label=tf.constant(1))
    gen_all = s["generate"](seed=tf.constant(5, tf.int64), count=tf.constant(4),
                            label=tf.constant(-1))
    gen_name = s["generate_by_name"](seed=tf.constant(5, tf.int64), count=tf.constant(4),
                                     class_name=tf.constant("kick"))
    errors = []
    for call in (lambda: s["generate_by_name"](seed=tf.constant(1, tf.int64),
                                               count=tf.constant(2),
                                               class_name=tf.constant("cowbell")),
                 lambda: s["serving_default"](z=z, label=tf.constant([0, 1, 2, 3])),
                 lambda: s["serving_default"](z=z, label=tf.constant([-1])),
                 lambda: s["generate"](seed=tf.constant(1, tf.int64), count=tf.constant(-1),
                                       label=tf.constant(0))):
        try:
            call()
            errors.append("")
        except tf.errors.InvalidArgumentError as e:
            errors.append(e.message)
    np.savez(sys.argv[3], spec=by_index["spectrogram"].numpy(),
             label=by_index["label"].numpy(), spec_name=by_name["spectrogram"].numpy(),
             label_name=by_name["label"].numpy(), audio=aud["audio"].numpy(),
             audio_name=aud_name["audio"].numpy(), gen_z=gen["z"].numpy(),
             gen_label=gen["label"].numpy(), gen_spec=gen["spectrogram"].numpy(),
             gen_all_label=gen_all["label"].numpy(), gen_name_spec=gen_name["spectrogram"].numpy(),
             gen_name_label=gen_name["label"].numpy(), errors=np.array(errors))
""")


@pytest.fixture(scope="module")
def loaded(conditional_exported, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cload")
    _, path = conditional_exported
    z = np.random.default_rng(0).normal(size=(4, 100)).astype(np.float32)
    np.save(tmp / "z.npy", z)
    (tmp / "load.py").write_text(CONDITIONAL_LOADER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run([sys.executable, "-I", str(tmp / "load.py"), str(path),
                           str(tmp / "z.npy"), str(tmp / "out.npz")], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return z, dict(np.load(tmp / "out.npz"))


def test_layout_lists_the_classes(conditional_exported, conditional_run):
    import tensorflow as tf

    _, path = conditional_exported
    assert (path / "assets.extra" / "classes.txt").read_text().split("\n") == [
        "kick", "sine", "snare", ""]
    m = tf.saved_model.load(str(path))
    assert set(m.signatures) == {"serving_default", "audio", "generate", "spectrogram_by_name",
                                 "audio_by_name", "generate_by_name"}
    inputs = {k: set(f.structured_input_signature[1]) for k, f in m.signatures.items()}
    assert inputs["serving_default"] == inputs["audio"] == {"z", "label"}
    assert inputs["generate"] == {"seed", "count", "label"}
    assert inputs["generate_by_name"] == {"seed", "count", "class_name"}
    assert m.signatures["generate_by_name"].structured_input_signature[1][
        "class_name"].dtype == tf.string


def test_signatures_match_the_keras_generator(loaded, conditional_run):
    """By index and by name, in a process that cannot import the project."""
    from tfgan import audio
    from tfgan.rundir import RunDir, load_generator

    z, out = loaded
    g, config, stats, _ = load_generator(RunDir(conditional_run))
    assert config.model.classes == ("kick", "sine", "snare")
    # Row 3 asked for -1 / "": class 3 mod 3 = 0.
    labels = np.array([2, 0, 1, 0], np.int32)
    np.testing.assert_array_equal(out["label"], labels)
    np.testing.assert_array_equal(out["label_name"], [2, 1, 0, 0])
    expected = g(z, labels, training=False).numpy()
    np.testing.assert_allclose(out["spec"], expected, rtol=1e-5, atol=1e-5)
    by_name = g(z, np.array([2, 1, 0, 0], np.int32), training=False).numpy()
    np.testing.assert_allclose(out["spec_name"], by_name, rtol=1e-5, atol=1e-5)
    # The class matters: the same z under another class is another spectrogram.
    assert np.abs(expected[1] - by_name[1]).max() > 1e-4
    np.testing.assert_allclose(out["audio"], audio.to_waveform(expected, stats, 8).numpy(),
                               atol=1e-4)
    np.testing.assert_allclose(out["audio_name"], audio.to_waveform(by_name, stats, 8).numpy(),
                               atol=1e-4)
    np.testing.assert_array_equal(out["gen_label"], [1, 1, 1, 1])
    np.testing.assert_allclose(out["gen_spec"], g(out["gen_z"], out["gen_label"],
                                                  training=False).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out["gen_all_label"], [0, 1, 2, 0])
    np.testing.assert_array_equal(out["gen_name_label"], [0, 0, 0, 0])
    np.testing.assert_allclose(out["gen_name_spec"], g(out["gen_z"], out["gen_name_label"],
                                                       training=False).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_unknown_classes_fail_naming_the_known_ones(loaded):
    unknown, out_of_range, too_few, negative = loaded[1]["errors"]
    assert "one label (or class_name) per row of z" in too_few
    assert "count must be at least 1" in negative
    assert "unknown class name: cowbell" in unknown
    assert "kick, sine, snare" in unknown
    assert "label must be a class index in [0, 2] or -1" in out_of_range
