# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The interval fit on a calibration split's landmark draws: the scores
against a float64 reference written draw by draw, the jitter each image's
score is drawn with (fitted without it), and the small-split rule."""
import copy
import math

import numpy as np
import pytest

from mmchh.calibration.conformal import fit_intervals_from_draws
from mmchh.calibration.conformal.landmark_jitter import (MIN_JITTER_IMAGES,
                                                         draw_residuals,
                                                         fit_landmark_jitter)
from mmchh.calibration.conformal.split_draws import ImageDraws
from mmchh.datasets.ceph_meta import CEPH_LABEL_NAMES
from mmchh.evaluation.functional import ceph_measurements
from mmchh.utils.errors import InputError

K = 19


def to_image(uv):
    """A heatmap -> image map: 2.5 image pixels per heatmap pixel, offset."""
    return np.asarray(uv, np.float64) * 2.5 + np.array([3.0, -1.0])


def make_images(n, seed, num_samples=100):
    """n synthetic calibration images: a plausible head (the demo's mean
    landmarks, jittered), draws around a noisy prediction, the truth."""
    rng = np.random.default_rng(seed)
    base = np.array([[30, 40], [70, 38], [64, 50], [22, 52], [70, 66],
                     [66, 90], [68, 100], [62, 108], [66, 105], [34, 92],
                     [68, 80], [70, 74], [80, 72], [78, 84], [78, 62],
                     [76, 100], [40, 62], [74, 60], [28, 64]], np.float64)
    images = []
    for i in range(n):
        truth = base + rng.normal(0, 1.5, base.shape)
        pred = truth + rng.normal(0, 1.0, base.shape)
        spread = rng.uniform(0.3, 1.5, (K, 2))
        pos = np.rint(pred + rng.normal(size=(num_samples, K, 2)) * spread)
        if i == 1:
            pos[:, 3] = np.nan  # a landmark without a region
        truth_img = to_image(truth)
        if i == 2:
            truth_img[5] = np.nan  # a landmark not annotated
        gen = np.random.default_rng([seed, i, 1])
        gen.random(3)  # "the positions were drawn from it"
        values = ceph_measurements(truth_img, (0.1, 0.1))
        images.append(ImageDraws(
            positions=pos.astype(np.float32), rng=gen,
            heatmap_to_image=to_image, spacing=np.array([0.1, 0.1]),
            truth_heatmap=(truth_img - [3.0, -1.0]) / 2.5,
            truth={m: float(values[m]) for m in CEPH_LABEL_NAMES}))
    return images


def reference_scores(images, jitters):
    """Per name the scores, one draw at a time: each draw's landmarks
    (plus ``z @ sqrtm(J)`` from the image's generator), its measurements,
    then the median and MAD x 1.4826 of each, ``|t - c| / s``."""
    out = {m: [] for m in CEPH_LABEL_NAMES}
    for im, jit in zip(images, jitters):
        pos = im.positions.astype(np.float64)
        if jit is not None:
            z = copy.deepcopy(im.rng).standard_normal(pos.shape)
            roots = []
            for k in range(K):
                w, v = np.linalg.eigh(jit[k])
                roots.append(v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T)
            pos = pos + np.stack([
                np.stack([roots[k] @ z[j, k] for k in range(K)])
                for j in range(len(pos))])
        values = {m: [] for m in CEPH_LABEL_NAMES}
        for j in range(len(pos)):
            one = ceph_measurements(to_image(pos[j]), (0.1, 0.1))
            for m in CEPH_LABEL_NAMES:
                values[m].append(float(one[m]))
        for m in CEPH_LABEL_NAMES:
            v = np.array([x for x in values[m] if math.isfinite(x)])
            t = im.truth[m]
            if not v.size or not math.isfinite(t):
                out[m].append(math.nan)
                continue
            c = float(np.median(v))
            s = 1.482602218505602 * float(np.median(np.abs(v - c)))
            out[m].append(abs(t - c) / s if s > 0 else (
                0.0 if t == c else math.inf))
    return out


def reference_scale(scores, level):
    pooled = sorted(v for s in scores.values() for v in s
                    if not math.isnan(v))
    n = len(pooled)
    for v in pooled:
        if sum(1 for w in pooled if w <= v) >= (n + 1) * level - 1e-9:
            return v, n
    return math.inf, n


@pytest.mark.parametrize('n', [1, 3, MIN_JITTER_IMAGES])
def test_few_images_fit_no_jitter_and_score_the_maps_own_draws(n):
    images = make_images(n, seed=n)
    fit = fit_intervals_from_draws(images, level=0.8, region_level=0.9,
                                   calib_file='calib.json', seed=3)
    assert fit.jitter is None and fit.jitter_images == 0
    scale, count = reference_scale(reference_scores(images, [None] * n), 0.8)
    assert fit.num_scores == count
    assert fit.scale == pytest.approx(scale, rel=1e-9)
    assert (fit.calib_file, fit.region_level, fit.seed) == ('calib.json',
                                                           0.9, 3)


def test_each_image_is_scored_with_the_jitter_fitted_without_it():
    n = MIN_JITTER_IMAGES + 2
    images = make_images(n, seed=0, num_samples=40)
    fit = fit_intervals_from_draws(images, level=0.9)
    stats = [draw_residuals(im.positions, im.truth_heatmap) for im in images]
    e = np.stack([s[0] for s in stats])
    cov = np.stack([s[1] for s in stats])
    # n <= 10 images: leave-one-out
    held_out = [fit_landmark_jitter(np.delete(e, i, 0), np.delete(cov, i, 0))
                for i in range(n)]
    scale, count = reference_scale(reference_scores(images, held_out), 0.9)
    assert fit.jitter_images == n
    np.testing.assert_allclose(fit.jitter_array, fit_landmark_jitter(e, cov),
                               rtol=1e-12, atol=1e-12)
    assert fit.num_scores == count
    assert fit.scale == pytest.approx(scale, rel=1e-9)


def test_nothing_to_fit_is_an_error():
    images = make_images(2, seed=5)
    for im in images:
        im.truth = {m: math.nan for m in CEPH_LABEL_NAMES}
    with pytest.raises(InputError, match='nothing to fit'):
        fit_intervals_from_draws(images)
