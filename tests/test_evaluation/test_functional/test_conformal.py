"""Split-conformal thresholds (the quantile correction by hand and against
sorting), the disc baseline's coverage on synthetic radial errors, and the
coverage / area summary."""
import math

import numpy as np
import pytest

from mmchh.evaluation.functional import (conformal_coverage,
                                         conformal_min_maps, conformal_rank,
                                         conformal_thresholds, disc_regions,
                                         region_summary)


@pytest.mark.parametrize(
    'n, level, rank', [
        (9, 0.9, 9),
        (8, 0.9, 9),
        (19, 0.9, 18),
        (0, 0.9, 1),
        (9, 0.7, 7),  # 10 * 0.7 = 7.000000000000001 in floats
        (99, 0.95, 95),
        (100, 0.95, 96),
    ],
    ids=['n9', 'n8-infinite', 'n19', 'n0', 'float-product', 'n99', 'n100'])
def test_rank_by_hand(n, level, rank):
    assert conformal_rank(n, level) == rank


@pytest.mark.parametrize('level, n', [(0.9, 9), (0.95, 19), (0.5, 1),
                                      (0.99, 99), (0.8, 4)])
def test_min_maps_by_hand(level, n):
    assert conformal_min_maps(level) == n


@pytest.mark.parametrize('level', np.linspace(0.01, 0.995, 157))
def test_min_maps_is_the_first_finite_rank(level):
    """The slow way: walk n up from 0 until the rank fits."""
    n = 0
    while conformal_rank(n, level) > n:
        n += 1
    assert conformal_min_maps(level) == n


@pytest.mark.parametrize(
    'n, expected', [(9, 0.9), (8, 1.0), (19, 0.9), (20, 19 / 21)],
    ids=['n9', 'n8-whole-image', 'n19', 'n20'])
def test_coverage_promise_by_hand(n, expected):
    out = conformal_coverage(n, 0.9)
    assert out['guaranteed'] == 0.9
    assert out['expected'] == pytest.approx(expected)


def test_conditional_coverage_interval_is_the_beta_law():
    low, high = conformal_coverage(19, 0.9, confidence=0.9)['conditional']
    # coverage of one threshold ~ Beta(18, 2), whose CDF is
    # 19 x^18 - 18 x^19: the interval holds its 5 % and 95 % quantiles
    cdf = (lambda x: 19 * x**18 - 18 * x**19)
    assert cdf(low) == pytest.approx(0.05, abs=1e-9)
    assert cdf(high) == pytest.approx(0.95, abs=1e-9)


def test_thresholds_by_hand():
    rng = np.random.default_rng(0)
    nine = rng.permutation(np.arange(1.0, 10.0))
    scores = np.stack([nine, nine * 10], axis=1)  # (9, 2)
    out = conformal_thresholds(scores, levels=(0.9, 0.5))
    np.testing.assert_array_equal(out['per_landmark'],
                                  [[9.0, 90.0], [5.0, 50.0]])
    # pooled: 18 scores; k = ceil(19 * 0.9) = 18 -> the largest, 90
    np.testing.assert_array_equal(out['pooled'], [90.0, 10.0])
    np.testing.assert_array_equal(out['num_per_landmark'], [9, 9])
    assert out['num_pooled'] == 18
    # one map fewer: 8 scores cannot give 90 %
    eight = conformal_thresholds(scores[:8], levels=(0.9, ))
    assert np.isinf(eight['per_landmark']).all()


def test_uncounted_maps_are_left_out():
    scores = np.array([[1.0, 5.0], [2.0, np.nan], [3.0, 7.0], [4.0, 6.0]])
    counted = ~np.isnan(scores)
    out = conformal_thresholds(scores, levels=(0.6, ), counted=counted)
    # landmark 0: n = 4, k = 3 -> 3; landmark 1: n = 3, k = 3 -> 7
    np.testing.assert_array_equal(out['per_landmark'], [[3.0, 7.0]])
    np.testing.assert_array_equal(out['num_per_landmark'], [4, 3])


@pytest.mark.parametrize('seed', [0, 1, 2], ids=['seed0', 'seed1', 'seed2'])
def test_thresholds_match_sorting(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=(37, 4)).astype(float)  # with ties
    counted = rng.random((37, 4)) > 0.2
    out = conformal_thresholds(scores, (0.8, 0.95), counted)
    for i, level in enumerate((0.8, 0.95)):
        for j in range(4):
            column = sorted(scores[counted[:, j], j])
            k = math.ceil((len(column) + 1) * level)
            assert out['per_landmark'][i, j] == column[k - 1]
        pooled = sorted(scores[counted])
        assert out['pooled'][i] == pooled[math.ceil(
            (len(pooled) + 1) * level) - 1]


@pytest.mark.parametrize(
    'kwargs, message', [
        (dict(scores=np.array([[1.0], [np.inf]])), 'not finite'),
        (dict(scores=np.ones((3, 2)), levels=(1.0, )), r'\(0, 1\)'),
        (dict(scores=np.ones((3, 2)), levels=()), 'at least one level'),
        (dict(scores=np.ones((3, 2)), counted=np.ones((3, 1), bool)),
         'shape'),
    ],
    ids=['infinite-score', 'level-1', 'no-level', 'counted-shape'])
def test_bad_inputs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        conformal_thresholds(**kwargs)


def test_disc_regions():
    errors = np.array([[0.5, 3.0], [2.0, np.nan]])
    inside, area = disc_regions(errors, np.array([1.0, 3.0]))
    np.testing.assert_array_equal(inside, [[True, True], [False, False]])
    np.testing.assert_allclose(area, [[math.pi, 9 * math.pi]] * 2)


def test_observed_coverage_interval_by_hand():
    # n = 1 at 0.5: k = 1, the threshold's coverage is uniform, and the
    # number of 9 test points it covers uniform on {0, ..., 9}
    # (P(X <= x) = (x + 1) / 10): its 15 % and 85 % quantiles are 1 and 8
    low, high = conformal_coverage(1, 0.5, confidence=0.7,
                                   num_test=9)['conditional']
    assert (low, high) == (1 / 9, 8 / 9)
    assert conformal_coverage(8, 0.9, 0.8, 9)['conditional'] == (1.0, 1.0)


@pytest.mark.parametrize('level', [0.8, 0.9], ids=['80', '90'])
def test_disc_baseline_covers_as_promised(level):
    """Radial errors of a heteroscedastic 2D Gaussian, many seeds in one
    array: each column a run with its own calibration and test sets."""
    n, m, reps = 29, 200, 400
    rng = np.random.default_rng(1234)
    sigma = rng.uniform(0.5, 3.0, size=(n + m, reps))
    errors = np.hypot(*rng.normal(size=(2, n + m, reps))) * sigma
    radius = conformal_thresholds(errors[:n], (level, ))['per_landmark'][0]
    inside, area = disc_regions(errors[n:], radius)
    per_run = inside.mean(axis=0)
    expected = conformal_coverage(n, level)['expected']
    standard_error = per_run.std(ddof=1) / math.sqrt(reps)
    assert abs(per_run.mean() - expected) < 4 * standard_error
    # no run below what a correct threshold gives but with odds 1e-3 / reps
    floor = conformal_coverage(n, level, 1 - 2e-3 / reps, m)['conditional']
    assert per_run.min() >= floor[0]
    np.testing.assert_allclose(area[0], math.pi * radius**2)


def test_region_summary():
    inside = np.array([[True, False], [True, True], [False, True]])
    area = np.array([[4.0, 9.0], [2.0, np.nan], [6.0, 1.0]])
    counted = np.array([[True, True], [True, True], [True, False]])
    out = region_summary(inside, area, counted)
    assert out['coverage'] == pytest.approx(3 / 5)
    np.testing.assert_allclose(out['coverage_per_landmark'], [2 / 3, 1 / 2])
    # counted areas with a region: 4, 2, 6 and 9 (the NaN has none)
    assert out['median_area'] == 5.0 and out['mean_area'] == 5.25
    np.testing.assert_allclose(out['median_area_per_landmark'], [4.0, 9.0])
    assert out['num'] == 5
