# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The interval fit on a predicted calibration split's draws: by hand and
against a float64 reference written element by element."""
import math

import numpy as np
import pytest

from mmchh.calibration.conformal import fit_intervals_from_draws
from mmchh.utils.errors import InputError


def reference_fit(draws, level):
    """(scale, n, per-name count and coverage): each score |t - c| / s
    computed one at a time (a zero spread: 0 on the center, else inf; any
    NaN: left out), pooled, and the smallest pooled value v with
    #(scores <= v) >= (n + 1) level (inf when none is)."""
    per_name = {}
    for name, rows in draws.items():
        kept = []
        for c, s, t in rows:
            c, s, t = float(c), float(s), float(t)
            if math.isnan(c) or math.isnan(s) or math.isnan(t) or s < 0:
                continue
            if s == 0:
                kept.append(0.0 if t == c else math.inf)
            else:
                kept.append(abs(t - c) / s)
        per_name[name] = kept
    pooled = sorted(v for kept in per_name.values() for v in kept)
    n = len(pooled)
    scale = math.inf
    for v in pooled:
        if sum(1 for w in pooled if w <= v) >= (n + 1) * level - 1e-9:
            scale = v
            break
    per = {
        name: dict(count=len(kept),
                   coverage=(sum(1 for v in kept if v <= scale) / len(kept)
                             if kept else None))
        for name, kept in per_name.items()
    }
    return scale, n, per


def test_fit_by_hand():
    # scores: A 0.5, 2.0, (NaN truth: out); B 0.0 (zero spread, on the
    # center), inf (zero spread, missed), 1.0 -> pooled 0 0.5 1 2 inf
    draws = dict(
        A=[(10.0, 2.0, 11.0), (0.0, 1.5, -3.0), (5.0, 1.0, np.nan)],
        B=[(4.0, 0.0, 4.0), (4.0, 0.0, 4.5), (1.0, 0.25, 1.25)])
    fit = fit_intervals_from_draws(draws, level=0.6, region_level=0.9,
                                   calib_file='calib.json', seed=3)
    # k = ceil(6 * 0.6) = 4: the 4th smallest, 2.0
    assert (fit.num_scores, fit.rank, fit.scale) == (5, 4, 2.0)
    assert fit.per_measurement == dict(
        A=dict(count=2, coverage=1.0), B=dict(count=3, coverage=2 / 3))
    assert (fit.calib_file, fit.region_level, fit.seed) == ('calib.json',
                                                           0.9, 3)
    with pytest.raises(InputError, match='nothing to fit'):
        fit_intervals_from_draws(dict(A=[(1.0, 1.0, np.nan)]))


@pytest.mark.parametrize('seed', range(6))
def test_fit_equals_the_reference_on_random_draws(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 40))
    draws = {}
    for name in ('ANB', 'SNB', 'MW'):
        rows = np.stack([rng.normal(0, 5, n), rng.exponential(1.0, n),
                         rng.normal(0, 5, n)], axis=1)
        rows[rng.random(n) < 0.1, 2] = np.nan  # no truth
        rows[rng.random(n) < 0.1, 1] = 0.0  # no spread
        draws[name] = rows
    level = float(rng.choice([0.5, 0.8, 0.9, 0.95]))
    fit = fit_intervals_from_draws(draws, level=level)
    scale, count, per = reference_fit(draws, level)
    assert fit.num_scores == count
    assert fit.scale == scale  # one of the scores, exactly
    assert fit.per_measurement.keys() == per.keys()
    for name, want in per.items():
        got = fit.per_measurement[name]
        assert got['count'] == want['count']
        assert got['coverage'] == pytest.approx(want['coverage'], abs=1e-12)
