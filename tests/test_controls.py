"""Each balance control of training.run changes what it should, and nothing it should not.

Most checks drive `GAN.train_step` eagerly on tiny models, so a discriminator can record
what it is shown and a constant-logit discriminator makes losses computable by hand. Two
short real trainings (`tfgan.train` on a two-file folder) cover what only a whole run
shows: ADA's p rising on a dataset D memorises, spectral norm in the checkpoint, and the
EMA generator being the one a run exports.
"""

from __future__ import annotations

import dataclasses
import io
import math

import keras
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from tfgan.gan import GAN
from tfgan.models import Generator, build_discriminator

LATENT, B, SIZE = 8, 8, 64


def real_batch(seed=0):
    """Spectrogram-like data: a few bright rows (harmonics) on a dark floor, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    x = np.full([B, SIZE, SIZE, 1], -0.8, np.float32)
    for i in range(B):
        for row in rng.choice(SIZE, 4, replace=False):
            x[i, row, :, 0] = 0.8
    return tf.constant(x + 0.05 * rng.standard_normal(x.shape).astype(np.float32))


def batch(step, n_critic=1):
    z = tf.random.stateless_normal([B, n_critic + 1, LATENT], seed=[1, step])
    return {"real": real_batch(step % 2), "z": z}


class Spy(keras.Model):
    """Wraps a discriminator and keeps a copy of every input it is shown (eager only)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, []

    def call(self, x, training=False):
        self.seen.append(np.array(x))
        return self.inner(x, training=training)


class ConstantD(keras.Model):
    """Logit = b for every input (plus 0 * mean(x), so every gradient exists)."""

    def __init__(self, b):
        super().__init__()
        self.b = self.add_weight(shape=(), initializer=keras.initializers.Constant(b))

    def call(self, x, training=False):
        return self.b + 0.0 * tf.reduce_mean(x, axis=[1, 2, 3])[:, None]


def make_gan(disc="simple", spectral_norm=False, d=None, d_lr=2e-4, loss="nonsaturating",
             **kwargs):
    keras.utils.set_random_seed(0)
    g = Generator(LATENT, SIZE, base_width=4)
    g(tf.zeros([1, LATENT]))
    if d is None:
        d = build_discriminator(disc, size=SIZE, base_width=4, spectral_norm=spectral_norm)
    d(tf.zeros([1, SIZE, SIZE, 1]))
    ema = None
    if kwargs.get("ema_decay", 0) > 0:
        ema = Generator(LATENT, SIZE, base_width=4)
        ema(tf.zeros([1, LATENT]))
        for a, w in zip(ema.weights, g.weights):
            a.assign(w)
    gan = GAN(g, d, LATENT, ema_generator=ema, **kwargs)
    d_opt, g_opt = keras.optimizers.Adam(d_lr, 0.5), keras.optimizers.Adam(2e-4, 0.5)
    gan.compile(d_optimizer=d_opt, g_optimizer=g_opt, loss=loss)
    d_opt.build(d.trainable_variables)
    g_opt.build(g.trainable_variables)
    return gan


def step(gan, i):
    """One eager train step; its metrics alone (the trackers average since their reset)."""
    for tracker in gan.metrics:
        tracker.reset_state()
    return {k: float(v) for k, v in gan.train_step(batch(i)).items()}


def softplus(x):
    return math.log1p(math.exp(x))


# ------------------------------------------------------------------------------ R1


def input_grad_norm(d, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = d(x, training=True)
        total = tf.reduce_sum(logits)
    return float(tf.norm(tape.gradient(total, x)))


def move_d_off_neutral(gan):
    """D starts neutral (a zero logit layer: every logit 0, no input gradient); give its
    logit layer small random weights, the same for every GAN, so both are non-zero."""
    kernel = np.random.default_rng(0).normal(0, 0.05, gan.discriminator.logit.kernel.shape)
    gan.discriminator.logit.kernel.assign(kernel.astype(np.float32))


def test_r1_adds_a_penalty_and_flattens_d_on_real_data():
    """R1 (gamma/2 E||grad D(x)||^2) shows up as the gp metric and shrinks grad_x D(x)."""
    plain, r1 = make_gan(d_lr=1e-3), make_gan(r1_gamma=10.0, d_lr=1e-3)
    for gan in (plain, r1):
        move_d_off_neutral(gan)
    x = real_batch(0)
    assert input_grad_norm(plain.discriminator, x) == pytest.approx(
        input_grad_norm(r1.discriminator, x), rel=1e-5)  # same start
    for i in range(4):
        m_plain, m_r1 = step(plain, i), step(r1, i)
        assert m_plain["gp"] == 0.0
        assert m_r1["gp"] > 0.0
        if i == 0:  # same weights, same batch: the penalty is added to D's loss
            assert m_r1["d_loss"] == pytest.approx(m_plain["d_loss"] + m_r1["gp"], rel=1e-5)
    assert input_grad_norm(r1.discriminator, x) < 0.8 * input_grad_norm(plain.discriminator, x)


# ------------------------------------------------------------------ joint D batches


def test_a_joint_batch_shares_batchnorm_statistics_between_real_and_fake():
    """Apart, a BatchNorm D's verdict on the real batch ignores the fakes; joint, it is D
    on the two batches as one, so shifting the fakes moves the real logits too."""
    apart, joint = make_gan(), make_gan(joint_batch=True)
    move_d_off_neutral(apart)
    move_d_off_neutral(joint)
    real = real_batch(0)
    fake = tf.random.stateless_uniform(real.shape, seed=[5, 6], minval=-1, maxval=1)
    shifted = fake + 0.5
    r_apart, f_apart = apart.d_pair(real, fake, None)
    assert np.allclose(apart.d_pair(real, shifted, None)[0], r_apart, atol=1e-6)
    r_joint, f_joint = joint.d_pair(real, fake, None)
    whole = joint.discriminator(tf.concat([real, fake], 0), training=True)
    np.testing.assert_allclose(r_joint, whole[:B], atol=1e-5)
    np.testing.assert_allclose(f_joint, whole[B:], atol=1e-5)
    assert not np.allclose(r_joint, r_apart, atol=1e-3)
    assert not np.allclose(joint.d_pair(real, shifted, None)[0], r_joint, atol=1e-3)


def test_a_joint_train_step_is_the_hand_computed_loss_of_one_d_call():
    """BatchNorm D, D's lr 0 (so the G step sees the same D): both losses of a joint step
    are the non-saturating losses of D on [real; fakes] in one call, not on two calls."""
    def sp(x):
        return np.log1p(np.exp(x))

    losses = {}
    for joint in (True, False):
        gan = make_gan(joint_batch=joint, d_lr=0.0)
        move_d_off_neutral(gan)
        data = batch(0)
        g, d, real = gan.generator, gan.discriminator, data["real"]
        fakes = [g(data["z"][:, i], training=True) for i in (0, 1)]
        if joint:
            both = d(tf.concat([real, fakes[0]], 0), training=True).numpy()[:, 0]
            d_real, d_fake = both[:B], both[B:]
            g_fake = d(tf.concat([real, fakes[1]], 0), training=True).numpy()[B:, 0]
        else:
            d_real = d(real, training=True).numpy()[:, 0]
            d_fake = d(fakes[0], training=True).numpy()[:, 0]
            g_fake = d(fakes[1], training=True).numpy()[:, 0]
        got = step(gan, 0)
        assert got["d_loss"] == pytest.approx(np.mean(sp(-d_real) + sp(d_fake)), rel=1e-4)
        assert got["g_loss"] == pytest.approx(np.mean(sp(-g_fake)), rel=1e-4)
        losses[joint] = got["d_loss"]
    assert losses[True] != pytest.approx(losses[False], rel=1e-3)  # the two modes differ


@pytest.mark.parametrize("loss", ["nonsaturating", "rpgan"])
def test_without_normalisation_joint_and_apart_train_alike(loss):
    """With no BatchNorm in D each logit depends on its own input only, so one joint call
    must train G and D exactly as two calls do, R1 and R2 (different gammas) included."""
    def gan(joint):
        keras.utils.set_random_seed(0)
        d = build_discriminator("simple", size=SIZE, base_width=4, norm="none")
        made = make_gan(d=d, loss=loss, r1_gamma=0.1, r2_gamma=0.3, joint_batch=joint,
                        d_lr=1e-3)
        move_d_off_neutral(made)
        return made

    apart, joint = gan(False), gan(True)
    for i in range(3):
        m_apart, m_joint = step(apart, i), step(joint, i)
        assert m_joint["gp"] > 0
        for k in ("d_loss", "g_loss", "gp", "d_rank"):
            assert m_joint[k] == pytest.approx(m_apart[k], rel=1e-4, abs=1e-6), (i, k)
    for a, b in zip(apart.discriminator.weights + apart.generator.weights,
                    joint.discriminator.weights + joint.generator.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    swapped = gan(True)  # R1 and R2 each on its own half: swapping the gammas shows
    swapped.r1_gamma, swapped.r2_gamma = 0.3, 0.1
    assert step(swapped, 0)["gp"] != pytest.approx(step(gan(True), 0)["gp"], rel=1e-3)


# --------------------------------------------------------------------- instance noise


def test_instance_noise_is_annealed_from_its_std_to_nothing():
    gan = make_gan(d=Spy(build_discriminator("simple", size=SIZE, base_width=4)),
                   instance_noise=0.5, noise_anneal_steps=100)
    spy = gan.discriminator
    x = batch(0)["real"].numpy()
    stds = {}
    for at in (0, 50, 100, 150):
        gan.g_optimizer.iterations.assign(at)
        spy.seen.clear()
        gan.train_step(batch(0))
        seen_real = spy.seen[0]  # D's first call in a step is on the real batch
        assert seen_real.shape == x.shape
        stds[at] = float(np.std(seen_real - x))
    assert stds[0] == pytest.approx(0.5, rel=0.05)  # early: noisy
    assert stds[50] == pytest.approx(0.25, rel=0.05)  # linear annealing
    assert stds[100] == 0.0 and stds[150] == 0.0  # late: D sees the clean data


# ---------------------------------------------------------------------- label smoothing


@pytest.mark.parametrize("b", [0.7, -1.3])
def test_label_smoothing_changes_the_d_loss_by_the_closed_form(b):
    """With every logit = b: -t log s(b) - (1 - t) log(1 - s(b)) - log(1 - s(b))."""
    losses = {}
    for ls in (0.0, 0.2):
        gan = make_gan(d=ConstantD(b), label_smoothing=ls)
        losses[ls] = step(gan, 0)["d_loss"]  # the loss of the logits before D's update
        t = 1.0 - ls
        expected = t * softplus(-b) + (1 - t) * softplus(b) + softplus(b)
        assert losses[ls] == pytest.approx(expected, rel=1e-5)
    # softplus(b) - softplus(-b) = b, so smoothing by s moves the loss by exactly s * b.
    assert losses[0.2] - losses[0.0] == pytest.approx(0.2 * b, rel=1e-4)


# ------------------------------------------------------------------------- augment


def test_augment_changes_what_d_sees_but_not_its_shape():
    seen = {}
    for names in ("", "shift,tmask,fmask"):
        gan = make_gan(d=Spy(build_discriminator("simple", size=SIZE, base_width=4)),
                       augment=names)
        data = batch(0)
        fake = gan.generator(data["z"][:, 0], training=True).numpy()
        gan.discriminator.seen.clear()  # drop the build call
        gan.train_step(data)
        seen[names] = (gan.discriminator.seen[0], gan.discriminator.seen[1], fake)
    x = batch(0)["real"].numpy()
    real_in, fake_in, fake = seen[""]
    np.testing.assert_array_equal(real_in, x)
    np.testing.assert_allclose(fake_in, fake, atol=1e-6)
    real_in, fake_in, fake = seen["shift,tmask,fmask"]
    assert real_in.shape == x.shape and fake_in.shape == fake.shape
    # Every example is changed (p = 1 without ADA): masks and shifts, real and fake alike.
    assert all(not np.allclose(a, b) for a, b in zip(real_in, x))
    assert all(not np.allclose(a, b, atol=1e-6) for a, b in zip(fake_in, fake))
    # Masked cells are silence (-1); the data has none.
    assert np.all((real_in == -1.0).any(axis=(1, 2, 3))) and not np.any(x == -1.0)


# ---------------------------------------------------------------------------- ADA


@pytest.mark.parametrize("b, expected_per_step", [(-2.0, 0.0), (2.0, B / (0.1 * 1000))])
def test_ada_p_moves_by_the_sign_of_d_on_real_data(b, expected_per_step):
    """p += sign(E[sign D(x)] - target) * batch / (kimg * 1000), clipped to [0, 1]."""
    gan = make_gan(d=ConstantD(b), augment="shift", ada_target=0.6, ada_kimg=0.1)
    assert float(gan.ada_p) == 0.0
    for i in range(3):
        m = step(gan, i)
    # Below target (every logit negative): p stays 0. Above: it rises by the fixed step.
    assert m["ada_p"] == pytest.approx(3 * expected_per_step, abs=1e-6)
    assert float(gan.ada_p) == pytest.approx(3 * expected_per_step, abs=1e-6)


# ---------------------------------------------------------------------------- EMA


def test_ema_is_the_closed_form_average_of_g():
    decay = 0.9
    gan = make_gan(ema_decay=decay)
    ema_stats = [v.numpy() for v in gan.ema_generator.non_trainable_variables]
    history = [[w.numpy() for w in gan.generator.trainable_variables]]
    for i in range(3):
        step(gan, i)
        history.append([w.numpy() for w in gan.generator.trainable_variables])
    # ema_n = decay^n w_0 + sum_k (1 - decay) decay^(n-k) w_k, the average started at w_0.
    n = len(history) - 1
    for j, avg in enumerate(gan.ema_generator.trainable_variables):
        expected = decay ** n * history[0][j] + sum(
            (1 - decay) * decay ** (n - k) * history[k][j] for k in range(1, n + 1))
        np.testing.assert_allclose(avg.numpy(), expected, rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(a.numpy(), w.numpy()) for a, w in
               zip(gan.ema_generator.trainable_variables, gan.generator.trainable_variables))
    # BatchNorm's moving statistics are neither averaged nor copied from G: the EMA's own
    # are re-estimated by refresh_ema_statistics (tests/test_recipes.py), not by the step.
    for a, before in zip(gan.ema_generator.non_trainable_variables, ema_stats):
        np.testing.assert_array_equal(a.numpy(), before)
    assert any(not np.array_equal(a.numpy(), w.numpy()) for a, w in
               zip(gan.ema_generator.non_trainable_variables,
                   gan.generator.non_trainable_variables))
    assert gan.sampler() is gan.ema_generator


# ---------------------------------------------------------------- short real trainings


@pytest.fixture(scope="module")
def two_files(tmp_path_factory):
    from tfgan.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("two")
    for i, kind in enumerate(("sine", "kick")):
        sf.write(root / f"{kind}.wav", synthesize(kind, np.random.default_rng(i), 8000), 8000,
                 subtype="PCM_16")
    return root


def tiny_config(data_dir, steps, **train):
    from tfgan.config import preset

    c = preset("cpu")
    return dataclasses.replace(
        c, data=dataclasses.replace(c.data, data_dir=str(data_dir)),
        model=dataclasses.replace(c.model, base_width=4, spectral_norm=train.pop("sn", False)),
        train=dataclasses.replace(c.train, steps=steps, batch_size=8, log_every=5,
                                  sample_every=steps, checkpoint_every=steps,
                                  griffin_lim_iters=2, **train))


@pytest.fixture(scope="module")
def controls_run(tmp_path_factory, two_files):
    """A few dozen steps on two files, which D soon tells from G's output.

    One run serves three tests (ADA, spectral norm, EMA export): each real training
    costs seconds of tracing.
    """
    from tfgan.trainer import train

    run = tmp_path_factory.mktemp("controls") / "run"
    config = tiny_config(two_files, 40, sn=True, augment="shift,tmask,fmask", ada_target=0.6,
                         ada_kimg=0.5, ema_decay=0.9)
    train(config, run, stream=io.StringIO())
    return run


def test_ada_p_rises_when_d_overfits(controls_run):
    from tfgan.rundir import RunDir

    p = [r["ada_p"] for r in RunDir(controls_run).read_metrics()]
    assert p[-1] > 0.0
    assert p[-1] > p[0] and max(p) == pytest.approx(p[-1], abs=0.1)


def test_spectral_norm_run_keeps_every_layer_near_one(controls_run):
    """After real training steps, each kernel of D has its top singular value near 1."""
    from tfgan.rundir import RunDir, trackable_weights

    d = build_discriminator("simple", size=SIZE, base_width=4, spectral_norm=True)
    d(tf.zeros([1, SIZE, SIZE, 1]))
    tf.train.Checkpoint(discriminator=trackable_weights(d)).restore(
        RunDir(controls_run).latest_checkpoint()).expect_partial().assert_existing_objects_matched()
    kernels = [w.numpy() for w in d.weights if w.name == "kernel"]
    assert len(kernels) == 5  # four convolutions and the logit
    sigmas = [np.linalg.svd(k.reshape(-1, k.shape[-1]), compute_uv=False)[0] for k in kernels]
    # One power iteration a step and an optimiser step after it: close to 1, not exact.
    assert all(0.8 < s < 1.25 for s in sigmas), sigmas


def test_export_loads_the_ema_generator(controls_run):
    from tfgan.rundir import RunDir, load_generator

    from tfgan.checkpoint_layout import checkpoint_key, variable_paths

    run = RunDir(controls_run)
    reader = tf.train.load_checkpoint(run.latest_checkpoint())
    differ = False
    for prefer, name in ((True, "ema_generator"), (False, "generator")):
        g, *_ = load_generator(run, prefer_ema=prefer)
        paths = variable_paths(g)
        assert len(paths) == len(g.weights)
        for path, got in paths.items():
            np.testing.assert_array_equal(got.numpy(),
                                          reader.get_tensor(checkpoint_key(name, path)))
            differ |= not np.allclose(reader.get_tensor(checkpoint_key("ema_generator", path)),
                                      reader.get_tensor(checkpoint_key("generator", path)))
    assert differ  # the EMA is not the live G: loading the wrong one would be caught
