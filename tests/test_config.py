"""Tests for tfgan.config: presets, JSON round trips and validation errors."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from tfgan import config as C
from tfgan.config import Config, DataConfig, ModelConfig, TrainConfig, preset


def test_json_round_trip_default():
    cfg = Config()
    back = Config.from_json(cfg.to_json())
    assert back == cfg
    assert back.to_json() == cfg.to_json()


def test_json_round_trip_replaced_variant():
    base = preset("specgan")
    variant = dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, data_dir="/data/dogs", scale="mel", fmin=40.0,
                                 cache=False),
        model=dataclasses.replace(base.model, disc="resnet9", spectral_norm=True, latent_dim=64,
                                  g_scale=1.5),
        train=dataclasses.replace(base.train, loss="hinge", lr=1e-4, d_lr_scale=0.1,
                                  augment="shift,tmask", ada_target=0.6, ema_decay=0.999,
                                  precision="mixed_float16"),
    )
    assert variant != base
    text = variant.to_json()
    back = Config.from_json(text)
    assert back == variant
    assert back.validate() is back
    # The JSON really holds the changed values (not just defaults that happen to match).
    d = json.loads(text)
    assert d["data"]["data_dir"] == "/data/dogs"
    assert d["model"]["disc"] == "resnet9"
    assert d["train"]["d_lr_scale"] == 0.1
    assert d["model"]["g_scale"] == 1.5 and back.model.generator_width == 96
    assert back.train.d_lr == pytest.approx(1e-5)


def test_presets_shapes():
    cpu = preset("cpu").validate()
    assert (cpu.data.n_bins, cpu.data.n_frames) == (64, 64)
    assert (cpu.model.height, cpu.model.width) == (64, 64)
    assert cpu.model.base_width == 32
    assert cpu.data.sample_rate == 8000
    assert cpu.preset == "cpu"

    spec = preset("specgan").validate()
    assert (spec.data.n_bins, spec.data.n_frames) == (128, 128)
    assert (spec.model.height, spec.model.width) == (128, 128)
    assert spec.model.base_width == 64
    assert spec.data.sample_rate == 16000
    assert spec.preset == "specgan"


def test_preset_clip_lengths_match_docstring():
    # "0.52 s clips" at 8 kHz and "1.03 s clips" at 16 kHz.
    cpu, spec = preset("cpu").data, preset("specgan").data
    assert cpu.clip_samples == 64 * 63 + 128 == 4160
    assert cpu.clip_samples / cpu.sample_rate == pytest.approx(0.52)
    assert spec.clip_samples == 128 * 127 + 256 == 16512
    assert spec.clip_samples / spec.sample_rate == pytest.approx(1.032)


@pytest.mark.parametrize("gpu, expected", [(True, "specgan"), (False, "cpu")])
def test_auto_preset_follows_gpu(monkeypatch, gpu, expected):
    monkeypatch.setattr(C, "gpu_available", lambda: gpu)
    assert preset("auto") == preset(expected)
    assert preset("auto").model.height == (128 if gpu else 64)


def test_unknown_preset():
    with pytest.raises(ValueError, match="preset"):
        preset("huge")


@pytest.mark.parametrize("name", ["cpu", "specgan"])
def test_clip_samples_gives_exactly_n_frames(name):
    from tfgan import audio

    data = preset(name).data
    wave = tf.zeros([data.clip_samples])
    assert audio.stft(wave, data).shape[0] == data.n_frames
    # One sample fewer loses a frame: clip_samples is the minimum, not just enough.
    assert audio.stft(tf.zeros([data.clip_samples - 1]), data).shape[0] == data.n_frames - 1
    assert audio.log_magnitude(wave, data).shape == (data.n_bins, data.n_frames)


@pytest.mark.parametrize("cfg, field", [
    (Config(model=ModelConfig(disc="vgg")), "disc"),
    (Config(train=TrainConfig(loss="lsgan")), "loss"),
    (Config(train=TrainConfig(precision="float64")), "precision"),
    (Config(data=DataConfig(n_bins=64, n_frames=128)), "n_frames"),
    (Config(data=DataConfig(n_bins=96, n_frames=96)), "n_bins"),
    (Config(model=ModelConfig(height=64, width=128)), "height"),
    (Config(data=DataConfig(n_fft=256)), "n_fft"),
    (Config(data=DataConfig(hop_length=0)), "hop_length"),
    (Config(data=DataConfig(scale="cqt")), "scale"),
    (Config(train=TrainConfig(ada_target=0.6)), "ada_target"),
    (Config(train=TrainConfig(ema_decay=1.0)), "ema_decay"),
    (Config(train=TrainConfig(batch_size=0)), "batch_size"),
    (Config(train=TrainConfig(lr=-1.0)), "lr"),
    (Config(train=TrainConfig(lr=float("nan"))), "lr"),
    (Config(model=ModelConfig(latent_dim=0)), "latent_dim"),
    (Config(train=TrainConfig(lr_decay=0.0)), "lr_decay"),
    (Config(train=TrainConfig(lr_decay=1.5)), "lr_decay"),
    (Config(train=TrainConfig(lr_decay=float("nan"))), "lr_decay"),
    (Config(train=TrainConfig(lr_warmup=-1)), "lr_warmup"),
    (Config(train=TrainConfig(steps=100, lr_warmup=101)), "lr_warmup"),
    (Config(model=ModelConfig(g_scale=0.0)), "g_scale"),
    (Config(model=ModelConfig(g_scale=float("nan"))), "g_scale"),
])
def test_bad_values_raise_naming_the_field(cfg, field):
    with pytest.raises(ValueError, match=field):
        cfg.validate()


def test_model_data_shape_mismatch():
    cfg = dataclasses.replace(preset("cpu"), model=ModelConfig(height=128, width=128))
    with pytest.raises(ValueError, match="Model shape must match"):
        cfg.validate()


def test_ada_with_augment_is_valid():
    Config(train=TrainConfig(ada_target=0.6, augment="shift")).validate()


def test_unknown_json_field_in_section():
    d = Config().to_dict()
    d["train"]["stpes"] = 10
    with pytest.raises(ValueError, match="stpes"):
        Config.from_dict(d)
    d = Config().to_dict()
    d["data"]["samplerate"] = 16000
    with pytest.raises(ValueError, match="samplerate"):
        Config.from_json(json.dumps(d))


def test_unknown_top_level_json_field():
    d = Config().to_dict()
    d["trian"] = d.pop("train")
    d["trian"]["steps"] = 5
    with pytest.raises(ValueError, match="trian"):
        Config.from_dict(d)


def test_newer_version_raises():
    d = Config().to_dict()
    d["version"] = C.CONFIG_VERSION + 1
    with pytest.raises(ValueError, match="version"):
        Config.from_json(json.dumps(d))
    # The current version is fine, and a missing version means the current one.
    d["version"] = C.CONFIG_VERSION
    assert Config.from_dict(d) == Config()
    del d["version"]
    assert Config.from_dict(d).version == C.CONFIG_VERSION


def test_configs_are_frozen():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.steps = 5  # type: ignore[misc]


def test_d_lr():
    assert TrainConfig(lr=2e-4, d_lr_scale=0.1).d_lr == pytest.approx(2e-5)
    assert np.isclose(TrainConfig().d_lr, TrainConfig().lr)


def test_config_accepts_exactly_the_registered_discriminators(monkeypatch):
    import tfgan.models

    with pytest.raises(ValueError, match="disc must be one of"):
        ModelConfig(disc="patchgan").validate()
    monkeypatch.setitem(tfgan.models.DISCRIMINATORS, "patchgan", tfgan.models.SimpleDiscriminator)
    ModelConfig(disc="patchgan").validate()


def test_unknown_augmentation_is_refused_by_the_config():
    with pytest.raises(ValueError, match=r"Unknown augmentation.*\['cutout'\]"):
        Config(train=TrainConfig(augment="shift,cutout")).validate()


def test_lr_factor_falls_on_a_half_cosine_to_lr_decay():
    t = TrainConfig(steps=100, lr_decay=0.25)
    # 0.25 + 0.75 * (1 + cos(pi * done)) / 2: 1 at the start, 0.625 halfway, 0.25 at the end
    assert [t.lr_factor(s) for s in (0, 50, 100)] == pytest.approx([1.0, 0.625, 0.25])
    assert t.lr_factor(25) == pytest.approx(0.25 + 0.375 * (1 + 2 ** -0.5))
    assert t.lr_factor(150) == pytest.approx(0.25)  # past the end it stays at the floor
    assert TrainConfig(steps=100).lr_factor(50) == 1.0  # the default keeps the rates fixed
    assert not TrainConfig().lr_scheduled and t.lr_scheduled


def test_lr_warmup_rises_linearly_then_hands_over_to_the_decay():
    t = TrainConfig(steps=100, lr_warmup=10)
    # (step + 1) / 10 over the first ten steps, then 1: the step after 9 done is the tenth
    assert [t.lr_factor(s) for s in (0, 4, 9, 10, 60)] == pytest.approx([0.1, 0.5, 1, 1, 1])
    assert t.lr_scheduled
    both = TrainConfig(steps=100, lr_warmup=10, lr_decay=0.25)
    # the warm-up multiplies the half cosine, which runs over the whole run
    assert both.lr_factor(4) == pytest.approx(0.5 * (0.25 + 0.375 * (1 + math.cos(0.04 * math.pi))))
    assert both.lr_factor(50) == pytest.approx(0.625)
