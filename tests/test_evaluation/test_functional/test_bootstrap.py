# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Tests of the image-level bootstrap against a slow, obvious
float64 reference, a hand-enumerated case and simulated coverage."""
import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from mmchh.evaluation.functional import (BootstrapOptions, bootstrap_counts,
                                         bootstrap_indices, bootstrap_mean,
                                         image_bootstrap, paired_bootstrap,
                                         paired_bootstrap_mean,
                                         resample_counts, roc_auc,
                                         weighted_bootstrap, weighted_mean,
                                         weighted_roc_auc, weighted_spearman)
from mmchh.evaluation.functional import bootstrap_weighted


# --------------------------------------------------------------------------
# slow references: explicit python loops over resamples and images
# --------------------------------------------------------------------------
def slow_quantile(values, q):
    """Linear-interpolation quantile (numpy's default), by hand."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


def slow_resample(per_image, idx):
    """Rows of the images idx, concatenated image by image."""
    rows = []
    for i in idx:
        rows.extend(per_image[int(i)])
    return rows


def slow_bootstrap(statistic, per_image, indices, level):
    """Percentile interval of statistic(list of rows), failures dropped."""
    vals = []
    for idx in indices:
        v = statistic(slow_resample(per_image, idx))
        if math.isfinite(v):
            vals.append(v)
    alpha = (1 - level) / 2
    return (slow_quantile(vals, alpha), slow_quantile(vals, 1 - alpha),
            len(indices) - len(vals))


def per_image_rows(values, ids):
    """{code: [values of that image in original order]} with sorted ids."""
    uniq = sorted(set(ids.tolist()))
    return [[float(v) for v, g in zip(values, ids) if g == u] for u in uniq]


def same(r1, r2):
    """Two results equal field by field, NaN equal to NaN."""
    d1, d2 = r1.as_dict(), r2.as_dict()
    return d1.keys() == d2.keys() and all(
        d1[k] == d2[k] or (isinstance(d1[k], float) and math.isnan(d1[k])
                           and math.isnan(d2[k])) for k in d1)


def slow_mean(rows):
    return sum(rows) / len(rows) if rows else math.nan


# --------------------------------------------------------------------------
# indices and counts
# --------------------------------------------------------------------------
def test_indices_seeded_and_in_range():
    a = bootstrap_indices(7, 50, seed=3)
    b = bootstrap_indices(7, 50, seed=3)
    c = bootstrap_indices(7, 50, seed=4)
    assert a.shape == (50, 7) and a.dtype == np.int64
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() < 7
    counts = resample_counts(a, 7)
    for r in range(50):
        for i in range(7):
            assert counts[r, i] == sum(1 for j in a[r] if j == i)
    with pytest.raises(ValueError, match='num_images'):
        bootstrap_indices(0, 5, 0)
    with pytest.raises(ValueError, match='num_resamples'):
        bootstrap_indices(3, 2.5, 0)


# --------------------------------------------------------------------------
# image_bootstrap vs the slow reference
# --------------------------------------------------------------------------
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_image_bootstrap_matches_slow_reference(seed):
    rng = np.random.default_rng(100 + seed)
    n_img = 6
    sizes = rng.integers(1, 5, size=n_img)
    # shuffled rows, string ids: the grouping must not rely on row order
    ids = np.repeat(np.array([f'img{k}' for k in range(n_img)]), sizes)
    perm = rng.permutation(ids.size)
    ids = ids[perm]
    values = rng.normal(size=ids.size)

    def stat(v):  # a non-linear statistic: root-mean-square
        return float(np.sqrt(np.mean(np.square(v))))

    res = image_bootstrap(
        stat, values, ids,
        options=BootstrapOptions(num_resamples=200, level=0.9, seed=seed,
                                 method='percentile'))
    per = per_image_rows(values, ids)
    indices = bootstrap_indices(n_img, 200, seed)
    low, high, failed = slow_bootstrap(
        lambda rows: math.sqrt(sum(x * x for x in rows) / len(rows)), per,
        indices, 0.9)
    assert res.low == pytest.approx(low, rel=1e-12, abs=1e-12)
    assert res.high == pytest.approx(high, rel=1e-12, abs=1e-12)
    assert res.num_failed == failed == 0
    assert res.estimate == pytest.approx(stat(values), rel=1e-12)
    assert res.num_images == n_img and res.num_resamples == 200
    assert res.level == 0.9 and res.method == 'percentile'
    # the expanded interval: quantile levels from the t and normal laws
    exp = image_bootstrap(
        stat, values, ids, options=BootstrapOptions(num_resamples=200,
                                                    level=0.9, seed=seed))
    a = stats.norm.cdf(-math.sqrt(n_img / (n_img - 1)) *
                       stats.t.ppf(0.95, n_img - 1))
    vals = [math.sqrt(sum(x * x for x in slow_resample(per, idx)) /
                      len(slow_resample(per, idx))) for idx in indices]
    assert exp.method == 'expanded'
    assert exp.low == pytest.approx(slow_quantile(vals, a), rel=1e-12)
    assert exp.high == pytest.approx(slow_quantile(vals, 1 - a), rel=1e-12)
    assert exp.low <= res.low and exp.high >= res.high
    assert res.reason == ''


def test_image_rows_stay_together_and_in_order():
    ids = np.array([2, 0, 2, 1, 0, 2])
    rows = np.arange(6)
    seen = []

    def stat(r):
        seen.append(r.copy())
        return 0.0

    image_bootstrap(stat, rows, ids,
                    options=BootstrapOptions(num_resamples=5, seed=0))
    indices = bootstrap_indices(3, 5, 0)
    members = {0: [1, 4], 1: [3], 2: [0, 2, 5]}
    assert np.array_equal(seen[0], rows)  # the estimate: original data
    for r, idx in enumerate(indices):
        expect = [m for i in idx for m in members[int(i)]]
        assert seen[r + 1].tolist() == expect


def test_hand_enumerated_three_images():
    """3 images, every one of the 27 ordered resamples exactly once."""
    images = [[1.0, 3.0], [4.0], [10.0, 20.0, 30.0]]
    ids = np.array([0, 0, 1, 2, 2, 2])
    values = np.array([1.0, 3.0, 4.0, 10.0, 20.0, 30.0])
    means = []
    for idx in itertools.product(range(3), repeat=3):
        rows = [x for i in idx for x in images[i]]
        means.append(sum(rows) / len(rows))
    # by hand: the 27 pooled means; e.g. (0, 0, 0) -> 2, (2, 2, 2) -> 20,
    # (0, 1, 2) and its 5 permutations -> 68 / 6
    assert sorted(means)[0] == 2.0 and sorted(means)[-1] == 20.0
    assert sum(1 for m in means if m == 68 / 6) == 6
    # feed the enumeration as the resamples through the public pieces
    indices = np.array(list(itertools.product(range(3), repeat=3)))
    counts = resample_counts(indices, 3)
    sums = np.array([4.0, 4.0, 60.0])
    sizes = np.array([2.0, 1.0, 3.0])
    np.testing.assert_allclose(counts @ sums / (counts @ sizes), means,
                               rtol=1e-14)
    # by hand: 7 of the 27 means are <= 3.0 (2, 2.4 x 3 from {0, 0, 1},
    # 3.0 x 3 from {0, 1, 1} = 12 / 4) and 4 are < 3.0, so the 20 % point of
    # the resampling distribution is 3.0 (7/27 = 0.26 > 0.2 > 4/27 = 0.15);
    # 23 of 27 are <= 15.5 ({1, 2, 2} = 124 / 8) and 20 are < 15.5, so the
    # 80 % point is 15.5 (23/27 = 0.85 > 0.8 > 20/27 = 0.74). With 4000
    # draws the sample quantiles land on these exactly (the CDF's sd there
    # is ~0.007, far from the 0.05 gaps).
    for seed in range(3):
        res = bootstrap_mean(
            values, ids,
            options=BootstrapOptions(num_resamples=4000, level=0.6, seed=seed,
                                     method='percentile'))
        assert res.estimate == pytest.approx(68 / 6)
        assert res.low == 3.0 and res.high == 15.5


def test_multi_array_statistic_auc_with_failures():
    """AUC of a score for a label: resamples with one class are NaN."""
    rng = np.random.default_rng(5)
    ids = np.repeat(np.arange(8), 3)
    score = rng.random(ids.size)
    label = np.zeros(ids.size, bool)
    label[[0, 4]] = True  # only images 0 and 1 have positives

    def auc(s, y):  # pairwise Mann-Whitney AUC; roc_auc (sklearn) is
        if y.all() or not y.any():  # ~10 ms a call, too slow for a test
            return math.nan
        gt = s[y][:, None] - s[~y][None, :]
        return float(np.mean((gt > 0) + 0.5 * (gt == 0)))

    assert auc(score, label) == pytest.approx(roc_auc(score, label)['auc'])

    res = image_bootstrap(
        auc, (score, label), ids,
        options=BootstrapOptions(num_resamples=300, seed=1,
                                 max_failed_fraction=1.0, method='percentile'))
    per = [list(zip(score[ids == k], label[ids == k])) for k in range(8)]
    indices = bootstrap_indices(8, 300, 1)
    low, high, failed = slow_bootstrap(
        lambda rows: auc(np.array([r[0] for r in rows]),
                         np.array([r[1] for r in rows])), per, indices, 0.95)
    # P(neither image 0 nor 1 drawn) = (6/8)^8 ~ 0.1
    assert failed > 10
    assert res.num_failed == failed
    assert res.low == pytest.approx(low) and res.high == pytest.approx(high)
    strict = image_bootstrap(
        auc, (score, label), ids,
        options=BootstrapOptions(num_resamples=300, seed=1,
                                 max_failed_fraction=0.05))
    assert math.isnan(strict.low) and math.isnan(strict.high)
    assert 'undefined' in strict.reason and strict.num_failed == failed
    assert strict.estimate == res.estimate


def test_undefined_estimate_and_too_few_images():
    res = image_bootstrap(lambda v: math.nan, np.ones(4), np.arange(4),
                          options=BootstrapOptions(num_resamples=20))
    assert math.isnan(res.estimate) and math.isnan(res.low)
    assert 'original data' in res.reason
    one = image_bootstrap(np.mean, np.array([1.0, 2.0]), np.array([7, 7]))
    assert one.estimate == 1.5 and math.isnan(one.low)
    assert math.isnan(one.high) and one.num_images == 1
    assert 'at least 2' in one.reason
    one_mean = bootstrap_mean(np.array([[1.0, 2.0]]))
    assert one_mean.estimate == 1.5 and math.isnan(one_mean.low)
    pair = paired_bootstrap_mean(np.array([[1.0]]), np.array([[3.0]]))
    assert pair.estimate == 2.0 and math.isnan(pair.high)
    assert pair.estimate_a == 1.0 and pair.estimate_b == 3.0


def test_bad_inputs_name_the_field():
    with pytest.raises(ValueError, match='image_ids'):
        image_bootstrap(np.mean, np.ones(4), np.arange(3))
    with pytest.raises(ValueError, match='same length'):
        image_bootstrap(lambda a, b: 0.0, (np.ones(4), np.ones(3)))
    with pytest.raises(ValueError, match='one number'):
        image_bootstrap(lambda v: v, np.ones(4))
    with pytest.raises(ValueError, match='level'):
        image_bootstrap(np.mean, np.ones(4),
                        options=BootstrapOptions(level=1.0))
    with pytest.raises(ValueError, match='method'):
        bootstrap_mean(np.ones((3, 2)), options=BootstrapOptions(method='bca'))
    with pytest.raises(ValueError, match='non-finite'):
        bootstrap_mean(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ValueError, match='same shape'):
        paired_bootstrap_mean(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match='same number of rows'):
        paired_bootstrap(np.mean, np.ones(4), np.ones(5))


# --------------------------------------------------------------------------
# fast means == general bootstrap == slow reference
# --------------------------------------------------------------------------
def test_bootstrap_mean_matches_general_and_slow():
    rng = np.random.default_rng(11)
    errors = rng.gamma(2.0, 1.0, size=(9, 5))  # (N images, K landmarks)
    valid = rng.random((9, 5)) > 0.2
    valid[3] = False  # an image with no valid landmark
    fast = bootstrap_mean(
        errors, valid=valid,
        options=BootstrapOptions(num_resamples=300, seed=2,
                                 method='percentile'))
    general = image_bootstrap(
        lambda e, m: e[m].mean() if m.any() else math.nan, (errors, valid),
        options=BootstrapOptions(num_resamples=300, seed=2,
                                 method='percentile'))
    per = [[float(e) for e, m in zip(errors[i], valid[i]) if m]
           for i in range(9)]
    low, high, failed = slow_bootstrap(slow_mean, per,
                                       bootstrap_indices(9, 300, 2), 0.95)
    assert fast.estimate == pytest.approx(errors[valid].mean(), rel=1e-12)
    for res in (fast, general):
        assert res.low == pytest.approx(low, rel=1e-12)
        assert res.high == pytest.approx(high, rel=1e-12)
        assert res.num_failed == failed
    # torch input and per-landmark layout with ids give the same numbers
    ids = np.repeat(np.arange(9), 5)
    flat = bootstrap_mean(
        torch.from_numpy(errors.reshape(-1)), ids, valid=valid.reshape(-1),
        options=BootstrapOptions(num_resamples=300, seed=2,
                                 method='percentile'))
    assert same(flat, fast)


def test_paired_matches_slow_reference():
    rng = np.random.default_rng(21)
    ids = np.repeat(np.arange(7), 4)
    a = rng.normal(size=ids.size)
    b = a + 0.3 + rng.normal(scale=0.5, size=ids.size)
    res = paired_bootstrap_mean(
        a, b, ids, options=BootstrapOptions(num_resamples=400, seed=9,
                                            method='percentile'))
    general = paired_bootstrap(
        np.mean, a, b, image_ids=ids,
        options=BootstrapOptions(num_resamples=400, seed=9,
                                 method='percentile'))
    per = [list(zip(a[ids == k], b[ids == k])) for k in range(7)]
    diffs = []
    for idx in bootstrap_indices(7, 400, 9):
        rows = slow_resample(per, idx)
        diffs.append(slow_mean([y for _, y in rows]) -
                     slow_mean([x for x, _ in rows]))
    low, high = slow_quantile(diffs, 0.025), slow_quantile(diffs, 0.975)
    prob = sum(1 for d in diffs if d > 0) / len(diffs)
    for r in (res, general):
        assert r.estimate == pytest.approx(b.mean() - a.mean(), rel=1e-12)
        assert r.estimate_a == pytest.approx(a.mean(), rel=1e-12)
        assert r.estimate_b == pytest.approx(b.mean(), rel=1e-12)
        assert r.low == pytest.approx(low, rel=1e-10)
        assert r.high == pytest.approx(high, rel=1e-10)
        assert r.prob_positive == pytest.approx(prob)
    # two statistics of one dataset: b - a of (max, mean) per resample
    two = paired_bootstrap(np.mean, a, statistic_b=np.max, image_ids=ids,
                           options=BootstrapOptions(num_resamples=50, seed=0))
    assert two.estimate == pytest.approx(a.max() - a.mean())
    assert two.prob_positive == 1.0


def test_determinism_under_seed():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(10, 3))
    r1 = image_bootstrap(np.median, v,
                         options=BootstrapOptions(num_resamples=100, seed=5))
    r2 = image_bootstrap(np.median, v,
                         options=BootstrapOptions(num_resamples=100, seed=5))
    r3 = image_bootstrap(np.median, v,
                         options=BootstrapOptions(num_resamples=100, seed=6))
    assert same(r1, r2) and not same(r1, r3)


# --------------------------------------------------------------------------
# statistical behaviour
# --------------------------------------------------------------------------
def test_correlated_landmarks_widen_the_image_interval():
    """Landmarks of one image perfectly correlated: resampling landmarks as
    if independent gives a too narrow interval; the image bootstrap does
    not."""
    rng = np.random.default_rng(3)
    n_img, k = 12, 10
    values = np.repeat(rng.normal(size=n_img), k)
    ids = np.repeat(np.arange(n_img), k)
    by_image = bootstrap_mean(
        values, ids, options=BootstrapOptions(num_resamples=2000, seed=0))
    by_landmark = bootstrap_mean(
        values, np.arange(values.size),
        options=BootstrapOptions(num_resamples=2000, seed=0))
    w_img = by_image.high - by_image.low
    w_lmk = by_landmark.high - by_landmark.low
    assert w_img > 2.0 * w_lmk  # ~ sqrt(k) = 3.2 in expectation


def _simulated_coverage(n_sets, n_img, level, method):
    """Coverage of the true difference by the paired mean interval over
    simulated datasets (n_img images x 6 correlated landmarks, a shared
    image effect in a and b, an image-level and a landmark-level change)."""
    rng = np.random.default_rng(2024)
    k, delta = 6, 0.25
    ids = np.repeat(np.arange(n_img), k)
    covered, widths = 0, []
    for s in range(n_sets):
        image_effect = np.repeat(rng.normal(size=n_img), k)
        a = image_effect + rng.normal(scale=0.5, size=ids.size)
        b = (a + delta + np.repeat(rng.normal(scale=0.3, size=n_img), k) +
             rng.normal(scale=0.2, size=ids.size))
        res = paired_bootstrap_mean(
            a, b, ids,
            options=BootstrapOptions(num_resamples=1000, level=level, seed=s,
                                     method=method))
        covered += res.low <= delta <= res.high
        widths.append(res.high - res.low)
    return covered / n_sets, a, b, ids, widths


def test_paired_interval_covers_at_nominal_rate():
    """300 simulated paired datasets with 15 images: the default (expanded)
    95 % and 90 % paired intervals cover the true difference at their
    nominal rate within a binomial tolerance (3 sd: 0.038 at 95 %, 0.052
    at 90 %)."""
    for level, tol in ((0.95, 0.038), (0.9, 0.052)):
        rate, a, b, ids, widths = _simulated_coverage(300, 15, level,
                                                      'expanded')
        assert abs(rate - level) <= tol, (level, rate)
    # pairing matters: the unpaired interval (a, b resampled
    # independently) of the last dataset is much wider
    ia = bootstrap_mean(
        a, ids, options=BootstrapOptions(num_resamples=1000, level=0.9,
                                         seed=1))
    ib = bootstrap_mean(
        b, ids, options=BootstrapOptions(num_resamples=1000, level=0.9,
                                         seed=2))
    unpaired_width = math.hypot(ia.high - ia.low, ib.high - ib.low)
    assert widths[-1] < 0.6 * unpaired_width


def test_plain_percentile_undercovers_with_few_images():
    """Why 'expanded' is the default: with 15 images the plain percentile
    90 % interval of a mean covers about P(|t_14| < sqrt(14/15) z_0.95) =
    0.87, and it is narrower than the expanded one on the same data."""
    rate, *_ , widths = _simulated_coverage(300, 15, 0.9, 'percentile')
    theory = 2 * stats.t.cdf(math.sqrt(14 / 15) * stats.norm.ppf(0.95),
                             14) - 1
    assert abs(rate - theory) <= 0.055, (rate, theory)
    assert rate < 0.9
    _, *_, widths_exp = _simulated_coverage(20, 15, 0.9, 'expanded')
    assert np.all(np.array(widths_exp) > np.array(widths[:20]))


# --------------------------------------------------------------------------
# weighted_bootstrap: the same resamples, all at once
# --------------------------------------------------------------------------
def nan_auc(score, label):
    """The plain statistic: sklearn's AUC, NaN with one class."""
    try:
        return roc_auc(score, label)['auc']
    except ValueError:
        return math.nan


@pytest.mark.parametrize('chunk_bytes', [None, 8 * 24 * 7])
def test_weighted_bootstrap_equals_image_bootstrap(monkeypatch, chunk_bytes):
    """Same seed -> the same resamples: the weighted AUC and Spearman
    intervals equal image_bootstrap's with the plain statistics, with and
    without chunking (7 resamples of 24 rows per chunk)."""
    if chunk_bytes is not None:
        monkeypatch.setattr(bootstrap_weighted, 'CHUNK_BYTES', chunk_bytes)
    rng = np.random.default_rng(8)
    ids = np.repeat(np.array([f'im{k}' for k in range(8)]), 3)
    perm = rng.permutation(ids.size)
    ids = ids[perm]
    score = np.round(rng.random(ids.size), 1)  # ties
    label = rng.random(ids.size) < 0.3
    error = score + rng.normal(0, 0.3, ids.size)
    for method in ('expanded', 'percentile'):
        options = BootstrapOptions(num_resamples=60, seed=4,
                                   max_failed_fraction=1.0, method=method)
        fast = weighted_bootstrap(weighted_roc_auc, (score, label), ids,
                                  options=options)
        slow = image_bootstrap(nan_auc, (score, label), ids, options=options)
        assert fast.num_failed == slow.num_failed
        for key in ('estimate', 'low', 'high'):
            assert getattr(fast, key) == pytest.approx(
                getattr(slow, key), rel=1e-12, abs=1e-12)
        assert fast.as_dict().keys() == slow.as_dict().keys()
    options = BootstrapOptions(num_resamples=60, seed=2)
    fast = weighted_bootstrap(weighted_spearman, (score, error), ids,
                              options=options)
    slow = image_bootstrap(lambda s, e: stats.spearmanr(s, e)[0],
                           (score, error), ids, options=options)
    assert fast.low == pytest.approx(slow.low, rel=1e-10)
    assert fast.high == pytest.approx(slow.high, rel=1e-10)
    assert fast.num_failed == slow.num_failed == 0


def test_weighted_bootstrap_rows_as_images_and_errors():
    """Without image_ids each row is one image: the weighted mean equals
    bootstrap_mean resample by resample; too few images and bad
    statistics are handled as in image_bootstrap."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=9)
    fast = weighted_bootstrap(
        weighted_mean, values,
        options=BootstrapOptions(num_resamples=100, seed=6))
    mean = bootstrap_mean(values,
                          options=BootstrapOptions(num_resamples=100, seed=6))
    assert fast.low == pytest.approx(mean.low, rel=1e-12)
    assert fast.high == pytest.approx(mean.high, rel=1e-12)
    assert fast.estimate == pytest.approx(values.mean(), rel=1e-12)
    one = weighted_bootstrap(weighted_mean, values[:1])
    assert one.estimate == values[0] and math.isnan(one.low)
    assert 'at least 2' in one.reason
    with pytest.raises(ValueError, match='one value per weight row'):
        weighted_bootstrap(lambda w, v: 0.0, values)
    with pytest.raises(ValueError, match='image_ids'):
        weighted_bootstrap(weighted_mean, values, np.arange(3))
    with pytest.raises(ValueError, match='method'):
        weighted_bootstrap(weighted_mean, values,
                           options=BootstrapOptions(method='bca'))


def test_bootstrap_counts_are_the_seeded_draw_cached_read_only():
    counts = bootstrap_counts(6, 40, 9)
    assert np.array_equal(counts,
                          resample_counts(bootstrap_indices(6, 40, 9), 6))
    assert bootstrap_counts(6, 40, np.int64(9)) is counts  # one draw
    assert not counts.flags.writeable
    with pytest.raises(ValueError, match='num_images'):
        bootstrap_counts(2.5, 40, 9)
