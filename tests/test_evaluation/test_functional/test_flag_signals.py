# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What each flag signal catches: recall of erroneous / catastrophic
landmarks and the false-flag rate, by hand and against a slow float64
reference of the image bootstrap (explicit loops over the resampled
images)."""
import math

import numpy as np
import pytest
from scipy import stats

from mmchh.evaluation.functional.bootstrap import bootstrap_indices
from mmchh.evaluation.functional.flag_signals import (FLAG_SIGNAL_RATES,
                                                      flag_signal_intervals,
                                                      flag_signal_rates)

#: 3 images x 4 landmarks: radial errors (mm) and two signals
ERRORS = [[0.5, 3.0, 12.0, 1.0], [2.5, 0.2, 0.3, 15.0], [0.1, 0.4, 5.0, 1.9]]
ERE = [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1]]
IMPLAUSIBLE = [[0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0]]


def test_rates_by_hand():
    """Erroneous (> 2 mm): (0, 1), (0, 2), (1, 0), (1, 3), (2, 2): 5;
    catastrophic (> 10 mm): (0, 2), (1, 3); good: the other 7."""
    error = np.ravel(ERRORS)
    ere, impl = np.ravel(ERE) > 0, np.ravel(IMPLAUSIBLE) > 0
    expected = dict(
        # ERE catches (0, 1), (1, 0), (2, 2); no catastrophic; flags the
        # good (2, 3) (1.9 mm)
        ere=(3 / 5, 0 / 2, 1 / 7),
        # the configuration flag catches both gross misses, and flags the
        # good (2, 1)
        implausible=(2 / 5, 2 / 2, 1 / 7),
        combined=(5 / 5, 2 / 2, 2 / 7))
    for name, flags in (('ere', ere), ('implausible', impl),
                        ('combined', ere | impl)):
        got = flag_signal_rates(flags, error, 2.0, 10.0)
        assert list(got) == list(FLAG_SIGNAL_RATES)
        assert tuple(got.values()) == pytest.approx(expected[name], abs=0,
                                                     rel=1e-15), name


def test_empty_groups_are_nan_not_zero():
    got = flag_signal_rates([True, False], [0.5, 1.0], 2.0, 10.0)
    assert math.isnan(got['erroneous_recall'])
    assert math.isnan(got['catastrophic_recall'])
    assert got['false_flag_rate'] == 0.5


def _slow_interval(flags, error, image, group_of, num_images, resamples,
                   seed, level=0.95, max_failed=0.1):
    """The expanded-percentile image-bootstrap interval of one rate, one
    resample at a time, in float64 Python arithmetic."""
    index = bootstrap_indices(num_images, resamples, seed)
    samples = []
    for row in index:
        caught = total = 0.0
        for i in row:
            for f, e, im in zip(flags, error, image):
                if im == i and group_of(e):
                    caught += float(f)
                    total += 1.0
        samples.append(caught / total if total else math.nan)
    samples = np.array(samples, np.float64)
    ok = np.isfinite(samples)
    if (~ok).sum() > max_failed * resamples:
        return math.nan, math.nan
    alpha = (1 - level) / 2
    t = stats.t.ppf(1 - alpha, num_images - 1)
    tail = stats.norm.cdf(-math.sqrt(num_images / (num_images - 1)) * t)
    low, high = np.quantile(samples[ok], [tail, 1 - tail])
    return float(low), float(high)


def test_intervals_equal_a_slow_reference():
    rng = np.random.default_rng(3)
    num_images, k = 12, 6
    image = np.repeat(np.arange(num_images), k)
    error = rng.exponential(3.0, num_images * k)
    error[rng.choice(error.size, 12, replace=False)] += 10.0
    flags = (error > 2.0) ^ (rng.random(error.size) < 0.25)
    got = flag_signal_intervals(flags, error, 2.0, 10.0, image,
                                num_resamples=200, seed=5)
    groups = dict(erroneous_recall=lambda e: e > 2.0,
                  catastrophic_recall=lambda e: e > 10.0,
                  false_flag_rate=lambda e: e <= 2.0)
    rates = flag_signal_rates(flags, error, 2.0, 10.0)
    for rate, group_of in groups.items():
        low, high = _slow_interval(flags, error, image, group_of,
                                   num_images, 200, 5)
        assert np.isfinite(low), rate
        assert got[rate].low == pytest.approx(low, rel=1e-12), rate
        assert got[rate].high == pytest.approx(high, rel=1e-12), rate
        assert got[rate].estimate == pytest.approx(rates[rate], rel=1e-12)
        assert got[rate].num_images == num_images
