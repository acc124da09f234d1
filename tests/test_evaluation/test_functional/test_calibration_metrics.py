# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Tests of the calibration / flagging metrics against slow, obvious
references, scipy / sklearn and hand-computed cases."""
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from mmchh.evaluation.functional.calibration_metrics import (
    binned_correlation, expected_calibration_error, good_erroneous_table,
    pearson_spearman, roc_auc, threshold_at_tpr)


# --------------------------------------------------------------------------
# expected_calibration_error
# --------------------------------------------------------------------------
def slow_ece(conf, correct, num_bins, binning):
    top = max(conf) if binning == 'max' else 1.0
    edges = [top * i / num_bins for i in range(num_bins)] + [top]
    members = [[] for _ in range(num_bins)]
    for c, ok in zip(conf, correct):
        for i in range(num_bins):
            if edges[i] < c <= edges[i + 1] or (i == 0 and c == edges[0]):
                members[i].append((c, ok))
                break
    ece, bin_conf, bin_acc, count = 0.0, [], [], []
    for m in members:
        count.append(len(m))
        if not m:
            bin_conf.append(math.nan)
            bin_acc.append(math.nan)
            continue
        c = sum(x for x, _ in m) / len(m)
        a = sum(1.0 for _, ok in m if ok) / len(m)
        bin_conf.append(c)
        bin_acc.append(a)
        ece += len(m) / len(conf) * abs(a - c)
    return ece, edges, bin_conf, bin_acc, count


@pytest.mark.parametrize('binning', ['max', 'unit'])
@pytest.mark.parametrize('num_bins', [1, 7, 10])
def test_ece_matches_slow_reference(binning, num_bins):
    rng = np.random.default_rng(num_bins)
    conf = rng.beta(2, 8, 500) * 0.8
    correct = rng.random(500) < conf * 1.2
    out = expected_calibration_error(conf, correct, num_bins, binning)
    ece, edges, bin_conf, bin_acc, count = slow_ece(
        conf.tolist(), correct.tolist(), num_bins, binning)
    assert out['ece'] == pytest.approx(ece, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(out['edges'], edges, rtol=1e-12)
    np.testing.assert_allclose(out['bin_confidence'], bin_conf, rtol=1e-12)
    np.testing.assert_allclose(out['bin_accuracy'], bin_acc, rtol=1e-12)
    assert out['bin_count'].tolist() == count
    assert out['bin_count'].sum() == 500


def test_ece_hand_example_and_edge_rule():
    conf = np.array([0.0, 0.1, 0.2, 0.4, 0.8])
    correct = np.array([False, False, True, True, True])
    # 'max': edges 0, .2, .4, .6, .8; 0 joins bin 0, 0.2 and 0.4 close their
    # bins on the right, 0.8 (= M) is in the last bin
    out = expected_calibration_error(conf, correct, 4, 'max')
    np.testing.assert_allclose(out['edges'], [0, .2, .4, .6, .8])
    assert out['bin_count'].tolist() == [3, 1, 0, 1]
    np.testing.assert_allclose(out['bin_confidence'], [0.1, 0.4, np.nan, .8])
    np.testing.assert_allclose(out['bin_accuracy'], [1 / 3, 1, np.nan, 1])
    expected = 3 / 5 * abs(1 / 3 - 0.1) + 1 / 5 * 0.6 + 1 / 5 * 0.2
    assert out['ece'] == pytest.approx(expected)
    # 'unit' with 2 bins: edges 0, .5, 1
    out = expected_calibration_error(conf, correct, 2, 'unit')
    assert out['bin_count'].tolist() == [4, 1]
    expected = 4 / 5 * abs(0.5 - 0.7 / 4) + 1 / 5 * 0.2
    assert out['ece'] == pytest.approx(expected)
    # perfectly calibrated in each bin
    out = expected_calibration_error([0.5, 0.5], [True, False], 10, 'unit')
    assert out['ece'] == 0.0


def test_ece_rejects_bad_input():
    with pytest.raises(ValueError, match='no predictions'):
        expected_calibration_error(np.array([]), np.array([], bool))
    with pytest.raises(ValueError, match='within'):
        expected_calibration_error([1.5], [True])
    with pytest.raises(ValueError, match='same number'):
        expected_calibration_error([0.5, 0.2], [True])
    with pytest.raises(ValueError, match='binning'):
        expected_calibration_error([0.5], [True], binning='equal')


# --------------------------------------------------------------------------
# correlations
# --------------------------------------------------------------------------
def test_pearson_spearman_matches_scipy_and_degenerate_cases():
    rng = np.random.default_rng(0)
    x = rng.gamma(2, 1, 200)
    y = x + rng.normal(0, 0.5, 200)
    p, s = pearson_spearman(x, y)
    assert p == pytest.approx(stats.pearsonr(x, y)[0], rel=1e-12)
    assert s == pytest.approx(stats.spearmanr(x, y)[0], rel=1e-12)
    assert all(math.isnan(v) for v in pearson_spearman([1.0], [2.0]))
    assert all(math.isnan(v) for v in pearson_spearman([1, 1, 1], [1, 2, 3]))


def test_binned_correlation_hand_example():
    # sorted by ERE: bins of 3 -> [0,1,2], [3,4,5]; the rest (2 >= 3/2
    # landmarks) is kept as its own bin
    ere = np.array([7, 0, 5, 1, 3, 2, 6, 4], dtype=float)
    err = ere * 2 + np.array([0, 1, 0, -1, 0, 0, 1, 0])
    out = binned_correlation(ere, err, bin_size=3)
    np.testing.assert_allclose(out['bin_ere'], [1, 4, 6.5])
    by_ere = dict(zip(ere, err))
    np.testing.assert_allclose(out['bin_error'], [
        np.mean([by_ere[0], by_ere[1], by_ere[2]]),
        np.mean([by_ere[3], by_ere[4], by_ere[5]]),
        np.mean([by_ere[6], by_ere[7]])
    ])
    assert out['pearson'] == pytest.approx(
        stats.pearsonr(out['bin_ere'], out['bin_error'])[0])
    # a rest of 1 < 4 / 2 is dropped: 9 landmarks in bins of 4 -> 2 bins
    out = binned_correlation(np.arange(9.0), np.arange(9.0), bin_size=4)
    np.testing.assert_allclose(out['bin_ere'], [1.5, 5.5])
    assert out['pearson'] == pytest.approx(1.0)
    # a rest of exactly bin_size / 2 is kept
    out = binned_correlation(np.arange(10.0), np.arange(10.0), bin_size=4)
    np.testing.assert_allclose(out['bin_ere'], [1.5, 5.5, 8.5])
    # fewer than two bins: undefined correlation
    few = binned_correlation([1.0, 2.0], [1.0, 2.0], 36)
    assert math.isnan(few['pearson']) and few['bin_ere'].size == 0


def test_binned_correlation_of_paper_sized_data():
    rng = np.random.default_rng(1)
    ere = rng.gamma(2, 0.7, 150 * 19)
    err = np.abs(ere + rng.normal(0, 0.7, ere.size))
    out = binned_correlation(ere, err)
    assert out['bin_ere'].shape == (150 * 19 // 36, )  # rest 6 < 18 dropped
    assert np.all(np.diff(out['bin_ere']) >= 0)
    assert out['pearson'] > 0.95


# --------------------------------------------------------------------------
# ROC, threshold, Table 2
# --------------------------------------------------------------------------
def test_roc_auc_matches_sklearn_and_separable_case():
    rng = np.random.default_rng(2)
    ere = rng.gamma(2, 1, 400)
    bad = rng.random(400) < ere / ere.max()
    out = roc_auc(ere, bad)
    fpr, tpr, thr = roc_curve(bad, ere, drop_intermediate=False)
    np.testing.assert_array_equal(out['fpr'], fpr)
    np.testing.assert_array_equal(out['tpr'], tpr)
    np.testing.assert_array_equal(out['thresholds'], thr)
    assert out['auc'] == pytest.approx(roc_auc_score(bad, ere), rel=1e-12)
    perfect = roc_auc([0.1, 0.2, 0.3, 0.9, 1.5], [0, 0, 0, 1, 1])
    assert perfect['auc'] == 1.0
    with pytest.raises(ValueError, match='both good and erroneous'):
        roc_auc([0.1, 0.2], [False, False])
    with pytest.raises(ValueError, match='both good and erroneous'):
        roc_auc([0.1, 0.2], [True, True])


def test_threshold_at_tpr_hand_example():
    ere = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    bad = np.array([False, True, False, True, False, True])
    # P = 3, m = ceil(1.5) = 2, e_2 = 2.0: the largest ERE below is 1.5;
    # ERE > 1.5 flags 2.0, 2.5, 3.0 -> TPR 2/3, FPR 1/3
    assert threshold_at_tpr(ere, bad, 0.5) == 1.5
    # m = 3, e_3 = 1.0 -> 0.5; m = 1, e_1 = 3.0 -> 2.5
    assert threshold_at_tpr(ere, bad, 1.0) == 0.5
    assert threshold_at_tpr(ere, bad, 0.2) == 2.5
    # exact products do not round up: 2/3 of 3 is m = 2
    assert threshold_at_tpr(ere, bad, 2 / 3) == 1.5
    # nothing observed below e_m: one ulp under it
    t = threshold_at_tpr([1.0, 2.0], [True, False], 1.0)
    assert t == np.nextafter(1.0, -np.inf) and t < 1.0
    with pytest.raises(ValueError, match='erroneous'):
        threshold_at_tpr([1.0, 2.0], [False, False])
    with pytest.raises(ValueError, match='target_tpr'):
        threshold_at_tpr(ere, bad, 0.0)


@pytest.mark.parametrize('seed', range(5))
def test_threshold_at_tpr_random(seed):
    rng = np.random.default_rng(seed)
    n = 200
    ere = np.round(rng.gamma(2, 1, n), 1)  # with ties
    bad = rng.random(n) < np.clip(ere / 6, 0.05, 0.95)
    for target in (0.1, 0.5, 0.77, 1.0):
        t = threshold_at_tpr(ere, bad, target)
        tpr = np.mean(ere[bad] > t)
        assert tpr >= target - 1e-12
        # any larger observed threshold falls below the target
        larger = np.unique(ere[ere > t])
        for u in larger:
            assert np.mean(ere[bad] > u) < target
        # and the threshold flags no more good landmarks than needed: the
        # next observed ERE up already misses the target (checked above),
        # so t is the last one that reaches it
        assert t in ere or not np.any(ere < t)


def test_good_erroneous_table_hand_example():
    errors = np.array([1.0, 2.0, 2.4, 3.0, 5.0, 0.5])
    ere = np.array([0.2, 0.9, 1.5, 1.2, 3.0, 1.0])
    table = good_erroneous_table(errors, ere, threshold=1.0)
    # good: ERE <= 1.0 -> errors 1.0, 2.0, 0.5 (2.0 is not < 2: strict)
    assert table['good'] == pytest.approx(
        dict(count=3, MRE=3.5 / 3, SDR_2mm=200 / 3, **{
            'SDR_2.5mm': 100.0
        }, SDR_3mm=100.0, SDR_4mm=100.0))
    # flagged: 2.4, 3.0, 5.0 (3.0 is not < 3)
    assert table['erroneous'] == pytest.approx(
        dict(count=3, MRE=10.4 / 3, SDR_2mm=0.0, **{
            'SDR_2.5mm': 100 / 3
        }, SDR_3mm=100 / 3, SDR_4mm=200 / 3))
    # overall: < 2 -> 1.0, 0.5; < 2.5 and < 3 -> also 2.0, 2.4; < 4 -> 5 of 6
    assert table['overall'] == pytest.approx(
        dict(count=6, MRE=13.9 / 6, SDR_2mm=200 / 6, **{
            'SDR_2.5mm': 400 / 6
        }, SDR_3mm=400 / 6, SDR_4mm=500 / 6))
    assert (table['good']['count'] + table['erroneous']['count'] ==
            table['overall']['count'])
    # precomputed flags give the same table
    same = good_erroneous_table(errors, ere, None, flagged=ere > 1.0)
    assert same == table
    # an empty row: count 0, nan values
    none = good_erroneous_table(errors, ere, threshold=10.0)
    assert none['erroneous']['count'] == 0
    assert all(math.isnan(v) for key, v in none['erroneous'].items()
               if key != 'count')
    custom = good_erroneous_table(errors, ere, 1.0, sdr_thresholds=(1.5, ))
    assert set(custom['good']) == {'count', 'MRE', 'SDR_1.5mm'}
    with pytest.raises(ValueError):
        good_erroneous_table(errors, ere, None)
    with pytest.raises(ValueError):
        good_erroneous_table(errors, ere, 1.0, flagged=ere > 1.0)
