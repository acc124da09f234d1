"""Paired comparison of two test runs: the vectorised paired
bootstrap equals the per-resample one, compare_runs lines runs up by
(sample, landmark) and matches a slow reference on the materialised
resamples, and refuses runs that cannot be paired."""
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from mmchh.evaluation.functional import (RUN_STATISTICS, BootstrapOptions,
                                         bootstrap_indices, compare_runs,
                                         expected_calibration_error,
                                         paired_bootstrap,
                                         paired_weighted_bootstrap, roc_auc,
                                         weighted_roc_auc)


def make_run(rng, num_images=12, k=5, shift=0.0, unit='mm'):
    """A per-landmark table as UncertaintyMetric writes it."""
    m = num_images * k
    error = rng.gamma(2.0, 1.0, m) + shift
    ere = error * rng.uniform(0.5, 1.5, m)
    conf = rng.uniform(0.05, 0.6, m)
    return dict(
        sample=np.repeat([f'img{i:02d}.png' for i in range(num_images)], k),
        landmark=np.tile(np.arange(k), num_images),
        error=error, ere=ere, confidence=conf,
        hit=rng.uniform(size=m) < conf,
        nll=rng.gamma(3.0, 1.0, m),
        counted=rng.uniform(size=m) > 0.1,
        invalid=np.zeros(m, bool), unit=np.array(unit))


def auc_or_nan(ere, error):
    bad = error > 2.0
    return float('nan') if bad.all() or not bad.any() else roc_auc(
        ere, bad)['auc']


@pytest.mark.parametrize('seed', [0, 1])
def test_paired_weighted_equals_paired_bootstrap(seed):
    rng = np.random.default_rng(seed)
    a, b = make_run(rng), make_run(rng, shift=0.3)
    ids = a['sample']
    fast = paired_weighted_bootstrap(
        lambda w, s, e: weighted_roc_auc(w, s, e > 2.0),
        (a['ere'], a['error']), (b['ere'], b['error']), image_ids=ids,
        options=BootstrapOptions(num_resamples=300, seed=seed))
    slow = paired_bootstrap(
        auc_or_nan, (a['ere'], a['error']), (b['ere'], b['error']),
        image_ids=ids, options=BootstrapOptions(num_resamples=300, seed=seed))
    for field in ('estimate', 'low', 'high', 'estimate_a', 'estimate_b',
                  'prob_positive', 'num_failed'):
        assert getattr(fast, field) == pytest.approx(
            getattr(slow, field), abs=1e-12), field


def slow_compare(a, b, statistic, indices, level_q):
    """Percentile ends of b - a over explicitly materialised resamples
    (image by image, counted landmarks only), float64, sklearn/loops."""
    images = sorted(set(a['sample']))
    keep_a, keep_b = a['counted'], b['counted']
    diffs = []
    for idx in indices:
        rows_a, rows_b = [], []
        for i in idx:
            rows_a += [j for j in np.flatnonzero(a['sample'] == images[i])
                       if keep_a[j]]
            rows_b += [j for j in np.flatnonzero(b['sample'] == images[i])
                       if keep_b[j]]
        diffs.append(statistic(b, rows_b) - statistic(a, rows_a))
    diffs = np.array(diffs)
    diffs = diffs[np.isfinite(diffs)]
    return np.quantile(diffs, level_q[0]), np.quantile(diffs, level_q[1])


def stat_mre(run, rows):
    return float(np.mean(run['error'][rows]))


def stat_ece(run, rows):
    return expected_calibration_error(run['confidence'][rows],
                                      run['hit'][rows], 10, 'max')['ece']


def stat_auc(run, rows):
    bad = run['error'][rows] > 2.0
    if bad.all() or not bad.any():
        return float('nan')
    return float(roc_auc_score(bad, run['ere'][rows]))


@pytest.mark.parametrize('name,statistic', [('MRE', stat_mre),
                                            ('ECE', stat_ece),
                                            ('AUC', stat_auc)])
def test_compare_runs_matches_slow_reference(name, statistic):
    rng = np.random.default_rng(3)
    a = make_run(rng)
    b = make_run(rng, shift=0.2)
    b['counted'] = a['counted'].copy()
    # the second run lists its rows in another order: pairing is by name
    order = rng.permutation(len(b['sample']))
    b = {k: v[order] if np.ndim(v) else v for k, v in b.items()}
    r = 400
    out = compare_runs(a, b, (name, ), num_resamples=r, seed=5,
                       level=0.9)[name]
    # the expanded percentile interval's quantile levels (Hesterberg), by
    # hand: Phi(-sqrt(n / (n - 1)) t_{n-1}(0.95)) for a 90 % interval
    n = 12
    t = stats.t.ppf(0.95, n - 1)
    tail = stats.norm.cdf(-math.sqrt(n / (n - 1)) * t)
    low, high = slow_compare(a, b, statistic, bootstrap_indices(n, r, 5),
                             (tail, 1 - tail))
    assert out.low == pytest.approx(low, abs=1e-9)
    assert out.high == pytest.approx(high, abs=1e-9)
    keep = np.flatnonzero(a['counted'])
    keep_b = np.flatnonzero(b['counted'])
    assert out.estimate_a == pytest.approx(statistic(a, keep), abs=1e-12)
    assert out.estimate_b == pytest.approx(statistic(b, keep_b), abs=1e-12)


def test_hand_case_two_images_mre_difference():
    # image x: errors a (1, 3), b (1, 1); image y: a (2, 2), b (2, 4)
    a = dict(sample=np.array(['x', 'x', 'y', 'y']),
             landmark=np.array([0, 1, 0, 1]), error=np.array([1., 3, 2, 2]),
             counted=np.ones(4, bool), invalid=np.zeros(4, bool),
             unit=np.array('mm'))
    b = dict(a, error=np.array([1., 1, 2, 4]))
    out = compare_runs(a, b, ('MRE', 'SDR'), sdr_threshold=1.5,
                       num_resamples=50)
    # MRE: 2.0 -> 2.0; per image differences x: -1, y: +1
    assert out['MRE'].estimate == pytest.approx(0.0)
    assert out['MRE'].estimate_a == pytest.approx(2.0)
    # resamples are {x,x}: -1, {y,y}: +1, {x,y}: 0 -> interval within [-1, 1]
    assert -1.0 <= out['MRE'].low <= out['MRE'].high <= 1.0
    # SDR < 1.5: a 1 of 4 (25 %), b 2 of 4 (50 %)
    assert out['SDR'].estimate == pytest.approx(25.0)


def test_refuses_runs_that_cannot_be_paired():
    rng = np.random.default_rng(0)
    a = make_run(rng)
    other = make_run(rng, num_images=11)
    with pytest.raises(ValueError, match='same landmarks of the same images'):
        compare_runs(a, other, names=('before.npz', 'after.npz'))
    with pytest.raises(ValueError, match='in mm, .* in px'):
        compare_runs(a, dict(a, unit=np.array('px')))
    broken = dict(a, invalid=a['counted'].copy())
    with pytest.raises(ValueError, match='after.npz: .* no valid prediction'):
        compare_runs(a, broken, names=('before.npz', 'after.npz'))
    twice = {k: np.concatenate([v, v[:1]]) if np.ndim(v) else v
             for k, v in a.items()}
    twice['counted'][-1] = twice['counted'][0] = True
    with pytest.raises(ValueError, match='occurs twice'):
        compare_runs(twice, twice)
    with pytest.raises(ValueError, match='unknown statistics'):
        compare_runs(a, a, ('median', ))
    with pytest.raises(ValueError, match="no column.*'unit'"):
        compare_runs({k: v for k, v in a.items() if k != 'unit'}, a)


def test_every_statistic_runs_and_identity_is_zero():
    rng = np.random.default_rng(1)
    a = make_run(rng)
    out = compare_runs(a, a, tuple(RUN_STATISTICS), num_resamples=100)
    for name, interval in out.items():
        assert interval.estimate == pytest.approx(0.0, abs=1e-12), name
        assert interval.low == pytest.approx(0.0, abs=1e-12), name
        assert interval.high == pytest.approx(0.0, abs=1e-12), name
