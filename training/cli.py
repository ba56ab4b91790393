"""Flags shared by the training entry points, mapped onto the frozen Config."""

from __future__ import annotations

import argparse
import dataclasses

from tfgan import augment
from tfgan.config import (D_BATCHES, D_NORMS, G_CONDS, G_LASTS, G_NOISES, PRECISIONS, PRESETS,
                          RECIPES, SCALES, SLICES, STRATEGIES, Config, discriminator_names,
                          loss_names, with_recipe)

# flag dest -> (config section, field). Every flag defaults to None: "not given", so that a
# resumed run keeps its saved value unless the flag is passed again.
FLAG_FIELDS = {
    "disc": ("model", "disc"), "base_width": ("model", "base_width"),
    "g_scale": ("model", "g_scale"),
    "spectral_norm": ("model", "spectral_norm"), "d_norm": ("model", "d_norm"),
    "conditional": ("model", "conditional"), "g_cond": ("model", "g_cond"),
    "g_noise": ("model", "g_noise"), "g_last": ("model", "g_last"),
    "data": ("data", "data_dir"), "scale": ("data", "scale"), "slice": ("data", "slice"),
    "sample_rate": ("data", "sample_rate"), "hop_length": ("data", "hop_length"),
    "beta_1": ("train", "beta_1"), "beta_2": ("train", "beta_2"),
    "r2_gamma": ("train", "r2_gamma"), "reg_every": ("train", "reg_every"),
    "eval_every": ("train", "eval_every"), "d_batch": ("train", "d_batch"),

    "steps": ("train", "steps"), "batch_size": ("train", "batch_size"),
    "loss": ("train", "loss"), "lr": ("train", "lr"), "d_lr_scale": ("train", "d_lr_scale"),
    "lr_decay": ("train", "lr_decay"),
    "lr_warmup": ("train", "lr_warmup"),
    "n_critic": ("train", "n_critic"), "seed": ("train", "seed"),
    "precision": ("train", "precision"), "strategy": ("train", "strategy"),
    "log_every": ("train", "log_every"), "sample_every": ("train", "sample_every"),
    "checkpoint_every": ("train", "checkpoint_every"),
    "griffin_lim_iters": ("train", "griffin_lim_iters"),
    "r1_gamma": ("train", "r1_gamma"), "instance_noise": ("train", "instance_noise"),
    "label_smoothing": ("train", "label_smoothing"), "augment": ("train", "augment"),
    "ada_target": ("train", "ada_target"), "ada_kimg": ("train", "ada_kimg"),
    "ema_decay": ("train", "ema_decay"),
}


def add_model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and data")
    g.add_argument("--disc", choices=discriminator_names(), help="discriminator (default: simple)")
    g.add_argument("--data", metavar="DIR",
                   help="folder of audio files (wav/flac/ogg/mp3, searched recursively; "
                        "sub-folders are class labels). Default: the built-in dataset")
    g.add_argument("--preset", choices=PRESETS, default="auto",
                   help="auto: specgan (128x128, c=64) on a GPU, cpu (64x64, c=32) without")
    g.add_argument("--base-width", type=int, metavar="C", help="base channel width c")
    g.add_argument("--g-scale", type=float, metavar="S",
                   help="G's base width as a multiple of --base-width (D's): 1 makes them "
                        "equal (default 1; a resumed run keeps its own)")
    g.add_argument("--scale", choices=SCALES,
                   help="frequency scale (default: linear; mel uses n_fft = 4 x the bins)")
    g.add_argument("--sample-rate", type=int, metavar="HZ",
                   help="audio is resampled to this rate (cpu preset: 8000)")
    g.add_argument("--hop-length", type=int, metavar="N",
                   help="samples between spectrogram frames (cpu preset: 64); the clip is "
                        "hop x (frames - 1) + n_fft samples")
    g.add_argument("--slice", choices=SLICES,
                   help="what a training clip is: start (onset-aligned, padded), random, energy "
                        "(random among loud parts), auto (start for files up to ~2 clips, "
                        "energy for longer ones; default)")
    g.add_argument("--d-norm", choices=D_NORMS,
                   help="normalisation layers in D (both recipes: batch; none is R3GAN's "
                        "normalisation-free D, needed by wgan-gp)")
    g.add_argument("--conditional", nargs="?", const=True, type=_conditional, default=None,
                   metavar="{auto,on,off}",
                   help="class-conditional G and projection D, one class per sub-folder of "
                        "--data: on (also the bare flag; needs two or more classes), off, or "
                        "auto (default: on when every file is in one of two or more class "
                        "sub-folders)")
    g.add_argument("--g-cond", choices=G_CONDS,
                   help="how a conditional G takes its class: input (an embedding joined to "
                        "z; default) or norm (also a scale and offset per class in every "
                        "BatchNorm of G)")
    g.add_argument("--g-noise", choices=G_NOISES,
                   help="noise in G's output: none (default) or pixel (Gaussian noise on "
                        "every pixel before the tanh, scaled by a map G learns)")
    g.add_argument("--g-last", choices=G_LASTS,
                   help="G's last layer: transpose (a stride-2 transposed convolution; "
                        "default) or resize (nearest-neighbour x2, then a 3x3 convolution: "
                        "no checkerboard)")
    g.add_argument("--spectral-norm", action="store_true", default=None,
                   help="spectral normalisation on every layer of D (balance control)")


def _conditional(value: str):
    modes = {"auto": "auto", "on": True, "off": False}
    if value not in modes:
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from auto, on, off)")
    return modes[value]


def add_train_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("optimisation")
    g.add_argument("--recipe", choices=RECIPES,
                   help="a named set of training defaults (see README): reference (the "
                        "earlier attempt's) or modern (R3GAN-style); flags you pass win")
    g.add_argument("--steps", type=int, help="generator updates in total (cpu preset: 4000)")
    g.add_argument("--batch-size", type=int, help="global batch size (cpu preset: 32)")
    g.add_argument("--loss", choices=loss_names(),
                   help="GAN loss (modern recipe: rpgan; reference: nonsaturating BCE)")
    g.add_argument("--lr", type=float, help="generator learning rate (default 2e-4)")
    g.add_argument("--d-lr-scale", type=float,
                   help="discriminator lr = lr x this (default 1; the earlier attempt used 0.1)")
    g.add_argument("--lr-decay", type=float, metavar="F",
                   help="both learning rates fall on a half cosine to F x their start by the "
                        "last step (default 1: fixed; R3GAN's schedule goes to 0.25)")
    g.add_argument("--lr-warmup", type=int, metavar="N",
                   help="both learning rates rise linearly over the first N steps, from "
                        "1/N of their value (default 0: no warm-up)")
    g.add_argument("--beta-1", type=float, help="Adam beta_1 (reference 0.5, modern 0)")
    g.add_argument("--beta-2", type=float, help="Adam beta_2 (reference 0.999, modern 0.99)")
    g.add_argument("--n-critic", type=int, help="D updates per G update (default 1)")
    g.add_argument("--seed", type=int, help="seed for data order, crops, noise and init")
    g.add_argument("--precision", choices=PRECISIONS,
                   help="auto: mixed_float16 on GPU, float32 on CPU")
    g.add_argument("--strategy", choices=STRATEGIES,
                   help="auto: MirroredStrategy with >1 GPU; multiworker reads TF_CONFIG")
    g = p.add_argument_group("balance controls (off in the reference recipe; the modern one "
                             "sets R1, R2, augmentation and EMA)")
    g.add_argument("--r1-gamma", type=float,
                   help="zero-centred gradient penalty gamma/2 E|grad D|^2 on real data (R1)")
    g.add_argument("--r2-gamma", type=float, help="the same penalty on generated data (R2)")
    g.add_argument("--reg-every", type=int, metavar="N",
                   help="lazy R1/R2: computed every N D updates with N x gamma (StyleGAN2); "
                        "0 is auto, the modern recipe's: 4, or 1 where several replicas "
                        "synchronise D's BatchNorm; reference: 1")
    g.add_argument("--d-batch", choices=D_BATCHES,
                   help="apart: D judges real and fake batches in two calls, each with its own "
                        "BatchNorm statistics (default); joint: in one call, sharing them")
    g.add_argument("--instance-noise", type=float,
                   help="std of noise added to D's inputs, annealed to 0 over the run")
    g.add_argument("--label-smoothing", type=float,
                   help="one-sided: D's real label becomes 1 - this")
    g.add_argument("--augment", metavar="LIST",
                   help="differentiable augmentations on D's inputs, some of: "
                        + ",".join(augment.AUGMENTATIONS))
    g.add_argument("--ada-target", type=float,
                   help="adaptive augmentation target for E[sign(D(x))] (0.6 in the paper)")
    g.add_argument("--ada-kimg", type=float,
                   help="thousands of real images for ADA's p to go from 0 to 1 (default 20; "
                        "short runs need less to react in time)")
    g.add_argument("--ema-decay", type=float,
                   help="keep an EMA of G's weights for sampling and export (e.g. 0.999)")
    g = p.add_argument_group("logging")
    g.add_argument("--log-every", type=int, help="steps per metrics line (default 25)")
    g.add_argument("--sample-every", type=int, help="steps per sample grid + WAVs (default 500)")
    g.add_argument("--checkpoint-every", type=int, help="steps per checkpoint (default 500)")
    g.add_argument("--griffin-lim-iters", type=int, help="Griffin-Lim iterations for WAVs")
    g.add_argument("--eval-every", type=int,
                   help="steps per in-training quality evaluation (FD, IS, classes, silence) "
                        "on held-out files; 0 turns it off (cpu preset: 250)")



def apply_flags(config: Config, args: argparse.Namespace) -> Config:
    """`config` with the recipe, then every flag the user gave, written into it."""
    # A recipe the config already has is not applied again: on --resume that would reset
    # what the run was started with (its explicit flags, or an older recipe's defaults).
    if getattr(args, "recipe", None) and args.recipe != config.train.recipe:
        config = with_recipe(config, args.recipe)
    sections = {"data": {}, "model": {}, "train": {}}
    for dest, (section, field) in FLAG_FIELDS.items():
        value = getattr(args, dest, None)
        if value is not None:
            sections[section][field] = value
    conditional = sections["model"].get("conditional")
    if conditional == "auto" and config.model.conditional in (True, False):
        del sections["model"]["conditional"]  # a resumed run has already decided
    elif conditional is not None and conditional is not True and config.model.classes:
        # Asked to be unconditional: no classes, so that resuming a conditional run says
        # plainly that the models differ.
        sections["model"]["classes"] = ()
    if sections["data"].get("scale") == "mel" and config.data.scale != "mel":
        # A mel filterbank needs several linear bins per mel band: 4x the mel bins.
        sections["data"]["n_fft"] = 4 * config.data.n_bins
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, **sections["data"]),
        model=dataclasses.replace(config.model, **sections["model"]),
        train=dataclasses.replace(config.train, **sections["train"]),
    )
    return config
