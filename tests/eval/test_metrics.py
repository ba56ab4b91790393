"""Known-answer tests for tfgan.eval.metrics (IS, Frechet distance, NDB/K)."""

import math
import warnings

import numpy as np
import pytest
from scipy import linalg

from tfgan.eval.metrics import (
    frechet_distance,
    frechet_distance_from_stats,
    inception_score,
    ndb_k,
)


# ---------------------------------------------------------------- Inception Score


def test_is_uniform_classifier_is_one():
    probs = np.full((64, 10), 0.1)
    mean, std = inception_score(probs)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == 0.0


@pytest.mark.parametrize("k", [2, 5, 10])
def test_is_confident_even_spread_equals_num_classes(k):
    probs = np.tile(np.eye(k), (7, 1))  # one-hot, 7 samples per class
    mean, _ = inception_score(probs)
    assert mean == pytest.approx(k, rel=1e-12)


def test_is_one_hot_single_class_is_one():
    probs = np.zeros((50, 8))
    probs[:, 3] = 1.0
    mean, _ = inception_score(probs)
    assert mean == pytest.approx(1.0, abs=1e-12)


def test_is_soft_predictions_match_hand_computation():
    # Two samples, mirror-image predictions: marginal is [0.5, 0.5], and each
    # row has KL = 0.75 ln(0.75/0.5) + 0.25 ln(0.25/0.5).
    probs = np.array([[0.75, 0.25], [0.25, 0.75]])
    expected = math.exp(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    mean, _ = inception_score(probs)
    assert mean == pytest.approx(expected, rel=1e-12)
    assert 1.0 < mean < 2.0


def test_is_splits_scored_separately_with_std():
    # First split: confident and spread over 4 classes (IS 4); second split:
    # everything in class 0 (IS 1). Pooled together the score would be neither.
    spread = np.tile(np.eye(4), (5, 1))
    collapsed = np.zeros((20, 4))
    collapsed[:, 0] = 1.0
    probs = np.concatenate([spread, collapsed])
    mean, std = inception_score(probs, splits=2)
    assert mean == pytest.approx(2.5)
    assert std == pytest.approx(1.5)
    pooled, _ = inception_score(probs, splits=1)
    assert pooled != pytest.approx(2.5)


def test_is_float32_softmax_accepted():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(32, 6)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    mean, _ = inception_score(probs, splits=4)
    assert 1.0 <= mean <= 6.0


@pytest.mark.parametrize(
    "probs, splits",
    [
        (np.full(10, 0.1), 1),  # 1-D
        (np.full((2, 3, 4), 0.25), 1),  # 3-D
        (np.array([[1.2, -0.2], [0.5, 0.5]]), 1),  # negative entry
        (np.array([[2.0, 1.0], [0.3, 0.1]]), 1),  # logits, rows do not sum to 1
        (np.array([[np.nan, 1.0], [0.5, 0.5]]), 1),  # NaN
        (np.full((3, 2), 0.5), 4),  # more splits than samples
        (np.full((3, 2), 0.5), 0),
        (np.zeros((0, 2)), 1),
    ],
)
def test_is_invalid_input_raises(probs, splits):
    with pytest.raises(ValueError, match="Received"):
        inception_score(probs, splits=splits)


# ---------------------------------------------------------------- Frechet distance


def test_fd_identical_sets_is_zero():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(500, 16)) * 3.0 + 5.0
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_fd_from_stats_diagonal_closed_form():
    # With diagonal covariances Tr(S1 + S2 - 2 (S1 S2)^1/2) = sum (sqrt(a) - sqrt(b))^2.
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 2.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 1.0])
    # ||dmu||^2 = 9; trace term = (1-2)^2 + (2-1)^2 + (3-1)^2 = 6.
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(15.0, rel=1e-10)


def test_fd_shifted_isotropic_is_squared_mean_distance():
    d = 8
    mu1 = np.arange(d, dtype=float)
    mu2 = mu1 + np.linspace(-1.0, 2.0, d)
    sigma = 2.5 * np.eye(d)
    expected = float(np.sum((mu1 - mu2) ** 2))
    assert frechet_distance_from_stats(mu1, sigma, mu2, sigma) == pytest.approx(expected, rel=1e-10)


def test_fd_from_stats_non_commuting_matches_symmetric_form():
    # Independent route to the trace term: Tr((S1 S2)^1/2) equals
    # Tr((S1^1/2 S2 S1^1/2)^1/2), and the latter is a PSD matrix whose square
    # root follows from its eigenvalues.
    rng = np.random.default_rng(2)
    d = 5
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    w1, v1 = np.linalg.eigh(s1)
    s1_half = (v1 * np.sqrt(w1)) @ v1.T
    inner = np.linalg.eigvalsh(s1_half @ s2 @ s1_half)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(inner))
    got = frechet_distance_from_stats(mu1, s1, mu2, s2)
    assert got == pytest.approx(expected, rel=1e-8)
    assert got == pytest.approx(frechet_distance_from_stats(mu2, s2, mu1, s1), rel=1e-8)


def test_fd_sampled_gaussians_approach_closed_form():
    rng = np.random.default_rng(3)
    n = 50_000
    mu1, sd1 = np.array([0.0, 1.0, -1.0]), np.array([1.0, 2.0, 3.0])
    mu2, sd2 = np.array([1.0, 1.0, 1.0]), np.array([2.0, 2.0, 1.0])
    a = mu1 + sd1 * rng.standard_normal((n, 3))
    b = mu2 + sd2 * rng.standard_normal((n, 3))
    # ||dmu||^2 = 1 + 0 + 4 = 5; trace term = (1-2)^2 + 0 + (3-1)^2 = 5.
    assert frechet_distance(a, b) == pytest.approx(10.0, rel=0.03)


def test_fd_is_symmetric_and_positive():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(300, 6))
    b = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)) + 1.0
    ab, ba = frechet_distance(a, b), frechet_distance(b, a)
    assert ab > 0.1
    assert ab == pytest.approx(ba, rel=1e-8)


def test_fd_rank_deficient_covariance_is_finite():
    # Fewer samples than dimensions: both covariances are singular, which is
    # where sqrtm is fragile and the eps offset matters.
    rng = np.random.default_rng(5)
    a = rng.normal(size=(10, 64))
    b = rng.normal(size=(12, 64)) + 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy may warn about singular input
        fd = frechet_distance(a, b)
        same = frechet_distance(a, a)
    assert np.isfinite(fd) and fd > 0.0
    assert same == pytest.approx(0.0, abs=1e-3)


def test_fd_one_dimensional_features():
    # D == 1 (np.cov returns a scalar there). Unbiased sample stats: mean 0,
    # var 2 vs mean 3, var 8 -> 3^2 + (sqrt(2) - sqrt(8))^2.
    a = np.array([[-1.0], [1.0]])  # mean 0, unbiased var 2
    b = np.array([[1.0], [5.0]])  # mean 3, unbiased var 8
    expected = 9.0 + (math.sqrt(2.0) - math.sqrt(8.0)) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-10)


def test_fd_of_identical_statistics_is_zero():
    rng = np.random.default_rng(6)
    s = np.cov(rng.normal(size=(100, 20)), rowvar=False)
    mu = rng.normal(size=20)
    assert frechet_distance_from_stats(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)


def test_fd_matches_direct_sqrtm_formula():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(400, 4)), rng.normal(size=(400, 4)) * 1.5 + 0.3
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(linalg.sqrtm(s1 @ s2)))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-10)


class _FakeLinalg:
    """Stands in for scipy.linalg inside the metrics module, scripting sqrtm."""

    def __init__(self, results):
        self.results = list(results)
        self.args = []

    def sqrtm(self, x):
        self.args.append(np.array(x))
        result = self.results.pop(0)
        return linalg.sqrtm(x) if result is None else result


def test_fd_retries_with_eps_offset_when_sqrtm_fails(monkeypatch):
    import tfgan.eval.metrics as metrics_mod

    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    fake = _FakeLinalg([np.full((2, 2), np.nan), None])  # fail, then compute for real
    monkeypatch.setattr(metrics_mod, "linalg", fake)
    fd = frechet_distance_from_stats(np.zeros(2), s1, np.zeros(2), s2)
    assert len(fake.args) == 2
    eps = metrics_mod._FD_EPS
    np.testing.assert_allclose(fake.args[1], (s1 + eps * np.eye(2)) @ (s2 + eps * np.eye(2)))
    # (1-3)^2 + (2-1)^2 = 5, up to the tiny bias of the offset.
    assert fd == pytest.approx(5.0, abs=1e-4)


def test_fd_discards_round_off_imaginary_part(monkeypatch):
    import tfgan.eval.metrics as metrics_mod

    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    noisy = linalg.sqrtm(s1 @ s2) + 1e-9j
    fake = _FakeLinalg([noisy])
    monkeypatch.setattr(metrics_mod, "linalg", fake)
    fd = frechet_distance_from_stats(np.zeros(2), s1, np.zeros(2), s2)
    assert isinstance(fd, float)
    assert fd == pytest.approx(5.0, rel=1e-10)
    assert len(fake.args) == 1  # no retry needed


def test_fd_raises_when_imaginary_part_is_not_round_off(monkeypatch):
    import tfgan.eval.metrics as metrics_mod

    bad = np.eye(2) * (1.0 + 1.0j)
    monkeypatch.setattr(metrics_mod, "linalg", _FakeLinalg([bad, bad]))
    with pytest.raises(ValueError, match="Received"):
        frechet_distance_from_stats(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2))


@pytest.mark.parametrize(
    "a, b",
    [
        (np.zeros((10, 3)), np.zeros((10, 4))),  # feature dims differ
        (np.zeros(10), np.zeros(10)),  # 1-D
        (np.zeros((1, 3)), np.zeros((10, 3))),  # one sample: no covariance
        (np.full((5, 2), np.nan), np.zeros((5, 2))),
    ],
)
def test_fd_invalid_input_raises(a, b):
    with pytest.raises(ValueError, match="Received"):
        frechet_distance(a, b)


def test_fd_from_stats_shape_mismatch_raises():
    with pytest.raises(ValueError, match="Received"):
        frechet_distance_from_stats(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))


# ---------------------------------------------------------------- NDB/K

_CENTERS = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0], [5.0, 20.0]])


def _blobs(n, rng, centers=_CENTERS, scale=1.0):
    """n points from an equal-weight mixture of isotropic Gaussians, shape [n, 2]."""
    idx = rng.integers(len(centers), size=n)
    return centers[idx] + scale * rng.standard_normal((n, centers.shape[1]))


def test_ndb_set_against_itself_is_zero():
    rng = np.random.default_rng(10)
    real = _blobs(1000, rng).reshape(1000, 2, 1)  # extra axes get flattened
    out = ndb_k(real, real, k=10)
    assert out["ndb"] == 0
    assert out["ndb_over_k"] == 0.0
    assert out["k"] == 10
    assert out["real_proportions"] == out["generated_proportions"]
    assert out["different"] == [False] * 10
    assert sum(out["real_proportions"]) == pytest.approx(1.0)


def test_ndb_fresh_sample_same_distribution_is_near_zero():
    rng = np.random.default_rng(11)
    real, gen = _blobs(2000, rng), _blobs(2000, rng)
    out = ndb_k(real, gen, k=10)
    # Expected false positives are alpha * k = 0.5 bins.
    assert out["ndb"] <= 2


def test_ndb_shifted_set_differs_in_most_bins():
    rng = np.random.default_rng(12)
    real = _blobs(2000, rng)
    gen = _blobs(2000, rng) + np.array([30.0, -30.0])
    out = ndb_k(real, gen, k=10)
    assert out["ndb_over_k"] >= 0.8


def test_ndb_mode_collapse_differs_in_most_bins():
    rng = np.random.default_rng(13)
    real = _blobs(2000, rng)
    gen = _blobs(2000, rng, centers=_CENTERS[:1])  # only the first mode
    out = ndb_k(real, gen, k=10)
    assert out["ndb_over_k"] >= 0.8
    assert sum(out["generated_proportions"]) == pytest.approx(1.0)
    # Bins with no generated samples are exactly the collapsed-away ones.
    empty = [p == 0.0 for p in out["generated_proportions"]]
    assert sum(empty) >= 7


def _two_cluster_case(n_gen_low, n=100):
    """Real: n/2 points at 0 and n/2 at 10 (1-D). Generated: n_gen_low at 0, rest at 10."""
    real = np.array([0.0] * (n // 2) + [10.0] * (n // 2))[:, None]
    gen = np.array([0.0] * n_gen_low + [10.0] * (n - n_gen_low))[:, None]
    return real, gen


def test_ndb_z_test_known_answers():
    # Real 0.5 vs generated 0.6 in a bin, 100 samples each: pooled p = 0.55,
    # z = 0.1 / sqrt(0.55 * 0.45 * 0.02) = 1.421, two-sided p = 0.155.
    real, gen = _two_cluster_case(60)
    assert ndb_k(real, gen, k=2, alpha=0.05)["ndb"] == 0
    assert ndb_k(real, gen, k=2, alpha=0.20)["ndb"] == 2
    # 0.5 vs 0.65: z = 0.15 / sqrt(0.575 * 0.425 * 0.02) = 2.146, p = 0.032.
    real, gen = _two_cluster_case(65)
    out = ndb_k(real, gen, k=2, alpha=0.05)
    assert out["ndb"] == 2 and out["different"] == [True, True]
    assert ndb_k(real, gen, k=2, alpha=0.01)["ndb"] == 0
    # Proportions are reported per bin, aligned between real and generated.
    pairs = sorted(zip(out["real_proportions"], out["generated_proportions"]),
                   key=lambda pr: pr[1])
    assert pairs == [pytest.approx((0.5, 0.35)), pytest.approx((0.5, 0.65))]


def test_ndb_is_deterministic_for_a_seed():
    rng = np.random.default_rng(14)
    real, gen = _blobs(500, rng), _blobs(500, rng, scale=1.5)
    assert ndb_k(real, gen, k=8, seed=3) == ndb_k(real, gen, k=8, seed=3)


def test_ndb_k_larger_than_n_raises():
    real = np.zeros((5, 3))
    with pytest.raises(ValueError, match="Received: k=6"):
        ndb_k(real, real, k=6)


@pytest.mark.parametrize(
    "real, gen, kwargs",
    [
        (np.zeros((20, 3)), np.zeros((20, 4)), {"k": 2}),  # size mismatch
        (np.zeros((20, 3)), np.zeros((0, 3)), {"k": 2}),  # no generated samples
        (np.zeros((20, 3)), np.zeros((20, 3)), {"k": 0}),
        (np.zeros((20, 3)), np.zeros((20, 3)), {"k": 2, "alpha": 1.5}),
    ],
)
def test_ndb_invalid_input_raises(real, gen, kwargs):
    with pytest.raises(ValueError, match="Received"):
        ndb_k(real, gen, **kwargs)


def test_ndb_of_a_set_against_itself_is_zero():
    real = _blobs(1000, np.random.default_rng(14))
    out = ndb_k(real, real.copy(), k=10)
    assert out["ndb"] == 0 and out["ndb_over_k"] == 0.0


def test_ndb_of_a_disjoint_set_is_one():
    """Every generated sample sits far from all real ones (in the nearest bin to it): that
    bin is over-full and every other bin empty, so all k bins differ."""
    rng = np.random.default_rng(15)
    real = _blobs(1000, rng)
    out = ndb_k(real, np.full((1000, 2), 500.0), k=10)
    assert out["ndb"] == 10 and out["ndb_over_k"] == 1.0


def test_conditional_accuracy_by_hand():
    from tfgan.eval.metrics import conditional_accuracy

    probs = np.eye(3)[[0, 0, 1, 2, 2, 0]]  # the classifier's verdicts: 0 0 1 2 2 0
    out = conditional_accuracy(probs, [0, 1, 1, 2, 2, 2])
    assert out["overall"] == pytest.approx(4 / 6)
    assert out["per_class"] == [1.0, 0.5, pytest.approx(2 / 3)] and out["min"] == 0.5
    assert conditional_accuracy(probs, [0, 0, 0, 0, 0, 0])["per_class"][1:] == [None, None]
