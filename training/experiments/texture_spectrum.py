"""The finest texture of a run's generated clips beside real clips: 2-D power spectra.

For each run, 160 clips of its generator (EMA copy when kept, latest checkpoint, classes in
equal shares) and 160 random real clips of its data, each clip's mean removed; the mean
2-D power spectrum, as a share of its own mean over all frequencies, at the highest
frequency along time (alternate frames), along frequency (alternate bins) and at both at
once (the checkerboard); the standard deviation of neighbour differences along each axis;
and, with `--g-noise pixel`, the noise map's learned bias.

Usage: python training/experiments/texture_spectrum.py RUN_DIR [RUN_DIR ...]
"""

import sys

import numpy as np


def texture(x) -> dict:
    x = x[..., 0] - x[..., 0].mean((1, 2), keepdims=True)
    power = (np.abs(np.fft.fft2(x)) ** 2).mean(0)
    power = power / power.mean()
    n = power.shape[0] // 2  # [freq, time]: row n is the highest frequency bin pattern
    return {"time": power[:, n].mean(), "freq": power[n, :].mean(), "checker": power[n, n],
            "diff_t": np.std(np.diff(x, axis=2)), "diff_f": np.std(np.diff(x, axis=1))}


def main(paths) -> None:
    from tfgan.eval.classifier import random_crops
    from tfgan.eval.evaluate import generate
    from tfgan.rundir import RunDir, load_generator
    from tfgan.trainer import open_data

    print("| run | step | clips | highest time freq. | highest freq. bin | checkerboard "
          "| neighbour diff. sd (time / freq.) | noise map bias |\n|---|---|---|---|---|---|---|---|")
    for path in paths:
        g, config, stats, step = load_generator(RunDir(path))
        real, _ = random_crops(open_data(config), config.data, stats, 160, 1)
        fake = generate(g, 160, config.model.latent_dim, 0)
        bias = f"{float(g.to_noise.bias.numpy()[0]):.3f}" if getattr(g, "pixel_noise", False) else "-"
        for name, x in (("real", real), ("G", fake)):
            t = texture(x)
            print(f"| {path.rstrip('/').split('/')[-1]} | {step} | {name} | {t['time']:.3f} | "
                  f"{t['freq']:.3f} | {t['checker']:.4f} | {t['diff_t']:.3f} / {t['diff_f']:.3f} | "
                  f"{bias if name == 'G' else '-'} |")


if __name__ == "__main__":
    main(sys.argv[1:])
