"""How much of the Frechet distance is texture? FD of altered real clips against real B.

Builds a dataset's held-out reference exactly as a run's in-training evaluation does
(`tfgan.eval.live.build_held_out`: classifier on half the files, real sets A and B from the
other half) and scores real set A after changes that leave its content alone and change
its fine texture: a Gaussian blur, a smoothed noise floor, a checkerboard, added noise, a
level shift. Each is printed as a multiple of the real-vs-real FD(A, B), the unit of the
FD target. No generator is involved.

Usage: python training/experiments/texture_probe.py [DATA]
  DATA: builtin (default), instruments (the built one-shot set) or a folder.
"""

import dataclasses
import sys

import numpy as np
from scipy.ndimage import gaussian_filter, uniform_filter

from tfgan import config as C
from tfgan.data import pipeline
from tfgan.eval.evaluate import _frechet
from tfgan.eval.live import build_held_out
from tfgan.trainer import open_data
from training.quality import dataset_dir


def blur(x, sigma):
    return np.stack([gaussian_filter(c[..., 0], sigma)[..., None] for c in x])


def smooth_floor(x):
    """Each clip's pixels below its median (+0.1) replaced by their 3x3 mean."""
    out = []
    for c in x[..., 0]:
        out.append(np.where(c < np.median(c) + 0.1, uniform_filter(c, 3), c)[..., None])
    return np.stack(out)


def main(data="builtin") -> None:
    cfg = C.preset("cpu")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data,
                                                            data_dir=dataset_dir(data)))
    scan = open_data(cfg)
    stats = pipeline.compute_stats(scan, cfg.data)
    held = build_held_out(scan, cfg.data, stats, seed=0)
    a, real = held.real_a, held.real["fd"]

    def ratio(x):
        _, emb = held.classifier.predict(np.clip(x, -1, 1).astype(np.float32))
        return _frechet(emb, held.emb_b) / real

    rng = np.random.default_rng(0)
    checker = (np.indices(a.shape[1:3]).sum(0) % 2 * 2 - 1)[None, ..., None]
    rows = [("real A as it is", a), ("Gaussian blur, sigma 0.5 px", blur(a, 0.5)),
            ("Gaussian blur, sigma 0.8 px", blur(a, 0.8)),
            ("noise floor smoothed (3x3 mean)", smooth_floor(a)),
            ("checkerboard, amplitude 0.05", a + 0.05 * checker),
            ("Gaussian noise, sd 0.05", a + rng.normal(0, 0.05, a.shape)),
            ("level shift +0.05", a + 0.05)]
    print(f"data: {data}; {held.n} clips per real set; FD(A, B) {real:.3f}")
    print("| real set A, changed by | FD / real-vs-real |\n|---|---|")
    for name, x in rows:
        print(f"| {name} | {ratio(x):.2f} |")


if __name__ == "__main__":
    main(*sys.argv[1:2])
