"""One frozen config flows from the command line to every constructor.

`Config` groups three frozen dataclasses (data, model, train). Variants are made with
`dataclasses.replace`, never by mutation. A config is saved as JSON with every run
(`RUN/config.json`) and read back with `Config.from_json`.

Presets:
  * ``cpu``: 64x64 linear spectrograms of 8 kHz audio (0.52 s clips), base width 32.
    Sized so that the default run finishes in minutes on two CPU cores.
  * ``specgan``: 128x128 linear spectrograms of 16 kHz audio (1.03 s clips), base width 64,
    the shapes of SpecGAN (Donahue et al., 2019, "Adversarial Audio Synthesis").
  * ``auto``: ``specgan`` when a GPU is visible, ``cpu`` otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Optional

CONFIG_VERSION = 2

D_NORMS = ("batch", "none")
G_CONDS = ("input", "norm")  # how a conditional G takes its class
G_NOISES = ("none", "pixel")  # noise G adds to its output before tanh
G_LASTS = ("transpose", "resize")  # how G's last layer doubles the size
D_BATCHES = ("apart", "joint")
SLICES = ("auto", "start", "random", "energy")
RECIPES = ("reference", "modern")
# Auto lazy R1/R2's interval: with it, 4000 steps cost what 3000 every-step ones do (README).
LAZY_REG_EVERY = 4
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
SCALES = ("linear", "mel")
PRESETS = ("auto", "cpu", "specgan")


# The names of discriminators and losses live with the code they name (the registries in
# tfgan.models and tfgan.losses); these read them there, importing TensorFlow on first use.
def discriminator_names() -> tuple:
    from tfgan.models import DISCRIMINATORS

    return tuple(DISCRIMINATORS)


def loss_names() -> tuple:
    from tfgan.losses import LOSSES

    return tuple(LOSSES)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Audio and spectrogram parameters.

    The spectrogram has ``n_bins`` frequency rows and ``n_frames`` time columns. For the
    linear scale, ``n_bins == n_fft // 2`` (the Nyquist bin is dropped, as in SpecGAN).
    A clip holds exactly ``hop_length * (n_frames - 1) + n_fft`` samples.
    """

    data_dir: Optional[str] = None  # None: the built-in procedural dataset
    sample_rate: int = 8000
    n_fft: int = 128
    hop_length: int = 64
    n_bins: int = 64
    n_frames: int = 64
    scale: str = "linear"
    fmin: float = 0.0  # mel scale only
    shuffle_buffer: int = 2048
    cache: bool = True
    # What a training example is (see tfgan/data/slicing.py): "start" aligns one-shot
    # files at their onset, "energy" takes random crops of a long file's loud parts,
    # "random" any crop, "auto" start for files up to ~2 clips long and energy beyond.
    slice: str = "auto"
    # A file contributes one example per clip it holds per pass (False: one per file,
    # the behaviour of runs written before slicing existed).
    weight_by_length: bool = True

    @property
    def clip_samples(self) -> int:
        return self.hop_length * (self.n_frames - 1) + self.n_fft

    def validate(self) -> None:
        if self.slice not in SLICES:
            raise ValueError(f"slice must be one of {SLICES}. Received: slice={self.slice!r}")
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}. Received: scale={self.scale!r}")
        if self.n_bins != self.n_frames or self.n_bins not in (64, 128):
            raise ValueError(
                "Spectrograms must be square, 64x64 or 128x128. "
                f"Received: n_bins={self.n_bins}, n_frames={self.n_frames}"
            )
        if self.scale == "linear" and self.n_fft // 2 != self.n_bins:
            raise ValueError(
                "A linear spectrogram has n_fft // 2 bins. "
                f"Received: n_fft={self.n_fft}, n_bins={self.n_bins}"
            )
        if self.hop_length <= 0 or self.hop_length > self.n_fft:
            raise ValueError(
                f"hop_length must be in (0, n_fft]. Received: hop_length={self.hop_length}"
            )
        if self.sample_rate < 1000:
            raise ValueError(f"sample_rate is too low. Received: sample_rate={self.sample_rate}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shapes of the generator and discriminator."""

    disc: str = "simple"
    latent_dim: int = 100
    base_width: int = 32  # `c` in DESIGN.md
    g_scale: float = 1.0  # G's `c` as a multiple of base_width (D's)
    height: int = 64
    width: int = 64
    spectral_norm: bool = False  # balance control: spectral normalisation on D
    d_norm: str = "batch"  # normalisation layers in D: the reference's BatchNorm, or none
    # Class-conditional G and projection D: True, False, or "auto" (on when the data has
    # two or more class sub-folders; resolved to True/False when training starts).
    # `classes` are the class names in label order, filled from the data's sub-folders.
    conditional: object = "auto"
    classes: tuple = ()
    # How a conditional G takes its class: "input" (an embedding joined to z) or "norm"
    # (that, and a scale and offset per class in every BatchNorm). No effect unconditional.
    g_cond: str = "input"
    # Noise in G's output: "none", or "pixel": Gaussian noise on every pixel before the tanh,
    # scaled per pixel by a map G learns (0.1 at the start), for the textures a stack of
    # transposed convolutions draws badly (a recording's noise floor).
    g_noise: str = "none"
    # G's last layer: "transpose" (a 4x4 stride-2 transposed convolution, as in every other
    # block) or "resize" (nearest-neighbour x2, then a 3x3 convolution: no checkerboard,
    # Odena et al. 2016).
    g_last: str = "transpose"

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(self.classes))  # a JSON list reads back

    @property
    def generator_width(self) -> int:
        """G's base width: base_width x g_scale, rounded (at least 1)."""
        return max(1, round(self.base_width * self.g_scale))

    @property
    def num_classes(self) -> int:
        """Classes G and D are conditioned on (0: unconditional)."""
        return len(self.classes) if self.conditional is True else 0

    def validate(self) -> None:
        if self.conditional not in (True, False, "auto"):
            raise ValueError("conditional must be True, False or 'auto'. Received: "
                             f"conditional={self.conditional!r}")
        if self.classes and self.conditional is not True:
            raise ValueError("classes are only for a conditional model. Received: "
                             f"conditional=False, classes={list(self.classes)}")
        if self.conditional is True and len(self.classes) == 1:
            raise ValueError("A conditional model needs at least two classes. Received: "
                             f"classes={list(self.classes)}")
        if self.g_cond not in G_CONDS:
            raise ValueError(f"g_cond must be one of {G_CONDS}. Received: g_cond={self.g_cond!r}")
        if self.g_cond == "norm" and self.conditional is False:
            raise ValueError("g_cond='norm' steers G by class: it needs a conditional model. "
                             "Received: conditional=False")
        if self.g_noise not in G_NOISES:
            raise ValueError(f"g_noise must be one of {G_NOISES}. Received: "
                             f"g_noise={self.g_noise!r}")
        if self.g_last not in G_LASTS:
            raise ValueError(f"g_last must be one of {G_LASTS}. Received: g_last={self.g_last!r}")
        if self.d_norm not in D_NORMS:
            raise ValueError(f"d_norm must be one of {D_NORMS}. Received: d_norm={self.d_norm!r}")
        if self.disc not in discriminator_names():
            raise ValueError(
                f"disc must be one of {discriminator_names()}. Received: disc={self.disc!r}"
            )
        if self.height != self.width or self.height not in (64, 128):
            raise ValueError(
                f"height and width must be equal, 64 or 128. Received: {self.height}x{self.width}"
            )
        if self.latent_dim < 1 or self.base_width < 1:
            raise ValueError(
                "latent_dim and base_width must be positive. "
                f"Received: latent_dim={self.latent_dim}, base_width={self.base_width}"
            )
        if not self.g_scale > 0:  # also refuses NaN
            raise ValueError(f"g_scale must be positive. Received: g_scale={self.g_scale}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, logging and distribution settings."""

    recipe: str = "reference"  # the named set of defaults this config started from
    steps: int = 4000
    batch_size: int = 32  # global batch, split over replicas
    loss: str = "nonsaturating"
    lr: float = 2e-4
    d_lr_scale: float = 1.0  # d_lr = lr * d_lr_scale; the earlier attempt's cut is 0.1
    # Both learning rates fall to this fraction of their start by the last step, on a
    # half cosine (the shape of R3GAN's schedule, which takes 2e-4 to 5e-5 = 0.25 over its
    # first 20 M images, then holds). 1 keeps them fixed.
    lr_decay: float = 1.0
    # Both learning rates rise linearly from 1/lr_warmup of their value over the first
    # lr_warmup steps (then follow the decay, if any). 0: no warm-up.
    lr_warmup: int = 0
    beta_1: float = 0.5
    beta_2: float = 0.999
    n_critic: int = 1
    gp_weight: float = 10.0  # WGAN-GP only
    seed: int = 0
    precision: str = "auto"
    strategy: str = "auto"
    log_every: int = 25
    sample_every: int = 500
    checkpoint_every: int = 500
    num_samples: int = 16  # size of the fixed latent batch drawn every sample_every steps
    griffin_lim_iters: int = 32
    # Balance controls, all off by default so the baseline stays the baseline.
    r1_gamma: float = 0.0
    r2_gamma: float = 0.0  # the same penalty on G's samples (R3GAN: R1 alone diverges)
    # Lazy R1/R2 (StyleGAN2): the penalties every N D updates with N x gamma. 0 is auto (the
    # modern recipe's): LAZY_REG_EVERY where it can run, else every step (`reg_every_for`).
    reg_every: int = 1
    # How D sees a real batch and its fakes: apart (two calls, each normalised by its own
    # BatchNorm statistics) or joint (one call, shared statistics).
    d_batch: str = "apart"
    instance_noise: float = 0.0
    label_smoothing: float = 0.0
    augment: str = ""  # comma-separated: shift, tmask, fmask
    ada_target: float = 0.0  # 0.6 in StyleGAN2-ADA; needs augment
    ada_kimg: float = 20.0
    ema_decay: float = 0.0
    # The EMA's decay ramps up as min(ema_decay, (1 + t) / (ema_rampup + t)) so that the
    # average forgets the random initialisation within a few hundred steps.
    ema_rampup: float = 10.0
    # Quality measured while training (FD, IS, classes covered, silent share) every N
    # steps on held-out files; 0 turns it off. The best step by FD is kept.
    eval_every: int = 250

    @property
    def d_lr(self) -> float:
        return self.lr * self.d_lr_scale

    @property
    def lr_scheduled(self) -> bool:
        """Whether the learning rates change during the run (a warm-up or a decay)."""
        return self.lr_warmup > 0 or self.lr_decay < 1

    def lr_factor(self, step: int) -> float:
        """The learning rates' multiple for the step after `step` steps done: a half cosine
        from 1 at step 0 to `lr_decay` at the last step, times a linear warm-up
        (step + 1) / lr_warmup over the first `lr_warmup` steps."""
        done = min(max(step / self.steps, 0.0), 1.0)
        decay = self.lr_decay + (1 - self.lr_decay) * 0.5 * (1 + math.cos(math.pi * done))
        if self.lr_warmup > 0:
            decay *= min(1.0, (step + 1) / self.lr_warmup)
        return decay

    def validate(self) -> None:
        if self.loss not in loss_names():
            raise ValueError(f"loss must be one of {loss_names()}. Received: loss={self.loss!r}")
        from tfgan import augment  # the registry of augmentation names

        augment.resolve(self.augment)
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}. Received: recipe={self.recipe!r}")
        if min(self.r1_gamma, self.r2_gamma) < 0:
            raise ValueError("r1_gamma and r2_gamma must not be negative. Received: "
                             f"r1_gamma={self.r1_gamma}, r2_gamma={self.r2_gamma}")
        if self.reg_every < 0:
            raise ValueError(f"reg_every must be >= 0 (0: auto). Received: "
                             f"reg_every={self.reg_every}")
        if self.d_batch not in D_BATCHES:
            raise ValueError(f"d_batch must be one of {D_BATCHES}. Received: "
                             f"d_batch={self.d_batch!r}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0. Received: eval_every={self.eval_every}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {PRECISIONS}. Received: precision={self.precision!r}"
            )
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"strategy must be one of {STRATEGIES}. Received: strategy={self.strategy!r}"
            )
        for name in ("steps", "batch_size", "n_critic", "log_every", "sample_every",
                     "checkpoint_every", "num_samples", "griffin_lim_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1. Received: {name}={getattr(self, name)}")
        if self.ada_target > 0 and not self.augment:
            raise ValueError("ada_target needs augmentations to tune. Received: augment=''")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1). Received: ema_decay={self.ema_decay}")
        if not (self.lr > 0 and self.d_lr_scale > 0 and math.isfinite(self.lr)):
            raise ValueError(
                f"lr and d_lr_scale must be positive. Received: lr={self.lr}, "
                f"d_lr_scale={self.d_lr_scale}"
            )
        if not 0 < self.lr_decay <= 1:  # also refuses NaN
            raise ValueError("lr_decay is the final fraction of the learning rates, in (0, 1]. "
                             f"Received: lr_decay={self.lr_decay}")
        if not 0 <= self.lr_warmup <= self.steps:
            raise ValueError("lr_warmup is a number of steps, from 0 to the run's steps. "
                             f"Received: lr_warmup={self.lr_warmup}, steps={self.steps}")


@dataclasses.dataclass(frozen=True)
class Config:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    preset: str = "cpu"
    version: int = CONFIG_VERSION

    def validate(self) -> "Config":
        self.data.validate()
        self.model.validate()
        self.train.validate()
        if (self.train.loss == "wgan-gp" and self.model.d_norm == "batch"
                and self.version >= 2):
            # BatchNorm makes each critic output depend on the whole batch, so the
            # per-example gradient the penalty constrains is not the critic's
            # (Gulrajani et al., 2017, section 4 advise layer norm or none). Runs written
            # before this check (version 1) still resume as they were.
            raise ValueError("loss 'wgan-gp' needs a critic without BatchNorm: pass --d-norm none. "
                             "Received: d_norm='batch'")
        if (self.model.height, self.model.width) != (self.data.n_bins, self.data.n_frames):
            raise ValueError(
                "Model shape must match the spectrogram shape. Received: model "
                f"{self.model.height}x{self.model.width}, data {self.data.n_bins}x{self.data.n_frames}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown Config fields: {sorted(unknown)}")
        version = d.get("version", CONFIG_VERSION)
        if version > CONFIG_VERSION:
            raise ValueError(
                f"This config was written by a newer tfgan (version {version} > {CONFIG_VERSION})."
            )

        if version < 2:
            # Version 1 predates these fields; its runs behaved as these values say.
            d = {**d, "data": {"slice": "random", "weight_by_length": False,
                               **d.get("data", {})},
                 "train": {"eval_every": 0, "ema_rampup": 0.0, **d.get("train", {})}}

        # Runs written before conditioning existed were unconditional; "auto" (today's
        # default) must not turn them conditional on resume.
        d = {**d, "model": {"conditional": False, **d.get("model", {})}}

        def build(klass, values):
            known = {f.name for f in dataclasses.fields(klass)}
            unknown = set(values) - known
            if unknown:
                raise ValueError(f"Unknown {klass.__name__} fields: {sorted(unknown)}")
            return klass(**values)

        return cls(
            data=build(DataConfig, d.get("data", {})),
            model=build(ModelConfig, d.get("model", {})),
            train=build(TrainConfig, d.get("train", {})),
            preset=d.get("preset", "cpu"),
            version=version,
        )

    @classmethod
    def from_json(cls, text: str) -> "Config":
        return cls.from_dict(json.loads(text))


def gpu_available() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def penalty_gamma(size: int, batch_size: int) -> float:
    """R1/R2 weight from the resolution: StyleGAN2-ADA's heuristic 0.0002 * size^2 / batch.

    (Karras et al., 2020, appendix D.) About 0.026 for 64x64 at batch 32.
    """
    return 0.0002 * size * size / batch_size


def with_recipe(config: Config, name: str) -> Config:
    """`config` with the named recipe's defaults (DESIGN.md, "Recipes").

    * ``reference``: the earlier attempt's training: non-saturating BCE, BatchNorm in D,
      Adam(beta 0.5, 0.999), no penalty, augmentation or EMA.
    * ``modern``: after R3GAN (Huang et al., 2024): relativistic pairing loss, zero-centred
      R1 and R2 penalties (gamma from the resolution), Adam(beta 0, 0.99), DiffAugment-style
      augmentation on every D input (p = 1), EMA of G with a warm-up ramp, lazy R1/R2 where
      it can run (`reg_every_for`; StyleGAN2, measured at equal cost in README). One departure,
      measured at the cpu preset's budget (README, "Quality"): D keeps its BatchNorm
      (R3GAN's normalisation-free D, ``--d-norm none``, reached FD 36 where BatchNorm
      reached 15 after 1000 steps on the built-in set).
    Both discriminators start neutral (zero-initialised logit layer) in both recipes.
    """
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}. Received: recipe={name!r}")
    m, t = config.model, config.train
    if name == "reference":
        model = dataclasses.replace(m, d_norm="batch")
        train = dataclasses.replace(t, recipe=name, loss="nonsaturating", beta_1=0.5,
                                    beta_2=0.999, r1_gamma=0.0, r2_gamma=0.0, augment="",
                                    ema_decay=0.0)
    else:
        gamma = round(penalty_gamma(m.height, t.batch_size), 4)
        model = dataclasses.replace(m, d_norm="batch")
        train = dataclasses.replace(t, recipe=name, loss="rpgan", beta_1=0.0, beta_2=0.99,
                                    r1_gamma=gamma, r2_gamma=gamma, augment="shift,tmask,fmask",
                                    ema_decay=0.999, reg_every=0)
    return dataclasses.replace(config, model=model, train=train)


def reg_every_for(config: Config, replicas: int) -> int:
    """The lazy R1/R2 interval a run uses: `train.reg_every`, or for 0 (auto) every
    LAZY_REG_EVERY-th D update, except where several replicas synchronise D's BatchNorm
    (which cannot run inside the every-N-steps condition): there every update, and an
    explicit interval above 1 is refused."""
    t = config.train
    synced_norm = replicas > 1 and config.model.d_norm == "batch"
    if not t.reg_every:
        return 1 if synced_norm else LAZY_REG_EVERY
    if synced_norm and t.reg_every > 1 and max(t.r1_gamma, t.r2_gamma) > 0:
        raise ValueError(
            f"--reg-every {t.reg_every} needs a single replica or --d-norm none: with "
            f"{replicas} replicas D's BatchNorm synchronises them, and TensorFlow cannot "
            "synchronise inside the step's every-N-steps condition. "
            "Use --reg-every 1, or 0 (auto).")
    return t.reg_every


# What `python -m training.run` uses unless told otherwise: measured best (README, "Quality").
DEFAULT_RECIPE = "modern"


def preset(name: str = "auto", recipe: str = DEFAULT_RECIPE) -> Config:
    """Returns the named preset (see module docstring) with `recipe`'s defaults."""
    return with_recipe(_shapes(name), recipe)


def _shapes(name: str) -> Config:
    if name == "auto":
        name = "specgan" if gpu_available() else "cpu"
    if name == "cpu":
        return Config(preset="cpu")
    if name == "specgan":
        return Config(
            data=DataConfig(sample_rate=16000, n_fft=256, hop_length=128, n_bins=128, n_frames=128),
            model=ModelConfig(base_width=64, height=128, width=128),
            train=TrainConfig(steps=20000, batch_size=64, log_every=50, sample_every=1000,
                              checkpoint_every=1000, eval_every=1000),
            preset="specgan",
        )
    raise ValueError(f"preset must be one of {PRESETS}. Received: preset={name!r}")
