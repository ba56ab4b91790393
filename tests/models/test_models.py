"""Tests for tfgan.models: shapes, serialisation, architecture, spectral norm, precision."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan.models import (Generator, ResNet9Discriminator, SimpleDiscriminator,
                          build_discriminator)

LATENT = 8
WIDTH = 4
DISCS = [SimpleDiscriminator, ResNet9Discriminator]


def _z(n=2, seed=0):
    return np.random.default_rng(seed).standard_normal([n, LATENT]).astype(np.float32)


def _x(size, n=2, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, [n, size, size, 1]).astype(np.float32)


def _build(kind, size, **kw):
    if kind is Generator:
        return Generator(latent_dim=LATENT, size=size, base_width=WIDTH, **kw)
    return kind(size=size, base_width=WIDTH, **kw)


def _input(kind, size):
    return _z() if kind is Generator else _x(size)


def _graph(model, size):
    fn = tf.function(lambda x: model(x, training=False))
    return fn.get_concrete_function(tf.TensorSpec([1, size, size, 1], tf.float32)).graph


def _sublayers(model):
    """Every layer inside `model`, recursively (the architecture's attribute names are not
    part of its interface, so the tests find layers by type)."""
    return list(model._flatten_layers(include_self=False, recursive=True))


def _first_conv_wrapper(model):
    """The SpectralNormalization around the conv that sees the 1-channel input."""
    found = [l for l in _sublayers(model) if isinstance(l, keras.layers.SpectralNormalization)
             and isinstance(l.layer, keras.layers.Conv2D) and l.layer.kernel.shape[2] == 1]
    assert len(found) == 1
    return found[0]


def _ops(graph, op_type):
    return [op for op in graph.get_operations() if op.type == op_type]


def _residual_adds(graph):
    """Add ops both of whose operands depend on the model input."""
    x_op = graph.inputs[0].op
    dependent = {x_op.name}
    count = 0
    for op in graph.get_operations():
        deps = [t.op.name in dependent for t in op.inputs]
        if any(deps):
            dependent.add(op.name)
        if op.type in ("Add", "AddV2", "AddN") and sum(deps) >= 2:
            count += 1
    return count


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("size", [64, 128])
def test_generator_output(size):
    g = _build(Generator, size)
    y = g(_z(3), training=False)
    assert y.shape == (3, size, size, 1)
    assert y.dtype == tf.float32
    assert y.numpy().std() > 0  # not constant
    # The output is squashed into the data's range [-1, 1]: blow up the last layer and it
    # saturates at the bounds instead of passing them.
    last = [l for l in _sublayers(g) if isinstance(l, keras.layers.Conv2DTranspose)][-1]
    last.kernel.assign(last.kernel * 1e4)
    y = g(_z(3, seed=1), training=True).numpy()
    assert np.abs(y).max() <= 1.0 and np.abs(y).max() > 0.999


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("kind", DISCS)
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_discriminator_output(kind, size, spectral_norm):
    d = _build(kind, size, spectral_norm=spectral_norm)
    for training in (False, True):
        out = d(_x(size, n=3), training=training)
        assert out.shape == (3, 1)
        assert out.dtype == tf.float32
        assert np.all(np.isfinite(out.numpy()))


def test_build_discriminator():
    d = build_discriminator("resnet9", size=64, base_width=WIDTH)
    assert isinstance(d, ResNet9Discriminator) and d.base_width == WIDTH
    assert isinstance(build_discriminator("simple", size=64), SimpleDiscriminator)
    with pytest.raises(ValueError, match="Received: name='vgg'"):
        build_discriminator("vgg")


@pytest.mark.parametrize("kind", [Generator] + DISCS)
def test_bad_size_raises(kind):
    with pytest.raises(ValueError, match="Received"):
        _build(kind, 96)
    with pytest.raises(ValueError, match="Received"):
        kind(base_width=0)


# -------------------------------------------------------------------- serialisation


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("kind, kw", [(Generator, {}), (SimpleDiscriminator, {}),
                                      (ResNet9Discriminator, {}),
                                      (SimpleDiscriminator, {"spectral_norm": True})],
                         ids=["gen", "simple", "resnet9", "simple-sn"])
def test_config_round_trip(kind, kw, size):
    model = _build(kind, size, **kw)
    x = _input(kind, size)
    # Discriminators start with a zero logit layer (every output 0); move the weights off
    # their initial values so that a fresh clone can be told apart.
    rng = np.random.default_rng(0)
    model(x, training=False)  # build
    model.set_weights([w + 0.05 * rng.standard_normal(w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    ref = model(x, training=False).numpy()
    config = model.get_config()
    assert config["size"] == size and config["base_width"] == WIDTH
    clone = kind.from_config(config)
    assert clone.get_config() == config
    clone(x, training=False)  # build
    # Freshly initialised weights differ, so the outputs do too ...
    assert not np.allclose(clone(x, training=False).numpy(), ref)
    # ... and the same weights give the same outputs.
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(x, training=False).numpy(), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind, kw", [(Generator, {}), (SimpleDiscriminator, {}),
                                      (ResNet9Discriminator, {"spectral_norm": True})],
                         ids=["gen", "simple", "resnet9-sn"])
def test_save_load_round_trip(tmp_path, kind, kw):
    size = 64
    model = _build(kind, size, **kw)
    x = _input(kind, size)
    model(x, training=True)  # move BatchNorm statistics (and spectral norm) off their init
    ref = model(x, training=False).numpy()
    path = tmp_path / "model.keras"
    model.save(str(path))
    loaded = keras.models.load_model(str(path))
    assert type(loaded) is kind
    assert loaded.get_config() == model.get_config()
    assert len(loaded.weights) == len(model.weights)
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(loaded(x, training=False).numpy(), ref, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------- architecture


@pytest.mark.parametrize("size, blocks", [(64, 4), (128, 5)])
def test_simple_discriminator_architecture(size, blocks):
    d = _build(SimpleDiscriminator, size)
    d(_x(size))
    graph = _graph(d, size)
    assert _residual_adds(graph) == 0
    convs = _ops(graph, "Conv2D")
    assert len(convs) == blocks
    # Strided 4x4 convolutions with widths c, 2c, 4c, ... down to 4x4.
    assert [op.inputs[1].shape.as_list() for op in convs] == [
        [4, 4, 1 if i == 0 else WIDTH * 2 ** (i - 1), WIDTH * 2 ** i] for i in range(blocks)]
    assert [op.get_attr("strides") for op in convs] == [[1, 2, 2, 1]] * blocks
    assert convs[-1].outputs[0].shape.as_list() == [1, 4, 4, WIDTH * 2 ** (blocks - 1)]
    # BatchNorm in every block but the first.
    norms = [l for l in _sublayers(d) if isinstance(l, keras.layers.BatchNormalization)]
    assert len(norms) == blocks - 1


def test_residual_detector_finds_resnet9_residuals():
    """The residual check above can fail: it finds ResNet-9's two additions."""
    d = _build(ResNet9Discriminator, 64)
    d(_x(64))
    graph = _graph(d, 64)
    assert _residual_adds(graph) == 2
    assert len(_ops(graph, "Conv2D")) == 8


@pytest.mark.parametrize("size, blocks", [(64, 3), (128, 4)])
def test_generator_architecture(size, blocks):
    g = Generator(latent_dim=LATENT, size=size, base_width=WIDTH)
    g(_z())
    fn = tf.function(lambda z: g(z, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec([1, LATENT], tf.float32)).graph
    top = WIDTH * 2 ** blocks
    (matmul,) = _ops(graph, "MatMul")
    assert matmul.inputs[1].shape.as_list() == [LATENT, 4 * 4 * top]
    # Transposed convolutions double the size each time: 4 -> ... -> size.
    ups = _ops(graph, "Conv2DBackpropInput")
    assert len(ups) == blocks + 1
    assert [op.outputs[0].shape.as_list() for op in ups] == [
        [1, 8 * 2 ** i, 8 * 2 ** i, top // 2 ** (i + 1)] for i in range(blocks)] + [
        [1, size, size, 1]]


# -------------------------------------------------------------------- spectral norm


def _sigma_max(kernel):
    k = np.asarray(kernel)
    return float(np.linalg.svd(k.reshape(-1, k.shape[-1]), compute_uv=False)[0])


def test_spectral_norm_wraps_layers():
    for kind, n_convs in ((SimpleDiscriminator, 4), (ResNet9Discriminator, 8)):
        d = _build(kind, 64, spectral_norm=True)
        d(_x(64))
        layers = _sublayers(d)
        wrapped = [l.layer for l in layers if isinstance(l, keras.layers.SpectralNormalization)]
        kernels = [l for l in layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]
        # Every Conv/Dense is wrapped: n convolutions and the logit.
        assert len(kernels) == n_convs + 1
        assert sorted(map(id, wrapped)) == sorted(map(id, kernels))
        plain = _build(kind, 64)
        plain(_x(64))
        assert not any(isinstance(l, keras.layers.SpectralNormalization)
                       for l in _sublayers(plain))


@pytest.mark.parametrize("kind", DISCS)
def test_spectral_norm_bounds_the_first_conv(kind):
    # Measured top singular value of the first conv kernel, scaled to 5 and then called in
    # training mode n times (power iteration from a seeded random u):
    #   n = 1: 1.36, 4: 1.06-1.07, 8: 1.002-1.006. Ten calls leave a wide margin.
    keras.utils.set_random_seed(0)
    d = kind(size=64, base_width=8, spectral_norm=True)
    x = _x(64, n=2)
    d(x, training=False)  # build
    wrapper = _first_conv_wrapper(d)
    conv = wrapper.layer
    # Start far from 1 so reaching 1 proves the normalisation works.
    conv.kernel.assign(conv.kernel.numpy() * 5.0 / _sigma_max(conv.kernel))
    assert _sigma_max(conv.kernel) == pytest.approx(5.0, rel=1e-4)
    # Inference calls leave the kernel alone.
    d(x, training=False)
    assert _sigma_max(conv.kernel) == pytest.approx(5.0, rel=1e-4)
    for _ in range(10):
        d(x, training=True)
    # Keras' wrapper stores kernel / sigma back into the kernel in training calls; that
    # is the effective kernel the next call convolves with. Its top singular value is ~1.
    assert _sigma_max(conv.kernel) == pytest.approx(1.0, abs=0.05)
    _, normalised = wrapper.normalized_weights()
    assert _sigma_max(normalised) == pytest.approx(1.0, abs=0.05)


# ----------------------------------------------------------------- mixed precision


@pytest.mark.parametrize("kind, spectral_norm", [
    (Generator, False), (SimpleDiscriminator, False), (ResNet9Discriminator, False),
    (SimpleDiscriminator, True),
    (ResNet9Discriminator, True),
], ids=["gen", "simple", "resnet9", "simple-sn", "resnet9-sn"])
def test_mixed_precision_outputs_are_float32(kind, spectral_norm):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        kw = {} if kind is Generator else {"spectral_norm": spectral_norm}
        model = _build(kind, 64, **kw)
        x = _input(kind, 64)
        for training in (False, True):
            out = model(x, training=training)
            assert out.dtype == tf.float32
            assert np.all(np.isfinite(out.numpy()))
        # The policy really applies inside: convolutions compute in float16.
        convs = [l for l in _sublayers(model)
                 if isinstance(l, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
        assert convs and all(l.compute_dtype == "float16" for l in convs)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert keras.mixed_precision.global_policy().name == "float32"
