"""Specification of the distances behind FID, KID and improved precision/recall."""
import numpy as np
import pytest
import scipy.linalg

from zoo import metrics


def _with_moments(rng, n, mean, covariance):
    """n points whose sample mean and covariance are exactly `mean` and `covariance`."""
    z = rng.standard_normal((n, len(mean)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # sample covariance exactly I
    return z @ np.linalg.cholesky(covariance).T + mean


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).standard_normal((400, 16))
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fid_of_two_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(1)
    x = _with_moments(rng, 300, np.zeros(3), np.diag([1.0, 4.0, 9.0]))
    y = _with_moments(rng, 300, np.array([1.0, 2.0, 0.0]), np.diag([4.0, 1.0, 9.0]))
    # ||mu_x - mu_y||^2 + sum_i (sigma_x,i - sigma_y,i)^2 for diagonal covariances
    assert metrics.frechet_distance(x, y) == pytest.approx(5.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0.0, rel=1e-9)


def test_fid_of_two_correlated_gaussians_is_the_closed_form():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 6, 6))
    cov_x, cov_y = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mean_x, mean_y = rng.standard_normal(6), rng.standard_normal(6)
    x, y = _with_moments(rng, 500, mean_x, cov_x), _with_moments(rng, 500, mean_y, cov_y)
    closed_form = (np.sum((mean_x - mean_y) ** 2)
                   + np.trace(cov_x + cov_y - 2 * scipy.linalg.sqrtm(cov_x @ cov_y).real))
    assert metrics.frechet_distance(x, y) == pytest.approx(closed_form, rel=1e-7)


def test_fid_stays_finite_and_non_negative_for_singular_covariances():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal((50, 4)), np.zeros((50, 60))], axis=1)  # 60 dead features, n < d
    y = x + 0.01
    assert 0.0 <= metrics.frechet_distance(x, y) < 0.01 and np.isfinite(metrics.frechet_distance(x, y[:10]))


def test_kid_is_unbiased_for_two_samples_of_one_distribution():
    rng = np.random.default_rng(4)
    draws = [metrics.kernel_distance(rng.standard_normal((30, 4)), rng.standard_normal((30, 4)), subsets=1)[0]
             for _ in range(400)]
    # A biased (V-statistic) MMD^2 would sit some 40 standard errors above zero here.
    assert abs(np.mean(draws)) < 3 * np.std(draws) / np.sqrt(len(draws))


def test_kid_is_positive_for_two_distributions_and_zero_for_one_set():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 4))
    mean, std = metrics.kernel_distance(x, x + 0.5, subsets=20, subset_size=100)
    assert mean > 10 * std / np.sqrt(20) and mean > 0.01
    assert metrics.kernel_distance(x, x, subsets=5)[0] < 0.1 * mean


def test_kid_standard_error_shrinks_with_more_subsets():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((500, 4)), rng.standard_normal((500, 4)) + 0.2
    spread = {subsets: np.std([metrics.kernel_distance(x, y, subsets=subsets, subset_size=50, seed=seed)[0]
                               for seed in range(30)]) for subsets in (5, 80)}
    assert spread[80] < spread[5] / 2  # 1/sqrt(16) = 1/4 expected


def test_precision_and_recall_are_one_for_identical_sets():
    x = np.random.default_rng(7).standard_normal((300, 8))
    assert metrics.precision_recall(x, x.copy()) == (1.0, 1.0)


def test_a_shifted_set_loses_precision_and_recall():
    x = np.random.default_rng(8).standard_normal((400, 16))
    fresh = np.random.default_rng(9).standard_normal((400, 16))
    near, far = metrics.precision_recall(x, fresh), metrics.precision_recall(x, fresh + 1.0)
    assert near[0] > 0.75 and near[1] > 0.75  # k = 3 balls of 400 points do not cover all of a fresh sample
    assert far[0] < near[0] - 0.4 and far[1] < near[1] - 0.4


def test_a_collapsed_set_keeps_precision_but_loses_recall():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((400, 2))
    collapsed = x[:1] + 0.01 * rng.standard_normal((400, 2))  # every sample near one real image
    precision, recall = metrics.precision_recall(x, collapsed)
    assert precision == 1.0 and recall < 0.05
