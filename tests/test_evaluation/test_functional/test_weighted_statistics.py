# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Row-weighted statistics of the vectorised bootstrap against slow float64
references that MATERIALISE each resample (rows repeated by their integer
weight) and call sklearn, scipy or an explicit ECE loop, on random inputs
with ties, plus hand-computed cases."""
import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score

from mmchh.evaluation.functional import (expected_calibration_error,
                                         pearson_spearman, roc_auc,
                                         weighted_ece, weighted_mean,
                                         weighted_pearson,
                                         weighted_reliability_bins,
                                         weighted_roc_auc, weighted_spearman)


def random_case(seed, rows=40, resamples=25):
    """Tied values (few distinct ones) and integer weights with zeros."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 8, rows) / 4.0
    y = rng.integers(0, 5, rows) + 0.5 * x
    conf = rng.integers(0, 20, rows) / 25.0
    label = rng.random(rows) < 0.4
    weights = rng.poisson(1.0, size=(resamples, rows)).astype(np.float64)
    weights[0] = 1.0
    return x, y, conf, label, weights


def materialise(w_row, *arrays):
    counts = w_row.astype(np.int64)
    return tuple(np.repeat(a, counts) for a in arrays)


def slow_auc(score, label):
    if label.all() or not label.any():
        return math.nan
    return roc_auc_score(label, score)


def slow_corr(fn, x, y):
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    return float(fn(x, y)[0])


def slow_ece(conf, hit, num_bins, binning):
    """Explicit loop over landmarks and bins, edges = np.linspace."""
    top = float(max(conf)) if binning == 'max' else 1.0
    edges = np.linspace(0.0, top, num_bins + 1)
    count = [0] * num_bins
    conf_sum = [0.0] * num_bins
    hit_sum = [0.0] * num_bins
    for c, h in zip(conf.tolist(), hit.tolist()):
        b = 0
        for i in range(num_bins):
            if edges[i] < c <= edges[i + 1]:
                b = i
                break
        if c > edges[-1]:
            b = num_bins - 1
        count[b] += 1
        conf_sum[b] += c
        hit_sum[b] += float(h)
    ece = 0.0
    for b in range(num_bins):
        if count[b]:
            ece += count[b] / len(conf) * abs(hit_sum[b] / count[b] -
                                              conf_sum[b] / count[b])
    return ece, count


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_auc_matches_sklearn_on_materialised_resamples(seed):
    x, _, _, label, w = random_case(seed)
    got = weighted_roc_auc(w, x, label)
    assert got.shape == (w.shape[0], )
    for r in range(w.shape[0]):
        want = slow_auc(*materialise(w[r], x, label))
        if math.isnan(want):
            assert math.isnan(got[r])
        else:
            assert got[r] == pytest.approx(want, rel=1e-12, abs=1e-12)
    # one class only: NaN, not an error
    only_good = np.zeros_like(w)
    only_good[:, ~label] = 1.0
    assert np.isnan(weighted_roc_auc(only_good, x, label)).all()


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_correlations_match_scipy_on_materialised_resamples(seed):
    x, y, _, _, w = random_case(seed)
    w[1] = 0.0
    w[1, :3] = 2.0  # a resample of three rows
    w[2] = 0.0
    w[2, 5] = 4.0  # one row four times: constant, NaN
    pear, spear = weighted_pearson(w, x, y), weighted_spearman(w, x, y)
    for r in range(w.shape[0]):
        xr, yr = materialise(w[r], x, y)
        for got, fn in ((pear[r], stats.pearsonr), (spear[r],
                                                    stats.spearmanr)):
            want = slow_corr(fn, xr, yr)
            if math.isnan(want):
                assert math.isnan(got), r
            else:
                assert got == pytest.approx(want, rel=1e-10, abs=1e-12), r
    assert np.isnan(pear[2]) and np.isnan(spear[2])


@pytest.mark.parametrize('binning', ['max', 'unit'])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_ece_matches_explicit_loop_on_materialised_resamples(seed, binning):
    _, _, conf, hit, w = random_case(seed)
    bins = weighted_reliability_bins(w, conf, hit, 7, binning)
    assert np.array_equal(weighted_ece(w, conf, hit, 7, binning),
                          bins['ece'])
    for r in range(w.shape[0]):
        cr, hr = materialise(w[r], conf, hit)
        want, count = slow_ece(cr, hr, 7, binning)
        assert bins['ece'][r] == pytest.approx(want, rel=1e-12, abs=1e-15)
        assert bins['bin_count'][r].tolist() == count
        top = cr.max() if binning == 'max' else 1.0
        assert np.array_equal(bins['edges'][r], np.linspace(0, top, 8))


def test_mean_and_unit_weights_equal_the_plain_functions():
    x, y, conf, label, w = random_case(5, rows=60)
    assert weighted_mean(w, x) == pytest.approx(
        [np.mean(materialise(row, x)[0]) for row in w], rel=1e-12)
    ones = np.ones((1, x.size))
    p, s = pearson_spearman(x, y)
    assert weighted_pearson(ones, x, y)[0] == p
    assert weighted_spearman(ones, x, y)[0] == s
    assert p == pytest.approx(stats.pearsonr(x, y)[0], rel=1e-12)
    assert s == pytest.approx(stats.spearmanr(x, y)[0], rel=1e-12)
    assert roc_auc(x, label)['auc'] == pytest.approx(
        roc_auc_score(label, x), rel=1e-12)
    for binning in ('max', 'unit'):
        plain = expected_calibration_error(conf, label, 10, binning)
        want, count = slow_ece(conf, label, 10, binning)
        assert plain['ece'] == pytest.approx(want, rel=1e-12, abs=1e-15)
        assert plain['bin_count'].tolist() == count
        assert plain['bin_count'].dtype == np.int64
    # tensors are accepted
    assert weighted_mean(torch.ones(1, 3), torch.tensor([1.0, 2, 6]))[0] == 3


def test_hand_computed_cases():
    # scores 1, 2, 2, 3; positive: the second 2 and the 3.
    score = np.array([1.0, 2.0, 2.0, 3.0])
    pos = np.array([False, False, True, True])
    # weights (2, 1, 1, 1): negatives 1, 1, 2; positives 2, 3
    # pairs: pos 2 vs neg (1, 1, 2) -> 1 + 1 + 0.5; pos 3 -> 3 -> 5.5 / 6
    w = np.array([[2.0, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]])
    auc = weighted_roc_auc(w, score, pos)
    assert auc[0] == pytest.approx(5.5 / 6)
    assert auc[1] == pytest.approx(3.5 / 4)
    assert np.isnan(auc[2])
    # Spearman with ties inside the resample: x = 1, 1, 2 (rank 1.5, 1.5,
    # 3), y = 3, 2, 1 (ranks 3, 2, 1): r = -sqrt(3) / 2
    # (a fourth row, weight 0, changes nothing)
    rho = weighted_spearman(np.array([[1.0, 1.0, 1.0, 0.0]]),
                            np.r_[1.0, 1.0, 2.0, 9.0],
                            np.r_[3.0, 2.0, 1.0, 0.0])
    assert rho[0] == pytest.approx(-math.sqrt(3) / 2)
    # ECE 'max' with weights: confidences 0.2 (x2, hit), 0.8 (miss), and
    # 0.9 absent: top 0.8, two bins (0, 0.4], (0.4, 0.8]:
    # (2/3)|1 - 0.2| + (1/3)|0 - 0.8| = 0.8
    ece = weighted_ece(np.array([[2.0, 1.0, 0.0]]), [0.2, 0.8, 0.9],
                       [True, False, True], num_bins=2)
    assert ece[0] == pytest.approx(0.8)


def test_bad_inputs_name_the_field():
    w = np.ones((2, 3))
    with pytest.raises(ValueError, match='weights must be'):
        weighted_mean(np.ones(3), [1.0, 2, 3])
    with pytest.raises(ValueError, match='non-negative'):
        weighted_mean(-w, [1.0, 2, 3])
    with pytest.raises(ValueError, match='scores'):
        weighted_roc_auc(w, [1.0, 2], [True, False, True])
    with pytest.raises(ValueError, match='x must be finite'):
        weighted_pearson(w, [1.0, np.nan, 3], [1.0, 2, 3])
    with pytest.raises(ValueError, match='within'):
        weighted_ece(w, [0.1, 1.2, 0.3], [True, False, True])
    with pytest.raises(ValueError, match='binning'):
        weighted_ece(w, [0.1, 0.2, 0.3], [True, False, True], 3, 'equal')
    with pytest.raises(ValueError, match='num_bins'):
        weighted_ece(w, [0.1, 0.2, 0.3], [True, False, True], 0)
