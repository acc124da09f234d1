# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The per-landmark jitter fit: by hand, against a float64 maximum-likelihood
reference (the likelihood written image by image, minimised by a generic
optimiser), the residuals against a draw-by-draw loop, the folds."""
import math

import numpy as np
import pytest
from scipy.optimize import minimize

from mmchh.calibration.conformal.landmark_jitter import (
    cross_fitted_jitter, draw_residuals, fit_landmark_jitter)


def reference_nll(jitter, residuals, covariances):
    """Gaussian NLL (constants dropped), one image at a time."""
    total = 0.0
    for e, s in zip(residuals, covariances):
        c = [[s[0][0] + jitter[0][0], s[0][1] + jitter[0][1]],
             [s[1][0] + jitter[1][0], s[1][1] + jitter[1][1]]]
        det = c[0][0] * c[1][1] - c[0][1] * c[1][0]
        inv = [[c[1][1] / det, -c[0][1] / det], [-c[1][0] / det,
                                                 c[0][0] / det]]
        quad = sum(e[a] * inv[a][b] * e[b] for a in range(2)
                   for b in range(2))
        total += 0.5 * (math.log(det) + quad)
    return total


def reference_fit(residuals, covariances):
    """argmin over J = L L^T (L lower triangular) from several starts."""
    def f(p):
        lo = np.array([[p[0], 0.0], [p[1], p[2]]])
        return reference_nll(lo @ lo.T, residuals, covariances)

    best = min((minimize(f, x0, method='Powell',
                         options=dict(xtol=1e-10, ftol=1e-14,
                                      maxiter=20000))
                for x0 in ([1, 0, 1], [0.2, 0.1, 0.3], [3, -1, 0.5])),
               key=lambda r: r.fun)
    lo = np.array([[best.x[0], 0.0], [best.x[1], best.x[2]]])
    return lo @ lo.T, best.fun


def test_without_map_spread_the_fit_is_the_residuals_second_moment():
    e = np.array([[1.0, 2.0], [-3.0, 0.5], [0.0, -1.0]])
    got = fit_landmark_jitter(e[:, None], np.zeros((3, 1, 2, 2)),
                              min_images=1)[0]
    # by hand: mean of e e^T = [[1+9+0, 2-1.5+0], [., 4+0.25+1]] / 3
    np.testing.assert_allclose(got, np.array([[10, 0.5], [0.5, 5.25]]) / 3,
                               atol=1e-5)


def test_a_map_wider_than_the_errors_in_one_direction_gets_none_there():
    # second moment diag(2, 0.5), every map's own covariance I: the fit is
    # the second moment minus I, clipped at 0 -> diag(1, 0)
    e = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    s = np.broadcast_to(np.eye(2), (4, 2, 2))
    got = fit_landmark_jitter(e[:, None], s[:, None], min_images=1)[0]
    np.testing.assert_allclose(got, np.diag([1.0, 0.0]), atol=1e-5)


@pytest.mark.parametrize('seed', range(5))
def test_fit_is_the_maximum_likelihood(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 12))
    a = rng.normal(size=(n, 2, 2))
    s = a @ a.transpose(0, 2, 1) * rng.uniform(0.05, 1.0)
    e = rng.normal(size=(n, 2)) * rng.uniform(0.5, 3.0, 2)
    got = fit_landmark_jitter(e[:, None], s[:, None], min_images=1)[0]
    want, best = reference_fit(e, s)
    assert reference_nll(got, e, s) <= best + 1e-6
    np.testing.assert_allclose(got, want, atol=2e-3 * max(1.0, np.abs(
        want).max()))
    assert np.linalg.eigvalsh(got).min() >= -1e-12


def test_too_few_images_and_missing_rows():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(6, 3, 2)) * 2
    s = np.broadcast_to(0.1 * np.eye(2), (6, 3, 2, 2)).copy()
    e[:3, 1] = np.nan  # landmark 1: 3 usable images
    s[0, 2] = np.nan  # landmark 2: 5 usable images
    got = fit_landmark_jitter(e, s, min_images=5)
    assert (got[1] == 0).all()  # below the minimum: none
    np.testing.assert_allclose(
        got[2], fit_landmark_jitter(e[1:, 2:], s[1:, 2:], min_images=5)[0])
    assert np.abs(got[0]).max() > 0
    with pytest.raises(ValueError, match=r'\(n, K, 2\)'):
        fit_landmark_jitter(e[:, :, :1], s)


def test_draw_residuals_equal_a_loop():
    rng = np.random.default_rng(3)
    pos = np.rint(rng.normal(10, 2, (31, 4, 2)))
    pos[:, 2] = np.nan
    truth = rng.normal(10, 2, (4, 2))
    truth[3] = np.nan
    e, cov = draw_residuals(pos, truth)
    for k in range(2):
        for c in range(2):
            vals = sorted(pos[:, k, c])
            assert e[k, c] == pytest.approx(truth[k, c] - vals[15])
        mean = [sum(pos[:, k, c]) / 31 for c in range(2)]
        for a in range(2):
            for b in range(2):
                want = sum((pos[j, k, a] - mean[a]) * (pos[j, k, b] - mean[b])
                           for j in range(31)) / 31
                assert cov[k, a, b] == pytest.approx(want)
    assert np.isnan(e[2:]).all() and np.isnan(cov[2:]).all()


def test_cross_fitting_leaves_each_image_out_of_its_own_fit():
    rng = np.random.default_rng(1)
    e = rng.normal(size=(13, 2, 2)) * 1.5
    s = np.broadcast_to(0.2 * np.eye(2), (13, 2, 2, 2)).copy()
    fits = cross_fitted_jitter(e, s, num_folds=10, min_images=3)
    assert len(fits) == 13
    for i in (0, 4, 12):
        keep = np.arange(13) % 10 != i % 10
        np.testing.assert_allclose(
            fits[i], fit_landmark_jitter(e[keep], s[keep], min_images=3))
    # up to num_folds images: leave-one-out
    loo = cross_fitted_jitter(e[:6], s[:6], min_images=3)
    np.testing.assert_allclose(
        loo[2], fit_landmark_jitter(np.delete(e[:6], 2, 0),
                                    np.delete(s[:6], 2, 0), min_images=3))


def test_a_confidently_wrong_landmark_is_left_out_of_the_fit():
    rng = np.random.default_rng(4)
    n = 40
    s = np.broadcast_to(0.5 * np.eye(2), (n + 1, 2, 2)).copy()
    e = rng.multivariate_normal([0, 0], np.diag([0.5 + 2.0, 0.5]), n)
    far = np.array([[60.0, -40.0]])  # a sharp map 72 pixels off
    with_far = np.concatenate([e, far])
    got = fit_landmark_jitter(with_far[:, None], s[:, None], min_images=5)[0]
    # the fit of the others (the fit itself is checked against the
    # reference above)
    want = fit_landmark_jitter(e[:, None], s[:n, None], min_images=5)[0]
    np.testing.assert_allclose(got, want, atol=1e-9)
    d2 = far[0] @ np.linalg.inv(s[n] + got) @ far[0]
    assert d2 > -2 * math.log(0.001)
    # with a handful of images nothing is left out: the fit errs wide
    few = np.concatenate([e[:5], far])
    wide = fit_landmark_jitter(few[:, None], s[:6, None], min_images=5)[0]
    all6, _ = reference_fit(few, s[:6])
    np.testing.assert_allclose(wide, all6, atol=2e-3 * np.abs(all6).max())
    assert np.linalg.eigvalsh(wide).max() > np.linalg.eigvalsh(want).max()
