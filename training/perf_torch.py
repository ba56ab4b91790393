"""The PyTorch reference for `training.perf`: DESIGN.md's architectures, trained eagerly.

The earlier attempt's networks (generator, SimpleDiscriminator, ResNet9Discriminator)
written the way a PyTorch user writes them: `nn.Module`s in NCHW, `torch.optim.Adam`, the
non-saturating BCE loss, and the same per-step schedule as `tfgan.gan.GAN.train_step`
(one D update on a real batch and `G(z0)` without G's gradient, then one G update on
`D(G(z1))`). Shapes, paddings and BatchNorm settings (momentum 0.9 in Keras terms,
eps 1e-5) match the Keras models, so the parameter counts are equal (`param_count`).

Imported only when torch is installed (`pip install torch==2.13.0`, the CPU build); the
perf command skips the PyTorch arms otherwise.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# Keras BatchNormalization(momentum=0.9) keeps 0.9 of the old statistic; torch's momentum
# is the weight of the new one.
_BN = dict(momentum=0.1, eps=1e-5)


def _blocks(size: int) -> int:
    return int(math.log2(size // 4)) - 1


class Generator(nn.Module):
    """z [b, latent] -> [b, 1, size, size] in [-1, 1] (DESIGN.md's ConvTranspose generator)."""

    def __init__(self, latent_dim: int = 100, size: int = 64, base_width: int = 64):
        super().__init__()
        k = _blocks(size)
        self.top = top = base_width * 2 ** k
        self.project = nn.Linear(latent_dim, 16 * top, bias=False)
        self.project_bn = nn.BatchNorm2d(top, **_BN)
        layers = []
        for i in range(k):
            c_in, c_out = top // 2 ** i, top // 2 ** (i + 1)
            # kernel 4, stride 2, padding 1 doubles the size: Keras's "same" here.
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(c_out, **_BN), nn.ReLU()]
        layers += [nn.ConvTranspose2d(top // 2 ** k, 1, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z):
        x = self.project(z).view(-1, self.top, 4, 4)
        return self.body(F.relu(self.project_bn(x)))


class SimpleDiscriminator(nn.Module):
    """Conv(4x4, s2) -> LeakyReLU(0.2) -> BatchNorm (not in block 1) down to 4x4 -> logit."""

    def __init__(self, size: int = 64, base_width: int = 64):
        super().__init__()
        n = _blocks(size) + 1
        layers, c_in = [], 1
        for i in range(n):
            c_out = base_width * 2 ** i
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2)]
            if i > 0:
                layers.append(nn.BatchNorm2d(c_out, **_BN))
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.logit = nn.Linear(16 * c_in, 1)

    def forward(self, x):
        return self.logit(torch.flatten(self.body(x), 1))


def _conv_block(c_in, c_out, pool=False):
    layers = [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out, **_BN),
              nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class ResNet9Discriminator(nn.Module):
    """ResNet-9 (DAWNBench) with a global max pool and one logit."""

    def __init__(self, size: int = 64, base_width: int = 64):
        super().__init__()
        c = base_width
        self.prep = _conv_block(1, c)
        self.layer1 = _conv_block(c, 2 * c, pool=True)
        self.res1 = nn.Sequential(_conv_block(2 * c, 2 * c), _conv_block(2 * c, 2 * c))
        self.layer2 = _conv_block(2 * c, 4 * c, pool=True)
        self.layer3 = _conv_block(4 * c, 8 * c, pool=True)
        self.res3 = nn.Sequential(_conv_block(8 * c, 8 * c), _conv_block(8 * c, 8 * c))
        self.logit = nn.Linear(8 * c, 1)

    def forward(self, x):
        x = self.layer1(self.prep(x))
        x = x + self.res1(x)
        x = self.layer3(self.layer2(x))
        x = x + self.res3(x)
        return self.logit(torch.amax(x, dim=(2, 3)))


DISCRIMINATORS = {"simple": SimpleDiscriminator, "resnet9": ResNet9Discriminator}


def param_count(module: nn.Module) -> int:
    """Trainable parameters (compare with the Keras model's `count_params` of trainables)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class TorchGAN:
    """G, D, their Adam optimisers and one eager train step, as `GAN.train_step` does it."""

    def __init__(self, disc: str, size: int, base_width: int, latent_dim: int = 100,
                 lr: float = 2e-4, d_lr: float = 2e-4, betas=(0.5, 0.999), seed: int = 0):
        torch.manual_seed(seed)
        self.generator = Generator(latent_dim, size, base_width)
        self.discriminator = DISCRIMINATORS[disc](size, base_width)
        self.g_opt = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas)
        self.d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=d_lr, betas=betas)
        self.generator.train()
        self.discriminator.train()

    def train_step(self, real: torch.Tensor, z: torch.Tensor) -> dict:
        """real [b, 1, H, W], z [b, 2, latent]; returns the two losses as floats."""
        g, d = self.generator, self.discriminator
        # D update: G's output without its graph (TF computes it outside the tape).
        with torch.no_grad():
            fake = g(z[:, 0])
        self.d_opt.zero_grad(set_to_none=True)
        real_logits, fake_logits = d(real), d(fake)
        d_loss = (F.softplus(-real_logits) + F.softplus(fake_logits)).mean()
        d_loss.backward()
        self.d_opt.step()
        # G update: non-saturating -log D(G(z)); D's gradients are computed and dropped.
        self.g_opt.zero_grad(set_to_none=True)
        g_loss = F.softplus(-d(g(z[:, 1]))).mean()
        g_loss.backward()
        self.g_opt.step()
        return {"d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach())}


def time_train_steps(disc: str, size: int, base_width: int, batch: int, steps: int,
                     warmup: int = 2, threads: int = 0, seed: int = 0) -> dict:
    """Seconds per eager train step on a fixed in-memory batch (median over `steps`)."""
    if threads:
        torch.set_num_threads(threads)
    gan = TorchGAN(disc, size, base_width, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    real = torch.rand(batch, 1, size, size, generator=gen) * 2 - 1
    z = torch.randn(batch, 2, 100, generator=gen)
    for _ in range(warmup):
        gan.train_step(real, z)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        gan.train_step(real, z)  # float() of the losses waits for the step to finish
        times.append(time.perf_counter() - start)
    return {"times": times, "median_s": float(np.median(times)),
            "threads": torch.get_num_threads(), "torch_version": torch.__version__,
            "g_params": param_count(gan.generator), "d_params": param_count(gan.discriminator)}
