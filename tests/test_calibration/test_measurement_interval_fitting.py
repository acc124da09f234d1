# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The pooled split-conformal interval scale: by hand, against a brute-force
reference, its coverage, and its JSON form."""
import math

import numpy as np
import pytest

from mmchh.engine import MeasurementIntervalFit, fit_measurement_intervals
from mmchh.evaluation.functional import interval_scores, scaled_intervals
from mmchh.utils.errors import InputError


def brute_force_scale(values, level):
    """The smallest pooled value v with #(values <= v) >= (n + 1) level,
    inf when none is (float64, no rank formula)."""
    values = np.asarray(values, np.float64)
    n = len(values)
    for v in np.sort(values):
        if np.sum(values <= v) >= (n + 1) * level - 1e-9:
            return float(v)
    return math.inf


def test_fit_by_hand():
    scores = dict(A=[0.5, 1.0, np.nan], B=[2.0, 0.1, np.inf])
    # pooled, NaN left out: 0.1 0.5 1.0 2.0 inf (n = 5)
    fit = fit_measurement_intervals(scores, level=0.6, region_level=0.9,
                                    calib_file='c.json')
    assert (fit.num_scores, fit.rank, fit.scale) == (5, 4, 2.0)  # ceil(3.6)
    assert fit.per_measurement == dict(
        A=dict(count=2, coverage=1.0), B=dict(count=3, coverage=2 / 3))
    assert fit.calib_file == 'c.json' and fit.region_level == 0.9
    # ceil(6 * 0.8) = 5: the inf itself
    assert fit_measurement_intervals(scores, level=0.8).scale == math.inf
    # ceil(6 * 0.95) = 6 > 5: too few values for the level
    fit = fit_measurement_intervals(scores, level=0.95)
    assert fit.rank == 6 and fit.scale == math.inf
    with pytest.raises(InputError, match='nothing to fit'):
        fit_measurement_intervals(dict(A=[np.nan]))


@pytest.mark.parametrize('n', [19, 20, 37, 64])
def test_fit_matches_brute_force(n):
    rng = np.random.default_rng(n)
    values = rng.exponential(size=n)
    values[rng.random(n) < 0.2] = np.round(values[0], 1)  # ties
    half = n // 2
    for level in (0.5, 0.8, 0.9, 0.95):
        fit = fit_measurement_intervals(
            dict(a=values[:half], b=values[half:]), level=level)
        assert fit.scale == brute_force_scale(values, level)


def test_fitted_intervals_cover_at_least_the_level():
    """Exchangeable calibration and test values: the fitted intervals
    cover a new value with probability k / (n + 1) >= level."""
    rng = np.random.default_rng(0)
    n, trials, level = 24, 4000, 0.9
    hits = 0
    for _ in range(trials):
        center = rng.normal(size=n + 1)
        spread = rng.uniform(0.5, 2.0, n + 1)
        truth = center + spread * rng.standard_t(3, n + 1)
        s = interval_scores(center, spread, truth)
        q = fit_measurement_intervals(dict(m=s[:n]), level=level).scale
        lo, hi = scaled_intervals(center[n:], spread[n:], q)
        hits += bool(lo[0] <= truth[n] <= hi[0])
    expected = math.ceil((n + 1) * level) / (n + 1)  # 23 / 25 = 0.92
    assert hits / trials == pytest.approx(expected, abs=4 * math.sqrt(
        expected * (1 - expected) / trials))


def test_save_load_and_fingerprint(tmp_path):
    fit = fit_measurement_intervals(dict(a=[0.2, 3.0]), level=0.5,
                                    weights_fingerprint='ab' * 32)
    path = str(tmp_path / 'fit.json')
    fit.save(path)
    assert MeasurementIntervalFit.load(path) == fit
    inf = fit_measurement_intervals(dict(a=[0.2]), level=0.9)
    inf.save(path)
    assert MeasurementIntervalFit.load(path).scale == math.inf
    fit.check_model('ab' * 32)
    fit.check_model(None)  # an uncalibrated head: nothing to compare
    with pytest.raises(InputError, match='refit'):
        fit.check_model('cd' * 32)
    with pytest.raises(InputError, match='does not exist'):
        MeasurementIntervalFit.load(str(tmp_path / 'missing.json'))
    bad = fit.to_dict()
    del bad['scale']
    with pytest.raises(InputError, match="x.json: no field 'scale'"):
        MeasurementIntervalFit.from_dict(bad, where='x.json')
    bad = dict(fit.to_dict(), level=1.5)
    with pytest.raises(InputError, match='level'):
        MeasurementIntervalFit.from_dict(bad)


def test_jitter_round_trip_and_strict_reading(tmp_path):
    jitter = [[[2.0, 0.5], [0.5, 1.0]]] * 19
    fit = fit_measurement_intervals(dict(a=[0.2, 3.0, 1.0]), level=0.5,
                                    jitter=jitter, jitter_images=7)
    path = str(tmp_path / 'fit.json')
    fit.save(path)
    back = MeasurementIntervalFit.load(path)
    assert back == fit and back.jitter_images == 7
    assert back.jitter_array.shape == (19, 2, 2)
    old = fit.to_dict()
    del old['jitter'], old['jitter_images']  # a fit written before them
    assert MeasurementIntervalFit.from_dict(old).jitter is None
    for bad, message in (([[[1.0, 2.0], [2.0, 1.0]]], 'semi-definite'),
                         ([[1.0, 0.0]], r'\(K, 2, 2\)'),
                         ([[[None, 0.0], [0.0, 1.0]]], 'non-finite')):
        with pytest.raises(InputError, match=message) as info:
            MeasurementIntervalFit.from_dict(dict(fit.to_dict(), jitter=bad),
                                             where='x.json')
        assert "x.json: field 'jitter'" in str(info.value)
