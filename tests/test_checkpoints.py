"""Checkpoint layout: variables keyed by their path in the model, and older runs still read."""

from __future__ import annotations

import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan import checkpoint_layout as layout
from tfgan.config import preset
from tfgan.models import build_discriminator
from tfgan.rundir import RunDir, build_generator, load_generator

# A run written by main at b33db0d, when variables were keyed by position: see its
# fingerprint.py for how it was made and what the fingerprint holds.
INDEX_KEYED_RUN = Path(__file__).parent / "fixtures" / "run_index_keyed"


class TwoDense(keras.Model):
    """Two layers of equal shape, created in either order: the case where keying by
    position silently swaps weights."""

    def __init__(self, swap: bool = False):
        super().__init__()
        if swap:
            self.second, self.first = keras.layers.Dense(4), keras.layers.Dense(4)
        else:
            self.first, self.second = keras.layers.Dense(4), keras.layers.Dense(4)

    def call(self, x):
        return self.second(tf.nn.relu(self.first(x)))


def _two_dense(swap: bool, seed: int):
    keras.utils.set_random_seed(seed)
    model = TwoDense(swap)
    model(tf.zeros([1, 4]))
    return model


def test_paths_name_each_variable_once_by_attribute_not_by_keras_counter():
    d = build_discriminator("simple", size=64, base_width=4, spectral_norm=True)
    d(tf.zeros([1, 64, 64, 1]))
    paths = layout.variable_paths(d)
    assert len(paths) == len(d.weights)  # the wrapped kernel is named once, by its owner
    assert "logit/layer/kernel" in paths and "logit/vector_u" in paths
    # Keras's own names count layers made in the process; the paths do not.
    first = build_generator(preset("cpu"))
    again = build_generator(preset("cpu"))
    assert [w.path for w in first.weights] != [w.path for w in again.weights]
    assert list(layout.variable_paths(first)) == list(layout.variable_paths(again))


def test_a_reordered_layer_list_restores_each_weight_to_its_own_layer(tmp_path):
    saved = _two_dense(swap=False, seed=0)
    opt = keras.optimizers.Adam(0.1)
    opt.build(layout.optimizer_variables(saved))
    x = tf.random.stateless_normal([3, 4], seed=[1, 2])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(saved(x) ** 2)
    opt.apply_gradients(zip(tape.gradient(loss, saved.trainable_variables),
                            saved.trainable_variables))
    path = tf.train.Checkpoint(model=layout.trackable_weights(saved), opt=opt).write(
        str(tmp_path / "ckpt"))

    restored = _two_dense(swap=True, seed=1)
    assert restored.weights[0].shape == saved.weights[0].shape  # equal shapes, other order
    opt2 = keras.optimizers.Adam(0.1)
    opt2.build(layout.optimizer_variables(restored))
    tf.train.Checkpoint(model=layout.trackable_weights(restored), opt=opt2).read(
        path).assert_consumed()
    np.testing.assert_array_equal(restored(x), saved(x))
    for name in ("first", "second"):  # Adam's moments followed their variables
        a, b = getattr(saved, name).kernel, getattr(restored, name).kernel
        np.testing.assert_array_equal(opt._momentums[opt._get_variable_index(a)],
                                      opt2._momentums[opt2._get_variable_index(b)])

    # The older, index-keyed layout swaps them: what this layout exists to prevent.
    tf.train.Checkpoint(model=layout.index_keyed_weights(saved)).write(str(tmp_path / "old"))
    by_index = _two_dense(swap=True, seed=1)
    tf.train.Checkpoint(model=layout.index_keyed_weights(by_index)).read(
        str(tmp_path / "old")).assert_consumed()
    assert not np.allclose(by_index(x), saved(x))


@pytest.fixture()
def index_keyed_run(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(INDEX_KEYED_RUN, run)
    (run / "checkpoints" / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-2"\nall_model_checkpoint_paths: "ckpt-2"\n')
    return run


def test_checkpoint_key_is_where_tensorflow_stores_a_path(tmp_path):
    model = _two_dense(swap=False, seed=0)
    path = tf.train.Checkpoint(net=layout.trackable_weights(model)).write(str(tmp_path / "c"))
    reader = tf.train.load_checkpoint(path)
    for name, variable in layout.variable_paths(model).items():
        np.testing.assert_array_equal(reader.get_tensor(layout.checkpoint_key("net", name)),
                                      variable.numpy())


def test_checkpoints_keyed_by_position_are_recognised(index_keyed_run, tmp_path):
    assert layout.is_index_keyed(str(index_keyed_run / "checkpoints" / "ckpt-2"))
    model = _two_dense(swap=False, seed=0)
    path = tf.train.Checkpoint(model=layout.trackable_weights(model)).write(str(tmp_path / "c"))
    assert not layout.is_index_keyed(path)


def test_an_index_keyed_run_exports_the_same_generator(index_keyed_run):
    fingerprint = np.load(INDEX_KEYED_RUN / "fingerprint.npz")
    run = RunDir(index_keyed_run)
    z = tf.random.stateless_normal([1, run.load_config().model.latent_dim], seed=[7, 7])
    ema, _, _, step = load_generator(run)
    raw, *_ = load_generator(run, prefer_ema=False)
    assert step == 2
    np.testing.assert_allclose(ema(z, training=False), fingerprint["ema"], atol=1e-6)
    np.testing.assert_allclose(raw(z, training=False), fingerprint["g"], atol=1e-6)
    assert not np.allclose(fingerprint["ema"], fingerprint["g"])


def test_an_index_keyed_run_resumes_with_its_models_and_optimiser_state(index_keyed_run):
    from tfgan.recovery import RunCheckpoints
    from tfgan.trainer import build_gan

    fingerprint = np.load(INDEX_KEYED_RUN / "fingerprint.npz")
    run = RunDir(index_keyed_run)
    gan = build_gan(run.load_config(), tf.distribute.get_strategy(), "float32")
    checkpoints = RunCheckpoints(gan, run, every=2)
    assert checkpoints.restore().endswith("ckpt-2") and checkpoints.step == 2
    x = tf.random.stateless_uniform([2, 64, 64, 1], seed=[8, 8], minval=-1, maxval=1)
    np.testing.assert_allclose(gan.discriminator(x, training=False), fingerprint["d"],
                               atol=1e-6)
    assert float(gan.ada_p.numpy()) == fingerprint["ada_p"]
    for name, model in (("g_optimizer", gan.generator), ("d_optimizer", gan.discriminator)):
        opt = getattr(gan, name)
        assert int(opt.iterations.numpy()) == fingerprint[f"{name}_iterations"] == 2
        # The file's slots are [m_0, v_0, m_1, v_1, ...] in creation order; this process
        # built its optimiser in path order. Each variable must get its own moments.
        sums = fingerprint[f"{name}_slots"].reshape(-1, 2)
        for i, variable in enumerate(model.trainable_variables):
            j = opt._get_variable_index(variable)
            got = [float(np.abs(opt._momentums[j].numpy()).sum()),
                   float(np.abs(opt._velocities[j].numpy()).sum())]
            np.testing.assert_allclose(got, sums[i], rtol=1e-6, err_msg=variable.path)
    # Saved again, the run is in the path layout and reads back.
    saved = checkpoints.manager.save(checkpoint_number=3)
    assert not layout.is_index_keyed(saved)
