"""Tests for tfgan.augment: shapes, identities, exact semantics, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfgan import augment

B, H, W = 16, 64, 64


@pytest.fixture
def x():
    tf.random.set_seed(1234)
    rng = np.random.default_rng(0)
    # Strictly inside (-1, 1), so a masked cell (-1) is never confused with an input value.
    return tf.constant(rng.uniform(-0.9, 0.9, size=[B, H, W, 1]).astype(np.float32))


@pytest.mark.parametrize("names", [("shift",), ("tmask",), ("fmask",),
                                   ("shift", "tmask", "fmask")])
@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_shapes_and_range_preserved(x, names, p):
    y = augment.apply(x, names, p)
    assert y.shape == x.shape
    assert y.dtype == tf.float32
    assert np.all(np.abs(y.numpy()) <= 1.0)


@pytest.mark.parametrize("names", [("shift",), ("tmask",), ("fmask",),
                                   ("shift", "tmask", "fmask")])
def test_p_zero_is_identity(x, names):
    np.testing.assert_array_equal(augment.apply(x, names, 0.0).numpy(), x.numpy())


def test_p_zero_is_identity_in_a_graph(x):
    p = tf.Variable(0.0)
    fn = tf.function(lambda v: augment.apply(v, ("shift", "tmask", "fmask"), p))
    np.testing.assert_array_equal(fn(x).numpy(), x.numpy())
    p.assign(1.0)  # the same traced graph follows the variable
    assert not np.array_equal(fn(x).numpy(), x.numpy())


def test_time_shift_is_a_circular_roll_per_example(x):
    y = augment.time_shift(x, 1.0).numpy()
    xn = x.numpy()
    limit = int(W * augment.MAX_SHIFT)
    shifts = []
    for i in range(B):
        found = [s for s in range(-limit, limit + 1) if np.array_equal(y[i], np.roll(xn[i], s, 1))]
        assert len(found) == 1, f"example {i} is not a roll of its input by <= {limit} frames"
        shifts.append(found[0])
    # Independent per example: not one shift for the whole batch.
    assert len(set(shifts)) > 1
    assert any(s != 0 for s in shifts)


def test_time_shift_half_probability_leaves_some_untouched(x):
    y = augment.time_shift(x, 0.5).numpy()
    same = [np.array_equal(y[i], x.numpy()[i]) for i in range(B)]
    assert any(same) and not all(same)


@pytest.mark.parametrize("op, axis", [(augment.time_mask, 2), (augment.freq_mask, 1)])
def test_masks_set_one_contiguous_band_to_silence(x, op, axis):
    y = op(x, 1.0).numpy()[..., 0]
    xn = x.numpy()[..., 0]
    n = y.shape[axis]
    widest = int(n * augment.MASK_FRACTION)
    for i in range(B):
        changed = y[i] != xn[i]
        # Everything not masked is unchanged; every changed cell is exactly -1.
        assert np.all(y[i][changed] == -1.0)
        # Masked lines are whole rows (fmask) or columns (tmask).
        other = 2 - axis  # the other spatial axis of a [H, W] example
        lines = changed.any(axis=other)
        assert np.array_equal(changed.all(axis=other), lines)
        idx = np.flatnonzero(lines)
        assert 1 <= idx.size <= widest
        assert np.array_equal(idx, np.arange(idx[0], idx[-1] + 1)), "band is not contiguous"


@pytest.mark.parametrize("names", [("shift",), ("tmask",), ("fmask",),
                                   ("shift", "tmask", "fmask")])
def test_gradients_flow(x, names):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = augment.apply(x, names, 1.0)
        loss = tf.reduce_sum(y)
    g = tape.gradient(loss, x)
    assert g is not None
    g = g.numpy()
    assert np.all(np.isfinite(g))
    assert np.count_nonzero(g) > 0.5 * g.size
    # Each output cell is either a copy of one input cell (gradient 1) or silence (0).
    assert set(np.unique(g)) <= {0.0, 1.0}
    assert np.count_nonzero(g == 0) == np.count_nonzero(y.numpy() == -1.0)


def test_resolve():
    assert augment.resolve("shift,fmask") == ("shift", "fmask")
    assert augment.resolve(["tmask"]) == ("tmask",)
    assert augment.resolve("") == ()
    assert augment.resolve(None) == ()


def test_resolve_unknown_raises():
    with pytest.raises(ValueError, match="Unknown augmentation.*'flip'"):
        augment.resolve("shift,flip")
