"""The modern recipe's pieces: config resolution, the relativistic loss, R1/R2 penalties,
neutral discriminators, the EMA's ramp and statistics, float16 penalties."""

import argparse
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan import losses
from tfgan.config import LAZY_REG_EVERY, Config, penalty_gamma, preset, reg_every_for, with_recipe
from tfgan.gan import GAN
from tfgan.models import Generator, build_discriminator
from training import cli


def _flags(*argv):
    p = argparse.ArgumentParser()
    cli.add_model_flags(p)
    cli.add_train_flags(p)
    return p.parse_args(argv)


# ------------------------------------------------------------------------------ config

def test_modern_recipe_sets_its_defaults():
    c = preset("cpu", "modern").validate()
    assert c.train.recipe == "modern" and c.train.loss == "rpgan"
    assert c.model.d_norm == "batch"  # measured better than R3GAN's none at this budget
    assert (c.train.beta_1, c.train.beta_2) == (0.0, 0.99)
    assert c.train.r1_gamma == c.train.r2_gamma == pytest.approx(0.0256)
    assert c.train.augment == "shift,tmask,fmask" and c.train.ema_decay == 0.999
    assert preset("cpu").train.recipe == "modern"  # the default run's recipe


def test_reference_recipe_is_the_earlier_attempts_training():
    c = preset("cpu", "reference")
    assert (c.train.loss, c.model.d_norm, c.train.beta_1) == ("nonsaturating", "batch", 0.5)
    assert c.train.r1_gamma == c.train.r2_gamma == c.train.ema_decay == 0
    assert c.train.augment == ""


def test_explicit_flags_win_over_the_recipe():
    base = preset("cpu", "reference")
    c = cli.apply_flags(base, _flags("--recipe", "modern", "--beta-1", "0.5", "--d-norm",
                                     "none", "--r2-gamma", "0", "--ema-decay", "0.99")).validate()
    assert c.train.loss == "rpgan"  # from the recipe
    assert c.train.beta_1 == 0.5 and c.model.d_norm == "none" and c.train.r2_gamma == 0
    assert c.train.ema_decay == 0.99


def test_lazy_r1_r2_is_auto_in_the_modern_recipe_and_explicit_values_win():
    modern, reference = preset("cpu", "modern"), preset("cpu", "reference")
    assert modern.train.reg_every == 0 and reference.train.reg_every == 1
    assert modern.train.steps == 4000  # the lazy saving, spent on steps (README, Quality)
    assert reg_every_for(modern, replicas=1) == LAZY_REG_EVERY == 4
    # Several replicas synchronise a BatchNorm D, which cannot run inside the lazy cond.
    assert reg_every_for(modern, replicas=2) == 1
    free = dataclasses.replace(modern, model=dataclasses.replace(modern.model, d_norm="none"))
    assert reg_every_for(free, replicas=2) == LAZY_REG_EVERY
    assert reg_every_for(reference, replicas=1) == 1
    explicit = cli.apply_flags(preset("cpu"), _flags("--reg-every", "4")).validate()
    with pytest.raises(ValueError, match="--d-norm none"):  # explicit: refused, not changed
        reg_every_for(explicit, replicas=2)
    every = cli.apply_flags(preset("cpu"), _flags("--reg-every", "1")).validate()
    assert reg_every_for(every, replicas=1) == 1
    auto = cli.apply_flags(reference, _flags("--reg-every", "0")).validate()
    assert reg_every_for(auto, replicas=1) == LAZY_REG_EVERY
    with pytest.raises(ValueError, match="reg_every must be >= 0"):
        cli.apply_flags(preset("cpu"), _flags("--reg-every", "-1")).validate()


def test_resuming_with_the_runs_own_recipe_keeps_what_it_was_started_with():
    # A modern run from before lazy R1/R2, with an explicit beta_1, as its config.json holds.
    old = Config.from_dict(preset("cpu").to_dict())
    old = dataclasses.replace(old, train=dataclasses.replace(old.train, reg_every=1, beta_1=0.5))
    c = cli.apply_flags(old, _flags("--recipe", "modern")).validate()
    assert c.train.reg_every == 1 and c.train.beta_1 == 0.5
    # Another recipe is still applied.
    assert cli.apply_flags(old, _flags("--recipe", "reference")).train.loss == "nonsaturating"


def test_auto_lazy_interval_reaches_the_gan():
    from tfgan.trainer import build_gan

    c = cli.apply_flags(preset("cpu"), _flags("--base-width", "4"))
    assert build_gan(c, tf.distribute.get_strategy(), "float32").reg_every == LAZY_REG_EVERY


def test_g_scale_widens_g_and_its_ema_but_not_d():
    from tfgan.rundir import build_generator
    from tfgan.trainer import build_gan

    def widths(model):  # output channels of every conv layer
        return [layer.filters for layer in model._flatten_layers() if hasattr(layer, "filters")]

    base = cli.apply_flags(preset("cpu"), _flags("--base-width", "4", "--g-scale", "1"))
    wide = cli.apply_flags(preset("cpu"), _flags("--base-width", "4", "--g-scale", "2"))
    assert base.model.generator_width == 4 and wide.validate().model.generator_width == 8
    same, gan = (build_gan(c, tf.distribute.get_strategy(), "float32") for c in (base, wide))
    assert widths(gan.generator) == [2 * w for w in widths(same.generator)[:-1]] + [1]
    assert widths(gan.ema_generator) == widths(gan.generator)
    assert widths(gan.discriminator) == widths(same.discriminator)
    assert widths(build_generator(wide)) == widths(gan.generator)  # what export rebuilds


def test_resuming_with_another_g_scale_is_refused():
    from tfgan.recovery import check_compatible
    from tfgan.rundir import RunError

    saved = cli.apply_flags(preset("cpu"), _flags("--g-scale", "1.5"))
    check_compatible(saved, saved)
    with pytest.raises(RunError, match="model.g_scale: run has 1.5, asked 1.0"):
        check_compatible(saved, preset("cpu"))


def test_lr_schedule_follows_the_global_step_of_a_resumed_run():
    """The schedule reads the step counter (which a resumed run starts where it left off),
    not the batch index of the current fit call, which restarts at 0."""
    from tfgan import callbacks as cb
    from tfgan.trainer import build_gan

    c = cli.apply_flags(preset("cpu"), _flags("--base-width", "4", "--steps", "100",
                                              "--lr", "1e-3", "--d-lr-scale", "0.5",
                                              "--lr-decay", "0.25")).validate()
    gan = build_gan(c, tf.distribute.get_strategy(), "float32")
    schedule = cb.LearningRateSchedule(cb.StepCounter(50, 100), c.train)  # resumed at 50
    schedule.set_model(gan)
    schedule.on_train_batch_begin(0)  # the first batch of this fit call
    # Halfway through a decay to 0.25: 0.25 + 0.75 / 2 = 0.625 of each start rate.
    assert float(gan.g_optimizer.learning_rate) == pytest.approx(0.625e-3)
    assert float(gan.d_optimizer.learning_rate) == pytest.approx(0.3125e-3)


def test_d_batch_flag_reaches_the_gan():
    from tfgan.trainer import build_gan

    assert preset("cpu").train.d_batch == "apart"  # the default, in both recipes
    c = cli.apply_flags(preset("cpu"), _flags("--d-batch", "joint", "--base-width", "4"))
    assert c.validate().train.d_batch == "joint"
    assert build_gan(c, tf.distribute.get_strategy(), "float32").joint_batch
    with pytest.raises(ValueError, match="d_batch"):
        dataclasses.replace(c, train=dataclasses.replace(c.train, d_batch="mixed")).validate()


def test_the_16khz_variant_keeps_the_cpu_presets_shape_and_clip():
    cpu = preset("cpu")
    c = cli.apply_flags(cpu, _flags("--sample-rate", "16000", "--scale", "mel",
                                    "--hop-length", "128")).validate()
    assert (c.data.sample_rate, c.data.n_fft, c.data.n_bins) == (16000, 256, 64)
    assert c.data.clip_samples / 16000 == cpu.data.clip_samples / 8000  # the same 0.52 s
    with pytest.raises(ValueError, match="hop_length"):
        cli.apply_flags(cpu, _flags("--hop-length", "300")).validate()  # beyond n_fft 128


def test_penalty_gamma_follows_stylegan2_ada():
    assert penalty_gamma(64, 32) == pytest.approx(0.0256)
    assert penalty_gamma(128, 64) == pytest.approx(0.0512)


def test_wgan_gp_refuses_a_batchnorm_critic():
    c = with_recipe(preset("cpu"), "reference")
    bad = dataclasses.replace(c, train=dataclasses.replace(c.train, loss="wgan-gp"))
    with pytest.raises(ValueError, match="--d-norm none"):
        bad.validate()
    ok = dataclasses.replace(bad, model=dataclasses.replace(bad.model, d_norm="none"))
    ok.validate()


def test_a_version_1_config_keeps_its_old_behaviour():
    old = {"version": 1, "data": {"sample_rate": 8000}, "train": {"steps": 10}}
    c = Config.from_dict(old)
    assert c.data.slice == "random" and c.train.eval_every == 0 and c.train.ema_rampup == 0
    assert not c.data.weight_by_length  # one example per file per pass, as then
    # A version 1 WGAN-GP run had a BatchNorm critic; it still resumes.
    Config.from_dict({"version": 1, "train": {"loss": "wgan-gp"}}).validate()
    assert Config.from_dict({"version": 2}).data.slice == "auto"


# ------------------------------------------------------------------------------ losses

def test_rpgan_losses_by_hand():
    real = tf.constant([[2.0], [-1.0]])
    fake = tf.constant([[0.0], [1.0]])
    g_loss, d_loss = losses.get("rpgan")
    # softplus(f - r): softplus(-2) = log(1 + e^-2), softplus(2) = log(1 + e^2)
    np.testing.assert_allclose(d_loss(real, fake).numpy(),
                               [np.log1p(np.exp(-2.0)), np.log1p(np.exp(2.0))], rtol=1e-6)
    np.testing.assert_allclose(g_loss(fake, real).numpy(),
                               [np.log1p(np.exp(2.0)), np.log1p(np.exp(-2.0))], rtol=1e-6)


# ------------------------------------------------------------------- neutral D at init

@pytest.mark.parametrize("disc", ["simple", "resnet9"])
@pytest.mark.parametrize("norm", ["batch", "none"])
def test_discriminators_start_neutral_at_every_seed(disc, norm):
    x = tf.random.stateless_uniform([16, 64, 64, 1], seed=[1, 2], minval=-1, maxval=1)
    for seed in (0, 1, 2):
        keras.utils.set_random_seed(seed)
        d = build_discriminator(disc, size=64, base_width=8, norm=norm)
        for training in (False, True):
            logits = d(x, training=training).numpy()
            assert np.abs(logits).max() < 1e-6, (seed, training)


def test_zero_initialised_residual_branches_still_learn():
    """The zero-initialised last conv of a branch is linear, so gradients reach it (through
    a ReLU at exactly 0 they would not, and the branch would stay zero for ever); the
    branch's first conv gets gradients once the last has moved off zero."""
    keras.utils.set_random_seed(0)
    d = build_discriminator("resnet9", size=64, base_width=4, norm="none")
    x = tf.random.stateless_uniform([4, 64, 64, 1], seed=[5, 6], minval=-1, maxval=1)
    d(x)
    d.logit.kernel.assign(tf.random.stateless_normal(d.logit.kernel.shape, [0, 1]))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(d(x, training=True))
    grads = tape.gradient(total, [d.res1[1].conv.kernel, d.res3[1].conv.kernel])
    assert all(float(tf.norm(g)) > 0 for g in grads)


def test_an_overflowing_penalty_is_a_skipped_step_not_a_divergence():
    """Under loss scaling an infinite penalty skips the update; the logged loss stays finite."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal([1, 64, 64, 1]).astype(np.float32)
    gan = _gan(Linear(w), r1_gamma=1e38)
    opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam())
    gan.compile(d_optimizer=opt, g_optimizer=keras.optimizers.Adam(), loss="rpgan")
    opt.build(gan.discriminator.trainable_variables)
    real = tf.constant(rng.uniform(-1, 1, [4, 64, 64, 1]).astype(np.float32))
    z = tf.random.stateless_normal([4, 8], seed=[0, 0])
    before = gan.discriminator.w.numpy().copy()
    loss, *_, penalty = gan._d_step(real, z, None, 4.0, 0)
    assert np.isfinite(float(loss)) and np.all(np.isfinite(penalty.numpy()))
    np.testing.assert_array_equal(gan.discriminator.w.numpy(), before)  # step skipped


def test_norm_none_has_no_batchnorm_and_zero_residual_branches():
    d = build_discriminator("resnet9", size=64, base_width=4, norm="none")
    d(tf.zeros([1, 64, 64, 1]))
    assert not [w for w in d.weights if "moving" in w.path]
    for branch in (d.res1, d.res3):
        assert np.all(branch[1].conv.kernel.numpy() == 0)
        assert np.any(branch[0].conv.kernel.numpy() != 0)


# ------------------------------------------------------------------------------ penalties

class Linear(keras.Model):
    """D(x) = <w, x>: its input gradient is w for every x."""

    def __init__(self, w):
        super().__init__()
        self.w = self.add_weight(shape=w.shape, initializer=keras.initializers.Constant(w))

    def call(self, x, training=False):
        return tf.reduce_sum(tf.cast(x, tf.float32) * self.w, axis=[1, 2, 3])[:, None]


def _gan(disc, **kw):
    g = Generator(latent_dim=8, size=64, base_width=4)
    gan = GAN(g, disc, latent_dim=8, **kw)
    gan.compile(d_optimizer=keras.optimizers.Adam(), g_optimizer=keras.optimizers.Adam(),
                loss="rpgan")
    return gan


def test_r1_and_r2_are_gamma_over_two_squared_input_gradient():
    rng = np.random.default_rng(0)
    w = rng.standard_normal([1, 64, 64, 1]).astype(np.float32)
    gan = _gan(Linear(w))
    x = tf.constant(rng.uniform(-1, 1, [3, 64, 64, 1]).astype(np.float32))
    logits, penalty = gan._penalised(x, None, 0.3, gan.d_optimizer)
    np.testing.assert_allclose(penalty.numpy(), [0.15 * np.sum(w ** 2)] * 3, rtol=1e-5)
    np.testing.assert_allclose(logits.numpy()[:, 0], np.sum(x.numpy() * w, axis=(1, 2, 3)),
                               rtol=1e-5)
    _, none = gan._penalised(x, None, 0.0, gan.d_optimizer)
    assert np.all(none.numpy() == 0)


def test_d_loss_adds_both_penalties():
    """With R1 and R2 on a linear critic, D's loss is the pairing loss + gamma ||w||^2."""
    rng = np.random.default_rng(1)
    w = 0.01 * rng.standard_normal([1, 64, 64, 1]).astype(np.float32)
    gan = _gan(Linear(w), r1_gamma=0.2, r2_gamma=0.4)
    real = tf.constant(rng.uniform(-1, 1, [4, 64, 64, 1]).astype(np.float32))
    z = tf.random.stateless_normal([4, 8], seed=[0, 0])
    loss, real_logits, fake_logits, _, penalty = gan._d_step(real, z, None, 4.0, 0)
    pairing = losses.rpgan_discriminator_loss(real_logits, fake_logits).numpy()
    expected = np.mean(pairing) + 0.5 * (0.2 + 0.4) * np.sum(w ** 2)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(penalty.numpy(), 0.3 * np.sum(w ** 2), rtol=1e-5)


def test_lazy_penalties_weigh_k_times_every_kth_update_and_nothing_between():
    """Each D update of a lazy GAN (k = 4) equals an eager GAN's with 4x gamma on updates
    0 and 4 and with no penalty on the others, inside tf.function (the graph's cond)."""
    rng = np.random.default_rng(2)
    w = 0.01 * rng.standard_normal([1, 64, 64, 1]).astype(np.float32)
    real = tf.constant(rng.uniform(-1, 1, [4, 64, 64, 1]).astype(np.float32))
    z = tf.random.stateless_normal([4, 8], seed=[0, 0])

    def gan(**kw):
        keras.utils.set_random_seed(0)  # the same G for every GAN
        g = GAN(Generator(latent_dim=8, size=64, base_width=4), Linear(w), latent_dim=8, **kw)
        g.compile(d_optimizer=keras.optimizers.SGD(1.0), g_optimizer=keras.optimizers.SGD(),
                  loss="rpgan")
        return g

    lazy = gan(r1_gamma=0.2, r2_gamma=0.4, reg_every=4)
    lazy_step = tf.function(lambda: lazy._d_step(real, z, None, 4.0, 0))
    for update, weight in enumerate([4, 0, 0, 0, 4]):
        eager = gan(r1_gamma=0.2 * weight, r2_gamma=0.4 * weight)
        eager.discriminator.w.assign(lazy.discriminator.w)
        norm2 = float(tf.reduce_sum(tf.square(lazy.discriminator.w)))  # before the update
        loss, real_logits, fake_logits, _, penalty = lazy_step()
        eager.d_optimizer.iterations.assign(update)
        eager._d_step(real, z, None, 4.0, 0)
        np.testing.assert_allclose(lazy.discriminator.w.numpy(), eager.discriminator.w.numpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=f"update {update}")
        np.testing.assert_allclose(penalty.numpy(), weight * 0.3 * norm2, rtol=1e-5)
        pairing = np.mean(losses.rpgan_discriminator_loss(real_logits, fake_logits).numpy())
        assert float(loss) == pytest.approx(pairing + weight * 0.3 * norm2, rel=1e-5)
    assert int(lazy.d_optimizer.iterations) == 5
    with pytest.raises(ValueError, match="reg_every"):
        gan(reg_every=0)


def test_r1_under_mixed_float16_matches_float32():
    """Loss scaling keeps R1's tiny input gradients from underflowing in float16."""
    x = tf.random.stateless_uniform([4, 64, 64, 1], seed=[3, 4], minval=-1, maxval=1)

    def penalty(policy, scaled):
        keras.mixed_precision.set_global_policy(policy)
        try:
            keras.utils.set_random_seed(0)
            d = build_discriminator("simple", size=64, base_width=8, norm="none")
            d(x)
            # A tiny logit layer puts the input gradients (about 2e-9) below float16's
            # smallest subnormal (6e-8): unscaled they are lost on any CPU; scaled by 2^20
            # (about 2e-3) they are well inside float16's normal range.
            d.logit.kernel.assign(1e-7 * tf.ones_like(d.logit.kernel))
            g = Generator(latent_dim=8, size=64, base_width=4)
            gan = GAN(g, d, latent_dim=8)
            opt = keras.optimizers.Adam()
            if scaled:
                opt = keras.optimizers.LossScaleOptimizer(opt, initial_scale=2.0 ** 20)
            gan.compile(d_optimizer=opt, g_optimizer=keras.optimizers.Adam(), loss="rpgan")
            opt.build(d.trainable_variables)
            return gan._penalised(x, None, 1.0, opt)[1].numpy()
        finally:
            keras.mixed_precision.set_global_policy("float32")

    exact = penalty("float32", False)
    assert np.all(exact > 0)
    np.testing.assert_allclose(penalty("mixed_float16", True), exact, rtol=0.05)
    # Without the scale the float16 gradients underflow: the test above would catch that.
    unscaled = penalty("mixed_float16", False)
    assert np.max(np.abs(unscaled - exact) / exact) > 0.05


# ------------------------------------------------------------------------------ EMA

def test_ema_decay_ramps_up():
    gan = _gan(Linear(np.zeros([1, 64, 64, 1], np.float32)), ema_decay=0.999, ema_rampup=10,
               ema_generator=Generator(latent_dim=8, size=64, base_width=4))
    assert float(gan.ema_decay_at(0)) == pytest.approx(0.1)
    assert float(gan.ema_decay_at(990)) == pytest.approx(991 / 1000)
    assert float(gan.ema_decay_at(10 ** 6)) == pytest.approx(0.999)


def test_ema_generator_gets_its_own_batchnorm_statistics():
    ema = Generator(latent_dim=8, size=64, base_width=4)
    ema(tf.zeros([1, 8]))
    gan = _gan(Linear(np.zeros([1, 64, 64, 1], np.float32)), ema_decay=0.9,
               ema_generator=ema)
    z = tf.random.stateless_normal([512, 8], seed=[0, 65537])
    before = np.abs(ema(z, training=False).numpy() - ema(z, training=True).numpy()).max()
    momenta = [n.momentum for n in ema._flatten_layers()
               if isinstance(n, keras.layers.BatchNormalization)]
    gan.refresh_ema_statistics(batch_size=512, seed=0)
    after = np.abs(ema(z, training=False).numpy() - ema(z, training=True).numpy()).max()
    assert before > 0.05  # initial statistics (0, 1) are not the generator's
    assert after < 1e-3  # inference now normalises with the EMA generator's own statistics
    assert [n.momentum for n in ema._flatten_layers()
            if isinstance(n, keras.layers.BatchNormalization)] == momenta
