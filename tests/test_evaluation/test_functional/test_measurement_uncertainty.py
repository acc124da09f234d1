# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Sampling landmark positions from probability maps and carrying them
through the measurements: one-hot maps, known distributions, coverage."""
import math

import numpy as np
import pytest

from mmchh.datasets.ceph_meta import CEPH_LABEL_NAMES
from mmchh.evaluation.functional import (ceph_measurements, classify_ceph,
                                         interval_coverage,
                                         sample_ceph_measurements,
                                         sample_heatmap_positions,
                                         summarize_measurement_samples)

H, W = 24, 20


def one_hot_maps(points, h=H, w=W):
    maps = np.zeros((len(points), h, w))
    for k, (x, y) in enumerate(points):
        maps[k, int(y), int(x)] = 1.0
    return maps


def head_points(rng, h=H, w=W):
    """19 distinct integer pixels (distinct, so no angle is undefined)."""
    flat = rng.choice(h * w, 19, replace=False)
    return np.stack([flat % w, flat // w], axis=1).astype(np.float64)


def test_one_hot_maps_give_the_pixel_every_time():
    pts = head_points(np.random.default_rng(0))
    s = sample_heatmap_positions(one_hot_maps(pts), 500, seed=1)
    assert s.shape == (500, 19, 2) and s.dtype == np.float64
    assert (s == pts[None]).all()


def test_one_hot_maps_give_zero_width_intervals():
    pts = head_points(np.random.default_rng(1))
    spacing = (0.3, 0.3)
    samples = sample_ceph_measurements(one_hot_maps(pts), 300, seed=0,
                                       spacing=spacing)
    point = {k: float(v) for k, v in ceph_measurements(pts, spacing).items()}
    summary = summarize_measurement_samples(samples, point)
    for name in CEPH_LABEL_NAMES:
        e = summary[name]
        assert e['std'] == pytest.approx(0.0, abs=1e-9)
        assert e['ci95'][0] == e['ci95'][1] == pytest.approx(point[name])
        assert e['mean'] == pytest.approx(point[name])
        cls = int(classify_ceph(name, point[name]))
        assert e['most_likely_class'] == e['value_class'] == cls
        assert e['class_probabilities'][str(cls)] == 1.0
        assert sum(e['class_probabilities'].values()) == pytest.approx(1.0)
        assert e['num_valid'] == 300


def test_two_point_map_frequencies():
    hm = np.zeros((2, 5, 7))
    hm[0, 1, 2], hm[0, 3, 6] = 0.3, 0.7
    hm[1, 4, 0] = 5.0  # unnormalised is fine
    n = 200_000
    s = sample_heatmap_positions(hm, n, seed=123)
    at_b = np.all(s[:, 0] == (6, 3), axis=1)
    at_a = np.all(s[:, 0] == (2, 1), axis=1)
    assert (at_a | at_b).all()  # zero-probability pixels are never drawn
    # binomial standard error sqrt(.21 / n) ~ 0.001
    assert at_b.mean() == pytest.approx(0.7, abs=0.005)
    assert (s[:, 1] == (0, 4)).all()


def test_separable_gaussian_moments():
    """Sample moments match the map's exact moments (within 4 standard
    errors), for a discretised Gaussian that is clipped by the border."""
    h, w = 40, 50
    mx, my, sx, sy = 31.3, 12.6, 4.0, 2.5
    u, v = np.arange(w), np.arange(h)
    px = np.exp(-0.5 * ((u - mx) / sx)**2)
    py = np.exp(-0.5 * ((v - my) / sy)**2)
    hm = (py[:, None] * px[None, :])[None]
    px, py = px / px.sum(), py / py.sum()
    mean_x, mean_y = (u * px).sum(), (v * py).sum()
    var_x = ((u - mean_x)**2 * px).sum()
    var_y = ((v - mean_y)**2 * py).sum()
    n = 100_000
    s = sample_heatmap_positions(hm, n, seed=7)[:, 0]
    assert s[:, 0].mean() == pytest.approx(mean_x,
                                           abs=4 * math.sqrt(var_x / n))
    assert s[:, 1].mean() == pytest.approx(mean_y,
                                           abs=4 * math.sqrt(var_y / n))
    # the variance of a sample variance of a Gaussian is ~ 2 var^2 / n
    assert s[:, 0].var() == pytest.approx(var_x,
                                          abs=4 * var_x * math.sqrt(2 / n))
    assert s[:, 1].var() == pytest.approx(var_y,
                                          abs=4 * var_y * math.sqrt(2 / n))
    # independent coordinates: no correlation
    assert abs(np.corrcoef(s[:, 0], s[:, 1])[0, 1]) < 4 / math.sqrt(n)


def test_seeds_reproduce_and_differ():
    hm = np.random.default_rng(0).random((3, 6, 6))
    a = sample_heatmap_positions(hm, 100, seed=5)
    b = sample_heatmap_positions(hm, 100, seed=5)
    c = sample_heatmap_positions(hm, 100, seed=6)
    assert (a == b).all() and not (a == c).all()
    gen = np.random.default_rng(5)
    assert (sample_heatmap_positions(hm, 100, seed=gen) == a).all()


def test_within_pixel_draws_the_same_pixels_and_fills_them():
    """Within-pixel draws choose the pixels the centre draws choose (same
    seed) and fill each pixel's square uniformly: the slow reference is the
    per-axis uniform on [c - 0.5, c + 0.5) around the drawn centre."""
    hm = np.random.default_rng(2).random((3, 6, 5)) ** 4
    centres = sample_heatmap_positions(hm, 40_000, seed=9)
    points = sample_heatmap_positions(hm, 40_000, seed=9, within_pixel=True)
    assert points.shape == centres.shape and points.dtype == np.float64
    offset = points - centres
    assert ((offset >= -0.5) & (offset < 0.5)).all()
    assert (np.floor(points + 0.5) == centres).all()
    # uniform offsets: mean 0, variance 1/12 per axis (4 standard errors)
    n = offset.shape[0]
    assert np.abs(offset.mean(axis=0)).max() < 4 * math.sqrt(1 / 12 / n)
    assert np.abs(offset.var(axis=0) - 1 / 12).max() < 4 * math.sqrt(
        1 / 180 / n)


def test_within_pixel_one_hot_interval_is_the_pixel_not_a_point():
    """A one-hot map: centre draws give a zero-width measurement, within-
    pixel draws a width set by the pixel (hand case: the distance of two
    one-hot landmarks 10 px apart along x spreads by the difference of two
    uniforms, std sqrt(2/12) px)."""
    pts = head_points(np.random.default_rng(3))
    maps = one_hot_maps(pts)
    points = sample_heatmap_positions(maps, 50_000, seed=4,
                                      within_pixel=True)
    dx = points[:, 1, 0] - points[:, 0, 0]
    want = pts[1, 0] - pts[0, 0]
    assert dx.mean() == pytest.approx(want, abs=0.01)
    assert dx.std() == pytest.approx(math.sqrt(2 / 12), rel=0.02)
    samples = sample_ceph_measurements(maps, 2000, seed=0, spacing=(0.3, 0.3),
                                       within_pixel=True)
    point = ceph_measurements(pts, (0.3, 0.3))
    for name in CEPH_LABEL_NAMES:
        assert np.std(samples[name]) > 0, name
        assert np.median(samples[name]) == pytest.approx(
            float(point[name]), abs=3 * np.std(samples[name])), name


def test_bad_maps_raise():
    with pytest.raises(ValueError, match=r'map\(s\) \[1\]'):
        sample_heatmap_positions(np.stack([np.ones((3, 3)),
                                           np.zeros((3, 3))]), 10)
    bad = np.ones((1, 3, 3))
    bad[0, 0, 0] = -1
    with pytest.raises(ValueError, match='non-negative'):
        sample_heatmap_positions(bad, 10)
    with pytest.raises(ValueError, match='num_samples'):
        sample_heatmap_positions(np.ones((1, 3, 3)), 0)
    with pytest.raises(ValueError, match=r'\(K, H, W\)'):
        sample_heatmap_positions(np.ones((3, 3)), 5)


def test_heatmap_to_image_and_spacing_are_applied():
    pts = head_points(np.random.default_rng(2))
    samples = sample_ceph_measurements(
        one_hot_maps(pts), 5, heatmap_to_image=lambda uv: uv * 4 + 1.5,
        spacing=0.1)
    expect = ceph_measurements(pts * 4 + 1.5, 0.1)
    for name in CEPH_LABEL_NAMES:
        assert samples[name] == pytest.approx(np.full(5, expect[name]))


def test_mw_without_spacing_summarises_to_none():
    pts = head_points(np.random.default_rng(3))
    samples = sample_ceph_measurements(one_hot_maps(pts), 20)
    summary = summarize_measurement_samples(samples)
    mw = summary['MW']
    assert mw['num_valid'] == 0 and mw['mean'] is None
    assert mw['ci95'] is None and mw['class_probabilities'] is None
    assert mw['unit'] == 'mm' and mw['value'] is None
    assert summary['SNA']['num_valid'] == 20


def test_class_probabilities_of_a_known_spread():
    """MW from an upper incisor tip that sits at two places: the class
    probabilities are the two places' probabilities."""
    pts = head_points(np.random.default_rng(4), h=30, w=30)
    pts[10] = (10, 10)  # lower incisal incision
    maps = one_hot_maps(pts, 30, 30)
    maps[11] = 0
    maps[11, 10, 13] = 0.25  # 3 px ahead -> MW = +3 mm (class 1)
    maps[11, 10, 6] = 0.75  # 4 px behind -> MW = -4 mm (class 3)
    samples = sample_ceph_measurements(maps, 40_000, seed=0, spacing=1.0)
    e = summarize_measurement_samples(samples)['MW']
    assert e['class_probabilities']['1'] == pytest.approx(0.25, abs=0.01)
    assert e['class_probabilities']['3'] == pytest.approx(0.75, abs=0.01)
    assert e['class_probabilities']['2'] == e['class_probabilities'][
        '4'] == 0.0
    assert e['most_likely_class'] == 3
    assert e['ci95'] == [-4.0, 3.0]
    assert e['mean'] == pytest.approx(0.25 * 3 - 0.75 * 4, abs=0.1)


def test_interval_coverage_toy():
    lo = [0.0, 0.0, 0.0, 0.0, np.nan]
    hi = [1.0, 1.0, 1.0, 1.0, 1.0]
    truth = [0.0, 1.0, 0.5, 1.5, 0.5]  # bounds count as inside
    r = interval_coverage(lo, hi, truth)
    assert r == dict(coverage=0.75, count=4, mean_width=1.0)
    assert interval_coverage([None], [None], [1.0])['count'] == 0
    with pytest.raises(ValueError, match='one shape'):
        interval_coverage([0.0], [1.0, 2.0], [0.5])


def test_calibrated_maps_cover_95_percent():
    """When the truth is drawn from the same maps the intervals come from
    (perfect calibration), 95 % intervals cover the truth ~95 % of the
    time; an overconfident one-hot map covers far less."""
    rng = np.random.default_rng(11)
    trials, h, w = 300, 32, 32
    u, v = np.arange(w), np.arange(h)
    covered = {name: [] for name in ('SNA', 'FHI', 'MW')}
    sharp = []
    for t in range(trials):
        centres = np.stack([rng.uniform(6, w - 7, 19),
                            rng.uniform(6, h - 7, 19)], axis=1)
        maps = np.exp(-0.5 * (((u[None, None, :] - centres[:, 0, None, None])
                               / 1.5)**2 +
                              ((v[None, :, None] - centres[:, 1, None, None])
                               / 1.5)**2))
        truth_pts = sample_heatmap_positions(maps, 1, seed=rng)[0]
        truth = ceph_measurements(truth_pts, 1.0)
        samples = sample_ceph_measurements(maps, 2000, seed=rng,
                                           spacing=1.0)
        summary = summarize_measurement_samples(samples)
        for name in covered:
            lo, hi = summary[name]['ci95']
            covered[name].append((lo, hi, truth[name]))
        # an overconfident model: every map a one-hot at its mode
        modes = np.rint(centres)
        point = ceph_measurements(modes, 1.0)['SNA']
        sharp.append((point, point, truth['SNA']))
    for name, rows in covered.items():
        lo, hi, tr = np.array(rows).T
        cov = interval_coverage(lo, hi, tr)
        # binomial sd at n=300 is 0.0126; allow ~4 sd
        assert cov['coverage'] == pytest.approx(0.95, abs=0.05), (name, cov)
    lo, hi, tr = np.array(sharp).T
    assert interval_coverage(lo, hi, tr)['coverage'] < 0.2


def test_interval_coverage_bootstrap_interval_by_hand():
    from mmchh.evaluation.functional import (BootstrapOptions,
                                             bootstrap_mean,
                                             interval_coverage)

    # image 2 has no truth (left out); inside: images 0, 1, 3 -> 1, 0, 1
    lower = np.array([0.0, 0.0, 0.0, 1.0])
    upper = np.array([2.0, 1.0, 2.0, 3.0])
    truth = np.array([1.0, 5.0, np.nan, 3.0])
    plain = interval_coverage(lower, upper, truth)
    assert 'coverage_low' not in plain
    out = interval_coverage(lower, upper, truth, num_resamples=200, seed=3)
    assert out['coverage'] == pytest.approx(2 / 3) and out['count'] == 3
    # the image without truth is resampled too, holding no valid entry
    ref = bootstrap_mean(np.array([1.0, 0.0, 0.0, 1.0]),
                         valid=np.array([True, True, False, True]),
                         options=BootstrapOptions(num_resamples=200, seed=3))
    assert (out['coverage_low'], out['coverage_high']) == (ref.low, ref.high)
    assert 0.0 <= out['coverage_low'] <= 2 / 3 <= out['coverage_high'] <= 1
    none = interval_coverage([np.nan], [1.0], [0.5], num_resamples=10)
    assert none['count'] == 0 and np.isnan(none['coverage_low'])
