"""Class-conditional generator and projection discriminators."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfgan.config import Config, ModelConfig
from tfgan.models import Generator, build_discriminator
from tfgan.models.generator import ClassBatchNorm

X = tf.random.stateless_uniform([6, 64, 64, 1], seed=[3, 4], minval=-1, maxval=1)
Y = tf.constant([0, 1, 2, 2, 1, 0])


def _d(name, **kw):
    d = build_discriminator(name, size=64, base_width=4, num_classes=3, **kw)
    d(X, Y)
    return d


def test_generator_depends_on_the_class_and_round_trips():
    g = Generator(16, 64, 4, num_classes=3)
    z = tf.random.stateless_normal([3, 16], seed=[1, 2])
    out = {k: g(z, tf.fill([3], k)).numpy() for k in range(3)}
    assert out[0].shape == (3, 64, 64, 1)
    assert not np.allclose(out[0], out[1]) and not np.allclose(out[1], out[2])
    again = Generator.from_config(g.get_config())
    again(z, tf.fill([3], 0))
    again.set_weights(g.get_weights())
    np.testing.assert_array_equal(again(z, tf.fill([3], 2)), out[2])
    with pytest.raises(ValueError, match="conditional on 3 classes: pass `labels`"):
        g(z)


def test_class_norm_starts_as_batchnorm_then_scales_and_shifts_each_class_alone():
    norm = ClassBatchNorm(num_classes=3, channels=4)
    x = tf.random.stateless_normal([6, 5, 5, 4], seed=[7, 8]) * 3.0 + 2.0
    labels = tf.constant([0, 1, 2, 0, 1, 2])
    plain = norm(x, labels, training=True).numpy()
    # Both tables start at zero: the batch normalised over N, H, W, per channel.
    mean, var = x.numpy().mean((0, 1, 2)), x.numpy().var((0, 1, 2))
    np.testing.assert_allclose(plain, (x.numpy() - mean) / np.sqrt(var + 1e-5), atol=1e-4)
    norm.gain.embeddings.assign(tf.constant([[0.0] * 4, [1.0, 2.0, 3.0, 4.0], [0.0] * 4]))
    norm.offset.embeddings.assign(tf.constant([[0.0] * 4, [0.0] * 4, [0.5] * 4]))
    steered = norm(x, labels, training=True).numpy()
    for i, k in enumerate(labels.numpy()):  # by hand: y * (1 + gain[k]) + offset[k]
        want = plain[i] * (1 + np.array([0, [1, 2, 3, 4], 0][k], dtype=float)) + [0, 0, 0.5][k]
        np.testing.assert_allclose(steered[i], want, atol=1e-4)


def test_generator_with_class_norm_round_trips_and_needs_classes():
    g = Generator(16, 64, 4, num_classes=3, class_norm=True)
    z = tf.random.stateless_normal([3, 16], seed=[1, 2])
    out = g(z, tf.fill([3], 2)).numpy()
    assert sum(isinstance(layer, ClassBatchNorm) for layer in g._flatten_layers()) == 4
    again = Generator.from_config(g.get_config())
    again(z, tf.fill([3], 0))
    again.set_weights(g.get_weights())
    np.testing.assert_array_equal(again(z, tf.fill([3], 2)), out)
    with pytest.raises(ValueError, match="class_norm needs a conditional generator"):
        Generator(16, 64, 4, class_norm=True)
    with pytest.raises(ValueError, match="g_cond must be one of"):
        ModelConfig(g_cond="film").validate()
    with pytest.raises(ValueError, match="needs a conditional model"):
        ModelConfig(g_cond="norm", conditional=False).validate()


@pytest.mark.parametrize("name", ["simple", "resnet9"])
def test_a_conditional_d_starts_neutral_for_every_class(name):
    assert np.all(_d(name)(X, Y).numpy() == 0.0)


@pytest.mark.parametrize("name", ["simple", "resnet9"])
def test_projection_logit_is_psi_of_phi_plus_the_class_embedding_dot_phi(name, monkeypatch):
    d = _d(name)
    rng = np.random.default_rng(0)
    kernel, bias = d.logit.kernel, d.logit.bias
    kernel.assign(rng.normal(size=kernel.shape).astype("float32"))
    bias.assign([0.5])
    table = d.projection.embedding.embeddings
    table.assign(rng.normal(size=table.shape).astype("float32"))
    logits = d(X, Y).numpy()
    # phi(x): the same D with its head replaced by the identity.
    monkeypatch.setattr(d, "_head", lambda features, labels, training: features)
    phi = d(X, Y).numpy()
    expected = phi @ kernel.numpy() + 0.5 + np.sum(table.numpy()[Y.numpy()] * phi, axis=1,
                                                     keepdims=True)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_config_keeps_the_classes_and_refuses_nonsense():
    c = Config(model=ModelConfig(conditional=True, classes=("kick", "snare"))).validate()
    assert Config.from_json(c.to_json()) == c and c.model.num_classes == 2
    assert Config().model.num_classes == 0
    with pytest.raises(ValueError, match="at least two classes"):
        ModelConfig(conditional=True, classes=("kick",)).validate()
    with pytest.raises(ValueError, match="only for a conditional model"):
        ModelConfig(classes=("kick", "snare")).validate()


def test_auto_turns_conditioning_on_for_two_or_more_class_folders(tmp_path, helpers):
    from tfgan.data import pipeline
    from tfgan.rundir import RunError
    from tfgan.trainer import with_classes
    from training.run import parse_args

    two = helpers.write_synth_folder(tmp_path / "two", 8000, ("sine", "kick"), per_class=2)
    one = helpers.write_synth_folder(tmp_path / "one", 8000, ("sine",), per_class=2)
    auto = Config()
    assert auto.model.conditional == "auto" and auto.model.num_classes == 0
    for root, want in ((two, True), (one, False)):
        c = with_classes(auto, pipeline.scan_folder(root, auto.data))
        assert c.model.conditional is want
        assert c.model.classes == (("kick", "sine") if want else ())
    off = Config(model=ModelConfig(conditional=False))
    assert with_classes(off, pipeline.scan_folder(two, off.data)).model.num_classes == 0
    on = Config(model=ModelConfig(conditional=True))
    with pytest.raises(RunError, match="at least two classes"):
        with_classes(on, pipeline.scan_folder(one, on.data))
    # G steered by class needs classes: auto on one folder is refused, naming the folder.
    norm = Config(model=ModelConfig(g_cond="norm"))
    with pytest.raises(RunError, match=r"--g-cond norm .* has 1 \(sine\)"):
        with_classes(norm, pipeline.scan_folder(one, norm.data))
    assert with_classes(norm, pipeline.scan_folder(two, norm.data)).model.num_classes == 2
    # The flag: bare means on; auto, on and off by name; anything else is refused.
    assert parse_args([]).conditional is None  # the config's default: auto
    assert parse_args(["--conditional"]).conditional is True
    assert [parse_args(["--conditional", v]).conditional for v in ("auto", "on", "off")] == [
        "auto", True, False]
    with pytest.raises(SystemExit):
        parse_args(["--conditional", "yes"])
    with pytest.raises(ValueError, match="True, False or 'auto'"):
        ModelConfig(conditional="yes").validate()


def test_old_runs_stay_unconditional_and_resume_keeps_the_decision():
    import argparse

    from training import cli

    # A config written before conditioning existed has no such key: it was unconditional.
    old = Config().to_dict()
    del old["model"]["conditional"]
    assert Config.from_dict(old).model.conditional is False
    # Resuming: "auto" keeps what the run decided; "off" on a conditional run drops its
    # classes, so the resume is refused for differing models rather than for the classes.
    ran = Config(model=ModelConfig(conditional=True, classes=("a", "b")))
    args = argparse.Namespace(conditional="auto")
    assert cli.apply_flags(ran, args).model == ran.model
    off = cli.apply_flags(ran, argparse.Namespace(conditional=False)).validate()
    assert off.model.conditional is False and off.model.classes == ()
