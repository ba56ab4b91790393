"""PNG images of spectrograms (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def grid_image(specs: np.ndarray, columns: int = 0) -> np.ndarray:
    """Tiles `[n, bins, frames(, 1)]` spectrograms in [-1, 1] into one uint8 RGB image.

    Low frequencies at the bottom; magma colour map; a 2-pixel gap between tiles.
    """
    import matplotlib

    specs = np.asarray(specs, np.float32)
    if specs.ndim == 4:
        specs = specs[..., 0]
    n, h, w = specs.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    gap = 2
    canvas = np.full(((h + gap) * rows - gap, (w + gap) * columns - gap), np.nan, np.float32)
    for i, spec in enumerate(specs):
        r, c = divmod(i, columns)
        canvas[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = spec[::-1]
    rgba = matplotlib.colormaps["magma"]((np.nan_to_num(canvas, nan=-1.0) + 1.0) / 2.0)
    rgba[np.isnan(canvas)] = (1.0, 1.0, 1.0, 1.0)
    return (rgba[..., :3] * 255).astype(np.uint8)


def save_grid(path, specs: np.ndarray, title: str = "", scale: int = 3,
              columns: int = 0) -> None:
    """Writes `grid_image(specs, columns)` to `path`, enlarged `scale` times, with an
    optional title."""
    plt = _pyplot()
    image = grid_image(specs, columns)
    h, w = image.shape[:2]
    fig = plt.figure(figsize=(w * scale / 100, h * scale / 100 + (0.3 if title else 0)), dpi=100)
    ax = fig.add_axes([0, 0, 1, h * scale / (h * scale + (30 if title else 0))])
    ax.imshow(image, interpolation="nearest", aspect="auto")
    ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9, y=0.995)
    fig.savefig(path)
    plt.close(fig)
