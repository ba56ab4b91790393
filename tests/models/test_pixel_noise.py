"""G's pixel noise (`--g-noise pixel`): a function of z, standard normal, scaled by a map;
and G's last layer by resize and convolution (`--g-last resize`): no checkerboard."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from tfgan.config import Config, ModelConfig
from tfgan.models import Generator
from tfgan.models.generator import NOISE_START, pixel_noise_for

Z = tf.random.stateless_normal([64, 16], seed=[5, 6])
LABELS = tf.constant([0, 1, 2, 1] * 16)


def test_noise_is_standard_normal_independent_and_a_function_of_each_z():
    noise = pixel_noise_for(Z, (64, 64, 1)).numpy()
    assert noise.shape == (64, 64, 64, 1) and noise.dtype == np.float32
    flat = noise.reshape(64, -1)
    assert abs(flat.mean()) < 0.01 and abs(flat.std() - 1) < 0.01
    assert stats.kstest(flat.ravel(), "norm").pvalue > 0.01
    # Neither neighbouring pixels nor two examples share their noise.
    assert abs(np.corrcoef(noise[:, :, :-1].ravel(), noise[:, :, 1:].ravel())[0, 1]) < 0.01
    between = np.corrcoef(flat[:16])[np.triu_indices(16, 1)]
    assert np.abs(between).max() < 0.1 and np.abs(between).mean() < 0.02
    # The same z gives the same noise alone, in another batch, in another order.
    np.testing.assert_array_equal(pixel_noise_for(Z[5:6], (64, 64, 1)), noise[5:6])
    np.testing.assert_array_equal(pixel_noise_for(Z[::-1], (64, 64, 1))[::-1], noise)


def _pair(seed=3, **kwargs):
    out = []
    for pixel_noise in (False, True):
        tf.keras.utils.set_random_seed(seed)
        g = Generator(16, 64, 4, num_classes=3, pixel_noise=pixel_noise, **kwargs)
        g(Z[:1], LABELS[:1])
        out.append(g)
    return out


@pytest.mark.parametrize("last_up", ["transpose", "resize"])
def test_generator_adds_the_noise_its_map_asks_for(last_up):
    plain, noisy = _pair(last_up=last_up)

    def before_tanh(g):
        return np.arctanh(np.clip(g(Z, LABELS).numpy(), -0.999999, 0.999999))

    # The map starts at NOISE_START everywhere: G's output is the plain G's (same seed, same
    # weights: the map's layer draws no random numbers) plus that much of z's noise.
    clean = before_tanh(plain)
    added = (before_tanh(noisy) - clean) / NOISE_START
    keep = np.abs(clean) < 2  # where tanh does not saturate
    np.testing.assert_allclose(added[keep], pixel_noise_for(Z, (64, 64, 1)).numpy()[keep],
                               atol=5e-3)
    # With the map at zero it is the plain G, exactly.
    noisy.to_noise.bias.assign([0.0])
    np.testing.assert_array_equal(noisy(Z, LABELS), plain(Z, LABELS))
    # One z, one sample: alone or in a batch, with the class it was asked for.
    noisy.to_noise.bias.assign([0.3])
    np.testing.assert_allclose(noisy(Z[7:8], LABELS[7:8]), noisy(Z, LABELS)[7:8], atol=1e-6)


def test_noise_is_the_same_under_a_mixed_policy():
    """Keras would cast z to float16 before G sees it; G hashes z's float32 bits instead, so
    a G trained under mixed_float16 draws the noise its float32 export draws."""
    _, g = _pair()
    expected = NOISE_START * pixel_noise_for(Z, (64, 64, 1)).numpy()
    for policy in ("float32", "mixed_float16"):
        tf.keras.mixed_precision.set_global_policy(policy)
        try:
            h = Generator(16, 64, 4, num_classes=3, pixel_noise=True)  # under the policy
            h(Z[:1], LABELS[:1])
            h.set_weights(g.get_weights())
            assert h.compute_dtype == ("float16" if policy != "float32" else "float32")
            noisy = np.arctanh(np.clip(h(Z, LABELS).numpy(), -0.999, 0.999))
            h.to_noise.bias.assign([0.0])
            clean = np.arctanh(np.clip(h(Z, LABELS).numpy(), -0.999, 0.999))
        finally:
            tf.keras.mixed_precision.set_global_policy("float32")
        keep = np.abs(clean) < 1  # away from tanh's saturation
        np.testing.assert_allclose((noisy - clean)[keep], expected[keep], atol=0.02,
                                   err_msg=policy)


def test_resize_last_layer_draws_no_checkerboard():
    """Fed a constant feature map, a transposed convolution of stride 2 gives a pattern of
    period 2 (its kernel overlaps unevenly); nearest-neighbour x2 and a 3x3 convolution
    give a constant away from the border."""
    flat = tf.ones([1, 32, 32, 4])
    out = {}
    for last_up in ("transpose", "resize"):
        tf.keras.utils.set_random_seed(0)
        g = Generator(16, 64, 4, last_up=last_up)
        g(Z[:1])
        x = g.upsample(flat) if last_up == "resize" else flat
        out[last_up] = g.to_image(x).numpy()[0, 2:-2, 2:-2, 0]
        assert g(Z[:2]).shape == (2, 64, 64, 1)
    assert np.ptp(out["resize"]) < 1e-5
    assert np.ptp(out["transpose"]) > 1e-2
    np.testing.assert_allclose(out["transpose"][::2, ::2], out["transpose"][0, 0], atol=1e-5)


def test_noisy_generator_round_trips_and_exports(tmp_path):
    _, g = _pair(last_up="resize")
    g.to_noise.bias.assign([0.2])
    again = Generator.from_config(json.loads(json.dumps(g.get_config())))
    again(Z[:1], LABELS[:1])
    again.set_weights(g.get_weights())
    np.testing.assert_array_equal(again(Z, LABELS), g(Z, LABELS))

    module = tf.Module()
    module.g = g
    module.sample = tf.function(lambda z, y: g(z, y, training=False), input_signature=[
        tf.TensorSpec([None, 16], tf.float32), tf.TensorSpec([None], tf.int32)])
    tf.saved_model.save(module, str(tmp_path / "m"))
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    np.testing.assert_allclose(loaded.sample(Z, LABELS), g(Z, LABELS), atol=1e-6)


def test_config_names_the_choices():
    assert Config().model.g_noise == "none" and Config().model.g_last == "transpose"
    with pytest.raises(ValueError, match=r"g_noise must be one of \('none', 'pixel'\)"):
        ModelConfig(g_noise="gauss").validate()
    with pytest.raises(ValueError, match=r"g_last must be one of \('transpose', 'resize'\)"):
        ModelConfig(g_last="bilinear").validate()
