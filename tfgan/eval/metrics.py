"""Sample-quality metrics for generated spectrograms.

Pure NumPy/SciPy/scikit-learn functions with no TensorFlow dependency, so they
can be unit-tested quickly and run on features exported from any model:

* :func:`inception_score` -- IS from classifier probabilities.
* :func:`frechet_distance` / :func:`frechet_distance_from_stats` -- Frechet
  distance between Gaussians fitted to feature embeddings (the quantity behind
  FID / FAD).
* :func:`ndb_k` -- Number of statistically Different Bins (NDB/K) from
  Richardson & Weiss, "On GANs and GMMs" (NeurIPS 2018).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy import special
from scipy import stats

__all__ = [
    "inception_score",
    "frechet_distance",
    "frechet_distance_from_stats",
    "ndb_k",
]

# Tolerance on row sums of a probability matrix. Softmax outputs stored as
# float32 routinely sum to 1 +- 1e-6; 1e-3 still rejects logits or unnormalised
# scores, which is the mistake this check exists to catch.
_ROW_SUM_ATOL = 1e-3

# Diagonal offset added to both covariances when the matrix square root of their
# product is numerically unusable (common FID practice for rank-deficient
# covariances, e.g. fewer samples than feature dimensions).
_FD_EPS = 1e-6


# --------------------------------------------------------------------------
# Inception Score
# --------------------------------------------------------------------------


def conditional_accuracy(probs: np.ndarray, requested) -> dict:
    """How often a classifier's verdict on a conditional G's samples is the class G was
    asked for.

    Args:
      probs: `[n, K]` classifier probabilities of the samples.
      requested: `[n]` the class index each sample was generated for.

    Returns:
      ``overall`` (share of samples whose argmax is the requested class), ``per_class``
      (that share per requested class, None for a class never requested) and ``min`` (the
      worst class's).
    """
    predicted = np.argmax(probs, axis=1)
    requested = np.asarray(requested)
    per_class = [float(np.mean(predicted[requested == k] == k)) if np.any(requested == k)
                 else None for k in range(probs.shape[1])]
    return {"overall": float(np.mean(predicted == requested)), "per_class": per_class,
            "min": min(v for v in per_class if v is not None)}


def inception_score(probs: np.ndarray, splits: int = 1) -> tuple[float, float]:
    """Inception Score of a set of class-probability vectors.

    ``IS = exp(E_x[KL(p(y|x) || p(y))])`` where ``p(y)`` is the marginal class
    distribution of the (split of the) sample set. The score lies in
    ``[1, K]``: 1 when every sample gets the same prediction (or predictions are
    uninformative), ``K`` when predictions are confident and spread evenly over
    all ``K`` classes.

    Args:
        probs: Array of shape ``[N, K]`` with class probabilities; every entry in
            ``[0, 1]`` and each row summing to 1 (within 1e-3).
        splits: Number of disjoint, contiguous splits to score separately
            (``1 <= splits <= N``). Splits are as equal as possible; with
            ``N % splits != 0`` the first splits get one extra sample.

    Returns:
        ``(mean, std)`` of the per-split scores; ``std`` is the population
        standard deviation and is ``0.0`` when ``splits == 1``.

    Raises:
        ValueError: If ``probs`` is not a non-empty finite 2-D array of
            non-negative rows summing to 1, or ``splits`` is not an integer in
            ``[1, N]``.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(
            f"`probs` must be a 2-D array [N, K]. Received: shape {p.shape}")
    n, k = p.shape
    if n == 0 or k == 0:
        raise ValueError(
            f"`probs` must have at least one row and one column. Received: shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("`probs` must be finite. Received: an array containing NaN or inf")
    if np.any(p < 0):
        raise ValueError(
            f"`probs` must be non-negative. Received: minimum value {p.min()!r}")
    row_sums = p.sum(axis=1)
    if not np.allclose(row_sums, 1.0, rtol=0.0, atol=_ROW_SUM_ATOL):
        worst = row_sums[np.argmax(np.abs(row_sums - 1.0))]
        raise ValueError(
            "Each row of `probs` must sum to 1 (pass softmax outputs, not logits). "
            f"Received: a row summing to {worst!r}")
    # bool is an int subclass but splits=True is surely a bug.
    if isinstance(splits, bool) or not isinstance(splits, (int, np.integer)):
        raise ValueError(f"`splits` must be an integer. Received: {splits!r}")
    if not 1 <= splits <= n:
        raise ValueError(
            f"`splits` must be in [1, N={n}]. Received: splits={splits}")

    scores = []
    for part in np.array_split(p, splits, axis=0):
        marginal = part.mean(axis=0, keepdims=True)
        # rel_entr(x, y) = x*log(x/y) with the 0*log(0/y) = 0 convention, so
        # one-hot rows do not produce NaN. marginal >= row/len(part) > 0 wherever
        # the row is positive, so no division by zero can occur.
        kl = special.rel_entr(part, marginal).sum(axis=1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


# --------------------------------------------------------------------------
# Frechet distance
# --------------------------------------------------------------------------


def _gaussian_stats(feats: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` of ``[N, D]`` features (float64)."""
    x = np.asarray(feats, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D array [N, D]. Received: shape {x.shape}")
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(
            f"`{name}` needs at least 2 samples and 1 feature to estimate a covariance. "
            f"Received: shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` must be finite. Received: an array containing NaN or inf")
    mu = x.mean(axis=0)
    # atleast_2d: np.cov collapses to a 0-d array when D == 1.
    sigma = np.atleast_2d(np.cov(x, rowvar=False))
    return mu, sigma


def _sqrtm_is_usable(covmean: np.ndarray) -> bool:
    """Whether sqrtm gave a finite result whose imaginary part is round-off."""
    if not np.all(np.isfinite(covmean)):
        return False
    if np.iscomplexobj(covmean):
        # S1 @ S2 is similar to the PSD matrix S1^1/2 S2 S1^1/2, so its square
        # root has a real, non-negative spectrum; any imaginary part is numerical
        # noise. Judge "small" relative to the matrix scale so the check works
        # for features of any magnitude.
        scale = max(1.0, float(np.max(np.abs(covmean.real))))
        if np.max(np.abs(np.diagonal(covmean).imag)) > 1e-3 * scale:
            return False
    return True


def frechet_distance_from_stats(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Frechet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    ``d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2})``.
    This is the squared 2-Wasserstein distance between the two Gaussians (the
    value reported as FID/FAD, which is not square-rooted).

    Args:
        mu1: Mean, shape ``[D]``.
        sigma1: Covariance, shape ``[D, D]``, symmetric positive semi-definite.
        mu2: Mean, shape ``[D]``.
        sigma2: Covariance, shape ``[D, D]``, symmetric positive semi-definite.

    Returns:
        The distance, a float in ``[0, inf)``. Tiny negative values caused by
        floating-point round-off are clamped to 0.

    Raises:
        ValueError: On mismatched shapes, non-finite inputs, or if the matrix
            square root cannot be computed even after regularisation.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(
            "`mu1` and `mu2` must be 1-D arrays of the same length. "
            f"Received: shapes {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"`sigma1` and `sigma2` must have shape [{d}, {d}] to match the means. "
            f"Received: shapes {sigma1.shape} and {sigma2.shape}")
    for name, arr in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"`{name}` must be finite. Received: an array containing NaN or inf")

    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not _sqrtm_is_usable(covmean):
        # Near-singular covariances (e.g. N < D) can make sqrtm blow up or
        # return a large spurious imaginary part; a small ridge on both
        # covariances makes the product well conditioned at a negligible bias.
        offset = np.eye(d) * _FD_EPS
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if not _sqrtm_is_usable(covmean):
            raise ValueError(
                "Could not compute a real matrix square root of sigma1 @ sigma2 even "
                f"with a {_FD_EPS} diagonal offset. Received: covariances that are not "
                "positive semi-definite or are badly scaled")
    covmean = np.real(covmean)

    dist = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
    # The true value is >= 0; round-off can push identical inputs slightly below.
    return max(dist, 0.0)


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    Fits a mean and (unbiased, ``N - 1``) covariance to each set and calls
    :func:`frechet_distance_from_stats`. The result is biased upwards for small
    ``N``; compare values computed with the same sample sizes.

    Args:
        feats_a: Features of shape ``[N_a, D]`` with ``N_a >= 2``.
        feats_b: Features of shape ``[N_b, D]`` with ``N_b >= 2``.

    Returns:
        The distance, a float in ``[0, inf)``; symmetric in its arguments.

    Raises:
        ValueError: If the inputs are not finite 2-D arrays with at least two
            rows and the same number of columns.
    """
    mu_a, sigma_a = _gaussian_stats(feats_a, "feats_a")
    mu_b, sigma_b = _gaussian_stats(feats_b, "feats_b")
    if mu_a.shape != mu_b.shape:
        raise ValueError(
            "`feats_a` and `feats_b` must have the same feature dimension D. "
            f"Received: D={mu_a.shape[0]} and D={mu_b.shape[0]}")
    return frechet_distance_from_stats(mu_a, sigma_a, mu_b, sigma_b)


# --------------------------------------------------------------------------
# NDB/K
# --------------------------------------------------------------------------


def _flatten_samples(x: np.ndarray, name: str) -> np.ndarray:
    """Reshapes ``[N, ...]`` samples to ``[N, D]`` float64, validating them."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[0] == 0:
        raise ValueError(
            f"`{name}` must be an array of samples [N, ...] with N >= 1. "
            f"Received: shape {arr.shape}")
    arr = arr.reshape(arr.shape[0], -1)
    if arr.shape[1] == 0:
        raise ValueError(f"`{name}` samples must not be empty. Received: shape {np.shape(x)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite. Received: an array containing NaN or inf")
    return arr


def ndb_k(
    real: np.ndarray,
    generated: np.ndarray,
    k: int = 20,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict:
    """Number of statistically Different Bins (Richardson & Weiss, 2018).

    The real samples are partitioned into ``k`` Voronoi cells by k-means; the
    generated samples are assigned to the nearest centroid. For each bin a
    two-sided two-proportion z-test (pooled variance) compares the fraction of
    real samples in the bin with the fraction of generated samples in it. A
    generator that matches the data distribution has ``ndb`` close to
    ``alpha * k`` (false positives of the test); mode collapse or
    distribution shift drive it towards ``k``.

    Samples are compared with the Euclidean distance of their flattened values,
    so put real and generated data on the same scale (e.g. the same
    normalised log-magnitude spectrograms) before calling.

    Args:
        real: Real samples, shape ``[N_r, ...]`` (flattened to ``[N_r, D]``).
        generated: Generated samples, shape ``[N_g, ...]`` with the same
            per-sample size ``D`` as ``real``.
        k: Number of bins, ``1 <= k <= N_r``.
        alpha: Significance level of each per-bin test, in ``(0, 1)``.
        seed: Random state of k-means (fixed ``n_init=10``), making the
            binning deterministic for given data.

    Returns:
        A dict with keys:

        * ``"ndb"`` (int): number of bins whose proportions differ significantly.
        * ``"k"`` (int): number of bins.
        * ``"ndb_over_k"`` (float): ``ndb / k`` in ``[0, 1]``.
        * ``"real_proportions"`` (list[float], length ``k``): fraction of real
          samples per bin; sums to 1.
        * ``"generated_proportions"`` (list[float], length ``k``): fraction of
          generated samples per bin; sums to 1.
        * ``"different"`` (list[bool], length ``k``): per-bin test outcome.

    Raises:
        ValueError: On empty or non-finite inputs, mismatched sample sizes,
            ``k`` outside ``[1, N_r]`` or ``alpha`` outside ``(0, 1)``.
    """
    # Imported lazily: scikit-learn is only needed for this metric, and keeping
    # it out of module import keeps `import tfgan.eval.metrics` light.
    from sklearn.cluster import KMeans

    real_2d = _flatten_samples(real, "real")
    gen_2d = _flatten_samples(generated, "generated")
    if real_2d.shape[1] != gen_2d.shape[1]:
        raise ValueError(
            "`real` and `generated` samples must have the same size. "
            f"Received: D={real_2d.shape[1]} and D={gen_2d.shape[1]}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"`k` must be an integer. Received: {k!r}")
    n_real, n_gen = real_2d.shape[0], gen_2d.shape[0]
    if not 1 <= k <= n_real:
        raise ValueError(
            f"`k` must be in [1, number of real samples={n_real}]. Received: k={k}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"`alpha` must be in (0, 1). Received: alpha={alpha!r}")

    kmeans = KMeans(n_clusters=int(k), n_init=10, random_state=seed)
    real_bins = kmeans.fit_predict(real_2d)
    gen_bins = kmeans.predict(gen_2d)

    real_counts = np.bincount(real_bins, minlength=k).astype(np.float64)
    gen_counts = np.bincount(gen_bins, minlength=k).astype(np.float64)
    p_real = real_counts / n_real
    p_gen = gen_counts / n_gen

    # Two-proportion z-test with the pooled proportion as the null estimate.
    pooled = (real_counts + gen_counts) / (n_real + n_gen)
    se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_real + 1.0 / n_gen))
    # se == 0 only when the bin is empty (or holds everything) in *both* sets,
    # i.e. the proportions are identical -- never a significant difference.
    # Substitute 1 for the zero divisor so no 0/0 warning is raised.
    z = np.where(se > 0, (p_real - p_gen) / np.where(se > 0, se, 1.0), 0.0)
    p_values = 2.0 * stats.norm.sf(np.abs(z))
    different = p_values < alpha

    ndb = int(np.count_nonzero(different))
    return {
        "ndb": ndb,
        "k": int(k),
        "ndb_over_k": ndb / float(k),
        "real_proportions": [float(v) for v in p_real],
        "generated_proportions": [float(v) for v in p_gen],
        "different": [bool(v) for v in different],
    }
