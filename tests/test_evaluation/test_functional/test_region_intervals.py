# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Drawing landmarks within their regions (truncated maps) and the scaled
intervals: against float64 slow references and hand-computed cases."""
import numpy as np
import pytest

from mmchh.datasets.ceph_meta import CEPH_LABEL_NAMES
from mmchh.evaluation.functional import (ceph_measurements, interval_scores,
                                         sample_ceph_measurements,
                                         sample_heatmap_positions,
                                         scaled_intervals, truncate_heatmaps)


def slow_truncate(maps, masks):
    """Loop reference of :func:`truncate_heatmaps`."""
    out = np.zeros(maps.shape)
    ok = np.zeros(len(maps), bool)
    for k in range(len(maps)):
        mass = 0.0
        for y in range(maps.shape[1]):
            for x in range(maps.shape[2]):
                if masks[k, y, x]:
                    mass += float(maps[k, y, x])
        if mass > 0:
            ok[k] = True
            for y in range(maps.shape[1]):
                for x in range(maps.shape[2]):
                    if masks[k, y, x]:
                        out[k, y, x] = float(maps[k, y, x]) / mass
    return out, ok


def test_truncate_matches_slow_reference():
    rng = np.random.default_rng(0)
    maps = rng.random((6, 7, 5)).astype(np.float32)
    maps[2] = 0.0
    maps[2, 3, 3] = 1.0  # its mass lies outside its region below
    masks = rng.random(maps.shape) < 0.4
    masks[2, 3, 3] = False
    masks[4] = False  # an empty region
    got, ok = truncate_heatmaps(maps, masks)
    want, want_ok = slow_truncate(maps, masks)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    assert (ok == want_ok).all() and ok.tolist() == [1, 1, 0, 1, 0, 1]
    assert np.allclose(got[ok].sum(axis=(1, 2)), 1.0)


def test_truncate_hand_case_and_errors():
    maps = np.array([[[0.1, 0.2], [0.3, 0.4]]])
    masks = np.array([[[False, True], [False, True]]])
    got, ok = truncate_heatmaps(maps, masks)
    np.testing.assert_allclose(got[0], [[0, 0.2 / 0.6], [0, 0.4 / 0.6]])
    assert ok.tolist() == [True]
    with pytest.raises(ValueError, match='boolean'):
        truncate_heatmaps(maps, masks.astype(int))
    with pytest.raises(ValueError, match=r'\(K, H, W\)'):
        truncate_heatmaps(maps, masks[:, :1])
    bad = maps.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r'map\(s\) \[0\]'):
        truncate_heatmaps(bad, masks)


def test_draws_stay_in_region_with_truncated_frequencies():
    hm = np.zeros((1, 4, 4))
    hm[0, 0, 0], hm[0, 1, 2], hm[0, 3, 3] = 0.5, 0.3, 0.2
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 1, 2] = mask[0, 3, 3] = True
    n = 100_000
    s = sample_heatmap_positions(truncate_heatmaps(hm, mask)[0], n, seed=1)
    at_a = np.all(s[:, 0] == (2, 1), axis=1)
    at_b = np.all(s[:, 0] == (3, 3), axis=1)
    assert (at_a | at_b).all()  # never outside the region
    # 0.3 / 0.5 = 0.6; binomial sd sqrt(.24 / n) ~ 0.0015
    assert at_a.mean() == pytest.approx(0.6, abs=0.006)


def test_empty_region_voids_its_measurements_only():
    rng = np.random.default_rng(3)
    maps = rng.random((19, 12, 10)) + 0.01
    masks = np.ones(maps.shape, bool)
    masks[4] = False  # L5, A point: used by ANB, SNA, ODI, APDI
    samples = sample_ceph_measurements(maps, 50, seed=0, spacing=0.5,
                                       masks=masks)
    for name in CEPH_LABEL_NAMES:
        nan = np.isnan(samples[name])
        assert nan.all() == (name in ('ANB', 'SNA', 'ODI', 'APDI')), name
    # the full mask draws exactly as no mask does (same uniforms)
    full = sample_ceph_measurements(maps, 50, seed=0, spacing=0.5,
                                    masks=np.ones(maps.shape, bool))
    plain = sample_ceph_measurements(maps, 50, seed=0, spacing=0.5)
    for name in CEPH_LABEL_NAMES:
        np.testing.assert_allclose(full[name], plain[name], rtol=1e-12)


def test_region_draws_match_reference_measurements():
    """Each draw's measurements equal those of its own positions (drawn
    from the loop-reference truncated maps with the same uniforms)."""
    rng = np.random.default_rng(5)
    maps = rng.random((19, 9, 8))
    masks = rng.random(maps.shape) < 0.3
    masks[:, 0, 0] = True
    ref, _ = slow_truncate(maps, masks)
    pos = sample_heatmap_positions(ref, 40, seed=9)
    got = sample_ceph_measurements(maps, 40, seed=9, spacing=(0.2, 0.3),
                                   masks=masks)
    want = ceph_measurements(pos, (0.2, 0.3))
    for name in CEPH_LABEL_NAMES:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12,
                                   equal_nan=True)
    assert masks[np.arange(19)[None], pos[..., 1].astype(int),
                 pos[..., 0].astype(int)].all()


def test_interval_scores_and_scaled_intervals_by_hand():
    center = np.array([10.0, 10.0, 5.0, 5.0, np.nan, 1.0])
    spread = np.array([2.0, 0.5, 0.0, 0.0, 1.0, -1.0])
    truth = np.array([13.0, 9.0, 5.0, 6.0, 1.0, 1.0])
    s = interval_scores(center, spread, truth)
    assert s[:4].tolist() == [1.5, 2.0, 0.0, np.inf]
    assert np.isnan(s[4:]).all()
    lo, hi = scaled_intervals(center, spread, 1.5)
    assert lo[:4].tolist() == [7.0, 9.25, 5.0, 5.0]
    assert hi[:4].tolist() == [13.0, 10.75, 5.0, 5.0]
    assert np.isnan(lo[4:]).all() and np.isnan(hi[4:]).all()
    # the interval holds the truth exactly when the score is <= the scale
    for q in (0.0, 1.5, 2.0, 3.0):
        lo, hi = scaled_intervals(center, spread, q)
        inside = (lo <= truth) & (truth <= hi)
        assert (inside[:4] == (s[:4] <= q)).all()
    lo, hi = scaled_intervals(center, spread, np.inf)
    assert lo[:2].tolist() == [-np.inf, -np.inf] and lo[2] == 5.0
    with pytest.raises(ValueError, match='scale'):
        scaled_intervals(center, spread, -1.0)
    with pytest.raises(ValueError, match='one shape'):
        interval_scores([1.0], [1.0, 2.0], [1.0])


def test_sample_center_spread_by_hand():
    from mmchh.evaluation.functional import sample_center_spread
    draws = np.array([1.0, 2.0, 3.0, 4.0, 5.0, np.nan, 1e6])
    (c, s), = sample_center_spread(dict(a=draws)).values()
    # finite: 1 2 3 4 5 1e6; median 3.5; absolute deviations
    # 2.5 1.5 0.5 0.5 1.5 ~1e6, their median 1.5
    assert c == 3.5 and s == pytest.approx(1.5 * 1.482602218505602)
    # a minority mode (40 % of the draws 60 away) leaves the spread of the
    # majority's unit normal near 1 (the IQR would be ~60 / 1.349)
    majority = np.random.default_rng(1).normal(0, 1, 60_000)
    mixed = np.concatenate([majority, majority[:40_000] + 60])
    (c, s), = sample_center_spread(dict(a=mixed)).values()
    assert s < 3
    rng = np.random.default_rng(0)
    (c, s), = sample_center_spread(dict(a=rng.normal(3, 2, 200_000))).values()
    assert c == pytest.approx(3, abs=0.02) and s == pytest.approx(2, rel=0.01)
    assert np.isnan(sample_center_spread(dict(a=[np.nan]))['a']).all()
