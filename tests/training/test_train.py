"""End-to-end training: the CLI, the run-directory contract, resume, fit vs loop, replicas."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--steps", "6", "--batch-size", "8", "--base-width", "4", "--log-every", "2",
        "--sample-every", "3", "--checkpoint-every", "3", "--griffin-lim-iters", "4"]


def _env(**extra):
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


# A line of TensorFlow's native log: "2026-11-29 23:42:40.977970: E external/...".
NATIVE_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] ", re.M)


def run_cli(*args, check=True, timeout=300, **env):
    proc = subprocess.run([sys.executable, "-m", "training.run", *args], cwd=ROOT,
                          env=_env(**env), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"training.run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, helpers):
    """Three classes of real synthesised sounds, 12 files each (enough for the evaluation
    to hold half out), plus one corrupt file."""
    root = helpers.write_synth_folder(tmp_path_factory.mktemp("audio"), 16000,
                                      ("sine", "chirp_up", "kick"), per_class=12)
    (root / "kick" / "broken.wav").write_bytes(b"RIFF\x00\x00not a wave")
    return root


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("disc", ["simple", "resnet9"])
def test_run_writes_the_contract_and_resumes(tmp_path, data_dir, disc):
    run = tmp_path / "run"
    # TensorFlow's errors shown (a common setting): its known noise is still filtered out.
    first = run_cli("--disc", disc, "--data", str(data_dir), "--run-dir", str(run), *TINY,
                    TF_CPP_MIN_LOG_LEVEL="2")
    assert "1 skipped" in first.stdout + first.stderr
    assert not NATIVE_LOG.search(first.stdout + first.stderr), first.stderr
    assert "R1/R2 on every 4 D update(s) (--reg-every 0, auto)" in first.stdout

    config = json.loads((run / "config.json").read_text())
    assert config["model"]["disc"] == disc and config["train"]["steps"] == 6
    assert config["train"]["reg_every"] == 0  # auto, as the modern recipe sets it
    assert config["data"]["data_dir"] == str(data_dir) and config["version"] == 2
    stats = json.loads((run / "stats.json").read_text())
    assert len(stats["mean"]) == len(stats["std"]) == 64
    assert all(np.isfinite(stats["mean"])) and min(stats["std"]) > 0

    records = read_metrics(run)
    assert [r["step"] for r in records] == [2, 4, 6]
    for key in ("d_loss", "g_loss", "d_real_acc", "d_fake_acc", "d_real", "d_fake"):
        assert all(np.isfinite(r[key]) for r in records), key
    # D starts neutral (every logit 0, D(x) = 0.5); the logged verdicts are of the D that
    # trains, so they have moved by the first log line.
    assert all(r["d_real"] != 0.5 and r["d_fake"] != 0.5 for r in records)
    # Without --lr-decay the rates stay as configured (2e-4 for both by default).
    assert all(r["lr"] == r["d_lr"] == pytest.approx(2e-4) for r in records)

    samples = run / "samples"
    for step in (3, 6):
        assert (samples / f"step_{step:06d}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        wave, rate = sf.read(samples / f"step_{step:06d}_0.wav")
        assert rate == 8000 and wave.shape == (64 * 63 + 128,)
    assert any((run / "logs").iterdir())
    assert (run / "checkpoints" / "checkpoint").exists()

    # Resume to step 10: the step count continues and nothing logged is duplicated.
    second = run_cli("--data", str(data_dir), "--run-dir", str(run), "--resume", "--steps", "10")
    assert "Resumed from" in second.stdout and "at step 6" in second.stdout
    steps = [r["step"] for r in read_metrics(run)]
    assert steps == [2, 4, 6, 8, 10]
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 10
    assert (run / "checkpoints" / "ckpt-10.index").exists()


def test_run_refuses_bad_input_with_clear_errors(tmp_path, data_dir):
    missing = run_cli("--data", str(tmp_path / "nope"), "--run-dir", str(tmp_path / "r"), *TINY,
                      check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_cli("--data", str(empty), "--run-dir", str(tmp_path / "r2"), *TINY, check=False)
    assert res.returncode == 2 and "No audio files" in res.stderr and str(empty) in res.stderr

    res = run_cli("--data", str(data_dir), "--run-dir", str(tmp_path / "r3"), "--batch-size",
                  "0", check=False)
    assert res.returncode == 2 and "batch_size" in res.stderr and "Traceback" not in res.stderr


def test_resume_refuses_an_incompatible_run(tmp_path, data_dir):
    run = tmp_path / "run"
    run_cli("--data", str(data_dir), "--run-dir", str(run), *TINY)
    again = run_cli("--data", str(data_dir), "--run-dir", str(run), *TINY, check=False)
    assert again.returncode == 2 and "already holds a run" in again.stderr
    other = run_cli("--data", str(data_dir), "--run-dir", str(run), "--resume", "--base-width",
                    "8", "--steps", "8", check=False)
    assert other.returncode == 2 and "incompatible" in other.stderr and "base_width" in other.stderr


# A row at step s logs the rates of its last step, s - 1 of 6 done: by hand, the warm-up
# s / 6, times 0.25 + 0.75 * (1 + cos(pi * (s - 1) / 6)) / 2 with the decay.
SCHEDULES = {
    "warmup": (["--lr-warmup", "6"], {2: 1 / 3, 4: 2 / 3, 6: 1.0}),
    "both": (["--lr-warmup", "6", "--lr-decay", "0.25"],
             {2: 0.94976 / 3, 4: 0.625 * 2 / 3, 6: 0.30024}),
}


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_lr_schedule_sets_both_rates_step_by_step_and_logs_them(tmp_path, data_dir, schedule):
    flags, expected = SCHEDULES[schedule]
    run = tmp_path / "run"
    run_cli("--data", str(data_dir), "--run-dir", str(run), *TINY, "--lr", "1e-3",
            "--d-lr-scale", "0.5", *flags, "--eval-every", "0")
    rows = [r for r in read_metrics(run) if r.get("kind") != "eval"]
    assert [r["step"] for r in rows] == [2, 4, 6]
    for r in rows:
        assert r["lr"] == pytest.approx(1e-3 * expected[r["step"]], rel=1e-4), r
        assert r["d_lr"] == pytest.approx(0.5e-3 * expected[r["step"]], rel=1e-4), r
    train = json.loads((run / "config.json").read_text())["train"]
    assert train["lr_warmup"] == 6 and train["lr_decay"] == (0.25 if schedule == "both" else 1)


def _weights(ckpt_prefix):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(ckpt_prefix)
    names = sorted(n for n in reader.get_variable_to_shape_map()
                   if n.startswith(("generator/", "discriminator/")) and "OPTIMIZER" not in n)
    return {n: reader.get_tensor(n) for n in names}


def test_fit_and_plain_loop_train_identically(tmp_path, data_dir):
    """The same train_step driven by keras fit and by a strategy.run loop, with the
    learning-rate schedule (a callback both loops must call before every step)."""
    args = ["--data", str(data_dir), *TINY, "--lr-decay", "0.25"]
    run_cli(*args, "--run-dir", str(tmp_path / "fit"), "--loop", "fit")
    run_cli(*args, "--run-dir", str(tmp_path / "loop"), "--loop", "custom")
    assert [r["lr"] for r in read_metrics(tmp_path / "fit")] == \
        [r["lr"] for r in read_metrics(tmp_path / "loop")]
    a = _weights(str(tmp_path / "fit" / "checkpoints" / "ckpt-6"))
    b = _weights(str(tmp_path / "loop" / "checkpoints" / "ckpt-6"))
    assert len(a) > 10 and a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-5, err_msg=name)


REPLICA_SCRIPT = r"""
import os, sys, json
import numpy as np, tensorflow as tf, keras
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfgan.config import preset
from tfgan.trainer import build_gan
from tfgan.models.batchnorm import FusedBatchNorm
import dataclasses
# Two replicas synchronise BatchNorm, which runs Keras's unfused ops; the single-replica
# references run the same ops, so the comparison isolates the split of the batch.
FusedBatchNorm._fusable = lambda self, *args: False
c = preset("cpu", "reference")  # no augmentation: the replicas must agree exactly
conditional = sys.argv[2] == "conditional"
c = dataclasses.replace(c, model=dataclasses.replace(
        c.model, base_width=4, disc=sys.argv[1], conditional=conditional,
        classes=("a", "b", "c") if conditional else ()),
    train=dataclasses.replace(c.train, batch_size=8))
if sys.argv[2] == "lazy":  # step 0 of lazy R1/R2 takes the penalised branch of its cond
    c = dataclasses.replace(c, train=dataclasses.replace(c.train, r1_gamma=0.5, r2_gamma=0.5,
                                                         reg_every=2))
    try:  # a synchronised BatchNorm cannot run inside that cond: refused, not crashed
        build_gan(c, tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), "float32")
        raise SystemExit("lazy R1/R2 with a BatchNorm D on two replicas was not refused")
    except ValueError as e:
        assert "--d-norm none" in str(e), e
    # Auto (the modern recipe's 0) falls back to every step here instead of being refused.
    auto = dataclasses.replace(c, train=dataclasses.replace(c.train, reg_every=0))
    assert build_gan(auto, tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
                     "float32").reg_every == 1
    c = dataclasses.replace(c, model=dataclasses.replace(c.model, d_norm="none"))
if sys.argv[2] == "joint":  # real and fake in one D call: synchronised statistics over both
    c = dataclasses.replace(c, train=dataclasses.replace(c.train, d_batch="joint"))
rng = np.random.default_rng(0)
batch = {"real": np.tanh(rng.normal(size=(8, 64, 64, 1))).astype("float32"),
         "z": rng.normal(size=(8, 2, 100)).astype("float32")}
if conditional:
    batch["labels"] = np.array([0, 1, 2, 0, 1, 2, 2, 1], np.int32)

def one_step(strategy):
    keras.utils.set_random_seed(1)
    gan = build_gan(c, strategy, "float32")
    start = [w.numpy().copy() for w in gan.generator.weights + gan.discriminator.weights]
    with strategy.scope():
        # SGD: Adam's first step is ~lr*sign(g), which would amplify round-off noise.
        gan.compile(d_optimizer=keras.optimizers.SGD(0.1), g_optimizer=keras.optimizers.SGD(0.1))
    ds = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(batch))
    @tf.function
    def step(x):
        return strategy.run(gan.train_step, args=(x,))
    for x in ds:
        out = step(x)
    d_loss = float(strategy.reduce("MEAN", out["d_loss"], axis=None))
    global d_norm
    d_norm = float(strategy.reduce("MEAN", out["d_grad_norm"], axis=None))
    return [w.numpy() for w in gan.generator.weights + gan.discriminator.weights], start, d_loss

def relative_change(a_list, b_list):
    # norm of (update_a - update_b) over norm of update_a, all weights together
    diff = np.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(a_list, b_list)))
    size = np.sqrt(sum(float(np.sum((a - s) ** 2)) for a, s in zip(a_list, start)))
    return diff / size

one, start, d1 = one_step(tf.distribute.get_strategy())
n1 = d_norm
# Float noise baseline: the same single-replica step on the batch in reverse order, which
# is the same computation mathematically.
forward = dict(batch)
batch = {k: v[::-1].copy() for k, v in forward.items()}
perm, _, _ = one_step(tf.distribute.get_strategy())
batch = forward
two_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert two_strategy.num_replicas_in_sync == 2
two, start2, d2 = one_step(two_strategy)
n2 = d_norm
assert all(np.array_equal(a, b) for a, b in zip(start, start2))
moved = sum(float(np.max(np.abs(a - s))) > 0 for a, s in zip(one, start))
print(json.dumps({"two": relative_change(one, two), "perm": relative_change(one, perm),
                  "moved": moved, "d1": d1, "d2": d2, "n": len(one), "n1": n1, "n2": n2}))
"""


@pytest.mark.parametrize("disc, kind", [("simple", "plain"), ("resnet9", "plain"),
                                        ("simple", "conditional"), ("simple", "lazy"),
                                        ("simple", "joint")])
def test_one_and_two_replicas_give_the_same_update(disc, kind):
    proc = subprocess.run([sys.executable, "-c", REPLICA_SCRIPT, disc, kind], cwd=ROOT,
                          env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["n"] > 10 and result["moved"] > result["n"] // 2
    # Splitting the batch over replicas changes the update no more than reordering it does:
    # a replica-dependent loss scale or unsynchronised BatchNorm would change it by ~100%.
    assert result["two"] < max(1e-4, 3 * result["perm"]) and result["two"] < 0.2, result
    assert abs(result["d1"] - result["d2"]) < 1e-4, result
    # The logged gradient norm is that of the summed (all-reduced) gradient: one replica's
    # share alone would be about half of it.
    assert result["n2"] == pytest.approx(result["n1"], rel=0.05), result


MIXED_SCRIPT = r"""
import sys, json, dataclasses
import numpy as np, tensorflow as tf, keras
from tfgan.config import preset
from tfgan.trainer import build_gan
policy = sys.argv[1]
keras.utils.set_random_seed(0)
keras.mixed_precision.set_global_policy(policy)
c = preset("cpu")
# R1/R2 on every step here (the recipe's auto would make them lazy); the joint case is lazy.
c = dataclasses.replace(c, model=dataclasses.replace(c.model, base_width=4),
                        train=dataclasses.replace(c.train, batch_size=4, reg_every=1))
if sys.argv[2] == "joint":  # joint batches with lazy R1/R2: per-example gammas in a cond
    c = dataclasses.replace(c, train=dataclasses.replace(c.train, d_batch="joint",
                                                         reg_every=2))
gan = build_gan(c, tf.distribute.get_strategy(), policy)
rng = np.random.default_rng(0)
batch = {"real": np.tanh(rng.normal(size=(4, 64, 64, 1))).astype("float32"),
         "z": rng.normal(size=(4, 2, 100)).astype("float32")}
before = [w.numpy().copy() for w in gan.generator.trainable_weights]
step = tf.function(gan.train_step)
# float16 loss scaling starts high and skips the steps whose gradients overflow while it
# finds its level, so take a few steps.
for _ in range(4):
    out = step(batch)
after = [w.numpy() for w in gan.generator.trainable_weights]
print(json.dumps({
    "finite": all(bool(np.isfinite(float(v))) for v in out.values()),
    "moved": any(not np.array_equal(a, b) for a, b in zip(before, after)),
    "compute": gan.generator.project.compute_dtype,
    "out": str(gan.generator(batch["z"][:, 0]).dtype.name),
    "scaled": type(gan.g_optimizer).__name__}))
"""


@pytest.mark.parametrize("policy, batches", [("mixed_float16", "apart"),
                                             ("mixed_bfloat16", "apart"),
                                             ("mixed_float16", "joint")])
def test_mixed_precision_step(policy, batches):
    proc = subprocess.run([sys.executable, "-c", MIXED_SCRIPT, policy, batches], cwd=ROOT,
                          env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["finite"] and r["moved"]
    assert r["compute"] == policy.split("_")[1] and r["out"] == "float32"
    assert (r["scaled"] == "LossScaleOptimizer") == (policy == "mixed_float16")


def test_wgan_gp_adds_its_weight_times_the_squared_norm_gap_to_d_loss():
    """For a linear critic D(x) = w.x + b, ||grad D|| = ||w|| at every interpolate, so the
    penalty is exactly gp_weight * (||w|| - 1)^2 and D's loss is E[D(fake) - D(real)] plus it."""
    import keras
    from tfgan.gan import GAN
    from tfgan.models import Generator

    size, norm_w, weight = 64, 3.0, 10.0
    w = np.random.default_rng(1).normal(size=(size * size, 1))
    w *= norm_w / np.linalg.norm(w)
    gan = GAN(Generator(8, size, 4), _linear_critic(size, w), 8, gp_weight=weight)
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), loss="wgan-gp")
    rng = np.random.default_rng(0)
    real = np.tanh(rng.normal(size=(4, size, size, 1))).astype("float32")
    z = rng.normal(size=(4, 2, 8)).astype("float32")
    fake = gan.generator(z[:, 0], training=True).numpy()
    gap = float(np.mean(fake.reshape(4, -1) @ w - real.reshape(4, -1) @ w))

    out = {k: float(v) for k, v in gan.train_step({"real": real, "z": z}).items()}
    assert out["gp"] == pytest.approx(weight * (norm_w - 1.0) ** 2, rel=1e-4)
    assert out["d_loss"] == pytest.approx(gap + weight * (norm_w - 1.0) ** 2, rel=1e-4)


def test_r1_adds_gamma_over_two_times_the_squared_input_gradient():
    """R1 on a linear critic: gamma/2 ||w||^2 per example, whatever the input."""
    import keras
    from tfgan.gan import GAN
    from tfgan.models import Generator

    size, gamma = 64, 0.5
    w = np.random.default_rng(2).normal(size=(size * size, 1)) * 0.01
    gan = GAN(Generator(8, size, 4), _linear_critic(size, w), 8, r1_gamma=gamma)
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(0)
    batch = {"real": np.tanh(rng.normal(size=(4, size, size, 1))).astype("float32"),
             "z": rng.normal(size=(4, 2, 8)).astype("float32")}
    out = {k: float(v) for k, v in gan.train_step(batch).items()}
    assert out["gp"] == pytest.approx(0.5 * gamma * float(np.sum(w ** 2)), rel=1e-4)


def _linear_critic(size, w):
    import keras

    return keras.Sequential([
        keras.Input((size, size, 1)), keras.layers.Flatten(),
        keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(w),
                           bias_initializer="ones")])


def test_conditional_run_learns_the_folders_classes_and_samples_each(tmp_path, data_dir):
    run = tmp_path / "run"
    run_cli("--conditional", "--data", str(data_dir), "--run-dir", str(run), *TINY)
    config = json.loads((run / "config.json").read_text())["model"]
    assert config["conditional"] and config["classes"] == ["chirp_up", "kick", "sine"]
    # One WAV per class (the first sample of each row of the grid).
    assert sorted(p.name for p in (run / "samples").glob("step_000006_*.wav")) == [
        f"step_000006_{k}.wav" for k in range(3)]
    # Evaluation asks for every class and says how often the classifier agrees.
    ev = subprocess.run([sys.executable, "-m", "tfgan.eval", str(run), "--samples", "30"],
                        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr[-3000:]
    acc = json.loads((run / "eval.json").read_text())["conditional_accuracy"]
    assert sorted(acc["per_class"]) == ["chirp_up", "kick", "sine"]
    assert acc["min"] == min(acc["per_class"].values())
    # 30 samples asked for 3 classes in turn: 10 each, so overall is the per-class mean.
    assert acc["overall"] == pytest.approx(np.mean(list(acc["per_class"].values())))
    assert "conditional accuracy" in ev.stdout
    fd = json.loads((run / "eval.json").read_text())["frechet_distance"]
    assert sorted(fd["per_class"]) == sorted(fd["per_class_real"]) == ["chirp_up", "kick", "sine"]
    assert all(v > 0 for v in fd["per_class"].values()) and "FD per class" in ev.stdout
    # The classes are part of the run: other data is refused on resume.
    one = tmp_path / "one" / "sine"
    one.mkdir(parents=True)
    for wav in (data_dir / "sine").glob("*.wav"):
        (one / wav.name).write_bytes(wav.read_bytes())
    proc = run_cli("--data", str(one.parent), "--run-dir", str(run), "--resume", "--steps", "8",
                   check=False)
    assert proc.returncode == 2 and "at least two classes" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_class_norm_pixel_noise_and_resize_run_trains_resumes_and_loads_them(tmp_path, data_dir):
    from tfgan.models.generator import ClassBatchNorm
    from tfgan.rundir import RunDir, load_generator

    run = tmp_path / "run"
    run_cli("--conditional", "--g-cond", "norm", "--g-noise", "pixel", "--g-last", "resize",
            "--data", str(data_dir), "--run-dir", str(run), *TINY, "--eval-every", "0")
    run_cli("--data", str(data_dir), "--run-dir", str(run), "--resume", "--steps", "8",
            "--eval-every", "0")
    model = json.loads((run / "config.json").read_text())["model"]
    assert model["g_cond"] == "norm" and model["g_noise"] == "pixel"
    assert model["g_last"] == "resize"
    g, config, _, step = load_generator(RunDir(run))
    norms = [layer for layer in g._flatten_layers() if isinstance(layer, ClassBatchNorm)]
    assert step == 8 and config.model.num_classes == 3 and len(norms) == 4
    # The tables and the noise map's kernel start at zero; restored from training they
    # are not.
    assert all(np.abs(n.gain.embeddings.numpy()).max() > 0 for n in norms)
    assert g.pixel_noise and np.abs(g.to_noise.kernel.numpy()).max() > 0
    assert g.last_up == "resize" and g.to_image.kernel.shape == (3, 3, 4, 1)
