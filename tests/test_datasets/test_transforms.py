# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Tests of the augmentation transforms: keypoints must move with the pixels.

The geometric tests draw a small bright blob at each keypoint of a dark
image, run the transform with strong parameters, and check that the blob's
intensity-weighted centre is within 1.5 px of the transformed keypoint. The
parameters are chosen so that keypoints move by several pixels: leaving the
keypoints where they were, or moving them the wrong way, fails.
"""
import copy

import cv2
import numpy as np
import pytest

import mmchh  # noqa: F401  (compat fixes first)
import mmchh.datasets.transforms  # noqa: F401  (registration)
from mmpose.registry import TRANSFORMS

# 160x200 network input; keypoints >= 25 px from the border and >= 30 px
# from each other, at sub-pixel positions
W, H = 160, 200
KPTS = np.array([[30.3, 35.7], [80.6, 30.2], [130.2, 40.5], [40.8, 100.1],
                 [100.4, 95.6], [35.5, 165.3], [90.1, 160.9], [128.7, 150.2]],
                dtype=np.float32)
TOL = 1.5


def blob_image(width, height, kpts, sigma=1.2):
    """uint8 image, black, with a Gaussian blob (peak 255) at each point."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.zeros((height, width))
    for x, y in kpts:
        img = np.maximum(
            img, np.exp(-((xx - x)**2 + (yy - y)**2) / (2 * sigma**2)))
    return np.rint(img * 255).astype(np.uint8)


def blob_center(img, x, y, radius=5):
    """Intensity-weighted centre of the blob in a window around (x, y).

    Returns (inf, inf) when there is no blob in the window.
    """
    img = img.reshape(img.shape[:2]).astype(np.float64)
    x0, y0 = int(round(x)), int(round(y))
    ys = slice(max(y0 - radius, 0), y0 + radius + 1)
    xs = slice(max(x0 - radius, 0), x0 + radius + 1)
    win = img[ys, xs]
    if not win.size or win.max() <= 0:
        return np.array([np.inf, np.inf])
    # suppress the faint tails (and any neighbour) below 20 % of the peak
    weight = np.clip(win - 0.2 * win.max(), 0, None)
    gy, gx = np.mgrid[ys, xs]
    return (np.array([(weight * gx).sum(), (weight * gy).sum()]) /
            weight.sum())


def blob_errors(img, kpts):
    """Distance from each keypoint to the blob centre found around it."""
    return np.array([
        np.hypot(*(blob_center(img, x, y) - np.array([x, y])))
        for x, y in kpts
    ])


def results_at_input(img, kpts):
    """A results dict as after ``TopdownAffine`` (input-space keypoints)."""
    k = kpts[None].astype(np.float32)
    return dict(
        img=img,
        img_shape=img.shape[:2],
        keypoints=k.copy(),
        transformed_keypoints=k.copy(),
        keypoints_visible=np.ones(k.shape[:2], dtype=np.float32),
        input_size=(img.shape[1], img.shape[0]))


def build(**cfg):
    return TRANSFORMS.build(cfg)


# ----------------------------------------------------------------------------
# ElasticDeformation
# ----------------------------------------------------------------------------

# strong field at 160x200: displacement std ~2.5 px (keypoints move by up
# to ~8 px), smooth enough not to fold (max |grad d| 0.2-0.35)
STRONG_ELASTIC = dict(type='ElasticDeformation', alpha=300., sigma=20.)


@pytest.mark.parametrize('noise_step', [None, 1])
@pytest.mark.parametrize('interpolation', ['bilinear', 'bicubic'])
def test_elastic_keypoints_follow_pixels(noise_step, interpolation):
    t = build(
        **STRONG_ELASTIC,
        noise_step=noise_step,
        interpolation=interpolation)
    img = blob_image(W, H, KPTS)
    moved = []
    for seed in range(5):
        np.random.seed(seed)
        out = t(results_at_input(img.copy(), KPTS))
        kpts = out['transformed_keypoints'][0]
        assert kpts.dtype == np.float32 and kpts.shape == KPTS.shape
        errors = blob_errors(out['img'], kpts)
        # measured: <= 0.06 px
        assert errors.max() < TOL and errors.mean() < 0.3, (seed, errors)
        moved.append(np.hypot(*(kpts - KPTS).T))
        # the blob is NOT where the keypoint was before: the check above
        # can fail
        assert blob_errors(out['img'], KPTS).max() > TOL
    moved = np.concatenate(moved)
    # several pixels of motion, so a missing or wrong-sign mapping fails
    assert moved.max() > 5 and np.median(moved) > 2, moved


def test_elastic_wrong_direction_would_fail():
    """The forward map ``k + d(k)`` (a common mistake) is off by ~2|d|."""
    t = build(**STRONG_ELASTIC)
    np.random.seed(3)
    _, alpha, sigma, seed = t._get_params()
    field = t.displacement_field(H, W, alpha, sigma, seed)
    np.random.seed(3)
    out = t(results_at_input(blob_image(W, H, KPTS), KPTS))
    forward = KPTS + t.sample_field(field, KPTS)
    assert blob_errors(out['img'], forward).max() > TOL
    exact = out['transformed_keypoints'][0]
    assert np.allclose(exact + t.sample_field(field, exact), KPTS, atol=1e-3)


def test_elastic_inverse_converges_for_paper_field():
    """Fixed-point residual at the paper's strongest field (640x800)."""
    t = build(type='ElasticDeformation', alpha=500., sigma=30.)
    rng = np.random.default_rng(0)
    points = rng.uniform([0, 0], [640, 800], size=(200, 2))
    for seed in range(5):
        field = t.displacement_field(800, 640, 500., 30., seed)
        p, residual = t.invert(field, points)
        assert residual < 1e-3
        assert np.abs(p + t.sample_field(field, p) - points).max() < 1e-3
        # the points did move
        assert np.abs(p - points).max() > 2


def test_elastic_alpha_zero_is_identity():
    img = blob_image(W, H, KPTS)
    for alpha in (0., (0., 0.)):
        t = build(type='ElasticDeformation', alpha=alpha, sigma=20.)
        results = results_at_input(img.copy(), KPTS)
        out = t(copy.deepcopy(results))
        assert np.array_equal(out['img'], img)
        assert np.array_equal(out['transformed_keypoints'],
                              results['transformed_keypoints'])


def test_elastic_prob_zero_is_identity():
    t = build(**STRONG_ELASTIC, prob=0.)
    img = blob_image(W, H, KPTS)
    out = t(results_at_input(img.copy(), KPTS))
    assert np.array_equal(out['img'], img)
    assert np.array_equal(out['transformed_keypoints'][0], KPTS)


def test_elastic_deterministic_under_numpy_seed():
    t = build(type='ElasticDeformation', alpha=(0., 300.), sigma=(15., 25.))
    img = blob_image(W, H, KPTS)
    outs = []
    for seed in (7, 7, 8):
        np.random.seed(seed)
        outs.append(t(results_at_input(img.copy(), KPTS)))
    assert np.array_equal(outs[0]['img'], outs[1]['img'])
    assert np.array_equal(outs[0]['transformed_keypoints'],
                          outs[1]['transformed_keypoints'])
    assert not np.array_equal(outs[0]['img'], outs[2]['img'])
    assert not np.array_equal(outs[0]['transformed_keypoints'],
                              outs[2]['transformed_keypoints'])


def test_elastic_keeps_visibility_outside_and_nan_points():
    t = build(**STRONG_ELASTIC)
    kpts = np.concatenate(
        [KPTS, [[-8., 100.], [np.nan, np.nan]]]).astype(np.float32)
    results = results_at_input(blob_image(W, H, KPTS), kpts)
    results['keypoints_visible'][0, -1] = 0
    vis = results['keypoints_visible'].copy()
    np.random.seed(0)
    out = t(results)
    k = out['transformed_keypoints'][0]
    assert np.array_equal(out['keypoints_visible'], vis)
    # outside stays outside (not clipped into the image), NaN stays NaN
    assert k[-2, 0] < 0
    assert np.isnan(k[-1]).all()
    assert blob_errors(out['img'], k[:-2]).max() < TOL


def test_elastic_without_transformed_keypoints_moves_keypoints():
    t = build(**STRONG_ELASTIC)
    results = results_at_input(blob_image(W, H, KPTS), KPTS)
    del results['transformed_keypoints']
    np.random.seed(1)
    out = t(results)
    assert 'transformed_keypoints' not in out
    assert blob_errors(out['img'], out['keypoints'][0]).max() < TOL


def test_elastic_no_keypoints_placeholder():
    """TopdownAffine stores a 0-d array when there are no keypoints."""
    t = build(**STRONG_ELASTIC)
    img = blob_image(W, H, KPTS)
    out = t(dict(img=img, transformed_keypoints=np.zeros([])))
    assert out['img'].shape == img.shape
    assert out['transformed_keypoints'].ndim == 0


@pytest.mark.parametrize('shape', [(H, W), (H, W, 1), (H, W, 3)])
def test_elastic_image_shapes_and_lists(shape):
    t = build(**STRONG_ELASTIC, border_mode='reflect')
    img = blob_image(W, H, KPTS).reshape(H, W, -1)
    img = np.repeat(img, shape[2], axis=2) if len(shape) == 3 else img[..., 0]
    np.random.seed(2)
    out = t(dict(img=[img, img.copy()], transformed_keypoints=KPTS[None]))
    a, b = out['img']
    assert a.shape == shape and a.dtype == np.uint8
    assert np.array_equal(a, b)  # one field for every image of a list


def test_elastic_reference_size_scaling():
    """alpha * s**2, sigma * s: displacements scale with the image (by s)."""
    t = build(
        type='ElasticDeformation',
        alpha=500.,
        sigma=30.,
        reference_size=(640, 800))
    assert t._scaled(500., 30., 640, 800) == (500., 30.)
    alpha, sigma = t._scaled(500., 30., 160, 200)
    assert alpha == pytest.approx(500. / 16) and sigma == pytest.approx(7.5)
    big = np.mean([
        t.displacement_field(800, 640, 500., 30., s).std() for s in range(8)
    ])
    small = np.mean([
        t.displacement_field(200, 160, alpha, sigma, s).std()
        for s in range(8)
    ])
    assert 0.2 < small / big < 0.3, (small, big)


def test_elastic_coarse_noise_matches_full_resolution_statistics():
    """The fast (coarse-grid) field has imgaug's std and correlation."""
    fast = build(type='ElasticDeformation', alpha=100., sigma=12.)
    exact = build(
        type='ElasticDeformation', alpha=100., sigma=12., noise_step=1)

    def stats(t):
        stds, corrs = [], []
        for seed in range(12):
            f = t.displacement_field(H, W, 100., 12., seed)[..., 0]
            stds.append(f.std())
            a, b = f[20:-20, 20:-32], f[20:-20, 32:-20]  # lag = sigma
            corrs.append(np.corrcoef(a.ravel(), b.ravel())[0, 1])
        return np.mean(stds), np.mean(corrs)

    (s_fast, c_fast), (s_exact, c_exact) = stats(fast), stats(exact)
    assert s_fast == pytest.approx(s_exact, rel=0.1)
    assert c_fast == pytest.approx(c_exact, abs=0.08)
    # theory for a unit-area Gaussian of white U(-1, 1) noise
    theory = 100. * np.sqrt(1 / 3) / (2 * np.sqrt(np.pi) * 12.)
    assert s_exact == pytest.approx(theory, rel=0.15)


def test_elastic_invalid_args():
    for bad in (dict(alpha=-1.), dict(alpha=(5., 1.)), dict(sigma=0.),
                dict(prob=2.), dict(interpolation='nearest'),
                dict(border_mode='wrap'), dict(noise_step=0),
                dict(reference_size=(0, 800))):
        with pytest.raises(ValueError):
            build(type='ElasticDeformation', **bad)


def test_elastic_repr():
    r = repr(
        build(
            type='ElasticDeformation',
            alpha=(0, 500),
            sigma=30,
            reference_size=(640, 800)))
    assert r.startswith('ElasticDeformation(alpha=(0.0, 500.0), sigma=(30.0,')
    assert 'reference_size=(640, 800)' in r


# ----------------------------------------------------------------------------
# RandomIntensityGamma
# ----------------------------------------------------------------------------


def test_intensity_is_pixel_only_and_matches_formula():
    t = build(type='RandomIntensityGamma')
    img = blob_image(W, H, KPTS)
    for seed in range(4):
        results = results_at_input(img.copy(), KPTS)
        before = copy.deepcopy(results)
        np.random.seed(seed)
        _, factor, gamma = t._get_params()
        assert 0.5 <= factor <= 1.0 and 0.7 <= gamma <= 1.7
        np.random.seed(seed)
        out = t(results)
        for key in ('keypoints', 'transformed_keypoints',
                    'keypoints_visible'):
            assert np.array_equal(out[key], before[key])
        expected = np.rint(255. *
                           (np.clip(img * factor, 0, 255) / 255.)**gamma)
        assert out['img'].dtype == np.uint8
        assert np.abs(out['img'].astype(int) - expected).max() == 0
        # the blobs are still exactly where the keypoints are
        assert blob_errors(out['img'], KPTS).max() < 0.2


def test_intensity_fixed_values_and_dtypes():
    halve = build(
        type='RandomIntensityGamma',
        multiply_range=(0.5, 0.5),
        gamma_range=(1., 1.))
    img = np.array([[0, 100, 200, 255]], np.uint8)
    assert halve(dict(img=img))['img'].tolist() == [[0, 50, 100, 128]]

    square = build(
        type='RandomIntensityGamma',
        multiply_range=(1., 1.),
        gamma_range=(2., 2.))
    f = np.array([[0., 127.5, 255., 300., -4.]], np.float32)
    out = square(dict(img=f))['img']
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0., 63.75, 255., 255., 0.]], rtol=1e-6)
    unit = build(
        type='RandomIntensityGamma',
        multiply_range=(1., 1.),
        gamma_range=(2., 2.),
        max_value=1.)
    np.testing.assert_allclose(
        unit(dict(img=np.float32([[0.5]])))['img'], [[0.25]])
    u16 = np.array([[65535, 0]], np.uint16)
    out16 = halve(dict(img=u16))['img']
    assert out16.dtype == np.uint16 and out16.tolist() == [[32768, 0]]
    # shapes (incl. a trailing singleton channel) are kept
    for shape in ((H, W), (H, W, 1), (H, W, 3)):
        x = np.full(shape, 200, np.uint8)
        assert halve(dict(img=x))['img'].shape == shape


def test_intensity_deterministic_and_prob():
    t = build(type='RandomIntensityGamma')
    img = blob_image(W, H, KPTS)
    np.random.seed(5)
    a = t(dict(img=img.copy()))['img']
    np.random.seed(5)
    b = t(dict(img=img.copy()))['img']
    assert np.array_equal(a, b) and not np.array_equal(a, img)
    off = build(type='RandomIntensityGamma', prob=0.)
    assert np.array_equal(off(dict(img=img.copy()))['img'], img)


def test_intensity_invalid_args_and_repr():
    for bad in (dict(multiply_range=(0., 1.)), dict(gamma_range=(2., 1.)),
                dict(max_value=0.), dict(prob=-0.1)):
        with pytest.raises(ValueError):
            build(type='RandomIntensityGamma', **bad)
    assert repr(build(type='RandomIntensityGamma')) == (
        'RandomIntensityGamma(multiply_range=(0.5, 1.0), '
        'gamma_range=(0.7, 1.7), max_value=255.0, prob=1.0)')


# ----------------------------------------------------------------------------
# UniformRandomBBoxTransform (+ MMPose's TopdownAffine)
# ----------------------------------------------------------------------------


def test_bbox_transform_samples_uniformly():
    t = build(
        type='UniformRandomBBoxTransform',
        shift_factor=(0.1, 0.05),
        scale_factor=(0.9, 1.1),
        rotate_factor=3.)
    np.random.seed(0)
    offset, scale, rotate = t._get_transform_params(20000)
    assert offset.shape == (20000, 2) and scale.shape == (20000, 1)
    assert rotate.shape == (20000, )
    for values, half in ((offset[:, 0], 0.1), (offset[:, 1], 0.05),
                         (scale[:, 0] - 1., 0.1), (rotate, 3.)):
        assert np.abs(values).max() <= half * (1 + 1e-6)
        assert np.abs(values).max() > 0.99 * half
        # uniform: std = half / sqrt(3) = 0.577 * half; MMPose's truncnorm
        # gives 0.538 * half
        assert values.std() == pytest.approx(half / np.sqrt(3), rel=0.02)
    # x and y shifts are independent
    assert abs(np.corrcoef(offset.T)[0, 1]) < 0.05


def test_bbox_transform_probs_and_defaults():
    off = build(
        type='UniformRandomBBoxTransform',
        shift_prob=0.,
        scale_prob=0.,
        rotate_prob=0.)
    offset, scale, rotate = off._get_transform_params(10)
    assert not offset.any() and (scale == 1).all() and not rotate.any()
    t = build(type='UniformRandomBBoxTransform')
    assert t.shift_factor == (10 / 640, 10 / 800)
    assert t.scale_factor == (0.95, 1.05) and t.rotate_factor == 3.
    r = repr(t)
    assert r.startswith('UniformRandomBBoxTransform(') and 'rotate_factor=3.0'
    with pytest.raises(ValueError):
        build(type='UniformRandomBBoxTransform', scale_factor=(1.1, 0.9))


def test_bbox_transform_with_topdown_affine_moves_blobs():
    """Paper-like ranges at a 160x200 input, from a 320x400 image."""
    src_kpts = KPTS * 2
    img = blob_image(2 * W, 2 * H, src_kpts, sigma=2.4)
    jitter = build(
        type='UniformRandomBBoxTransform',
        shift_factor=(10 / W, 10 / H),
        scale_factor=(0.95, 1.05),
        rotate_factor=3.)
    center_scale = build(type='GetBBoxCenterScale', padding=1.0)
    affine = build(type='TopdownAffine', input_size=(W, H))
    deviation = []
    for seed in range(6):
        np.random.seed(seed)
        results = dict(
            img=img.copy(),
            img_shape=img.shape[:2],
            bbox=np.array([[0, 0, 2 * W, 2 * H]], np.float32),
            bbox_score=np.ones(1, np.float32),
            keypoints=src_kpts[None].copy(),
            keypoints_visible=np.ones((1, len(KPTS)), np.float32))
        out = affine(jitter(center_scale(results)))
        kpts = out['transformed_keypoints'][0]
        assert out['img'].shape == (H, W)
        assert blob_errors(out['img'], kpts).max() < TOL
        deviation.append(np.hypot(*(kpts - src_kpts / 2).T).max())
    # shift up to 14 px, rotation 3 deg ~ 5 px at the corners
    assert max(deviation) > 5, deviation


# ----------------------------------------------------------------------------
# The whole training pipeline
# ----------------------------------------------------------------------------


def test_full_pipeline_keypoints_follow_pixels(tmp_path):
    src_kpts = KPTS * 2
    path = str(tmp_path / 'ceph.png')
    cv2.imwrite(path, blob_image(2 * W, 2 * H, src_kpts, sigma=2.4))
    pipeline = [
        build(type='LoadImage', color_type='grayscale'),
        build(type='GetBBoxCenterScale', padding=1.0),
        build(
            type='UniformRandomBBoxTransform',
            shift_factor=(10 / W, 10 / H),
            scale_factor=(0.95, 1.05),
            rotate_factor=3.),
        build(type='TopdownAffine', input_size=(W, H)),
        build(type='RandomIntensityGamma'),
        build(**STRONG_ELASTIC),
        build(
            type='GenerateTarget',
            encoder=dict(
                type='SoftmaxHeatmap', input_size=(W, H),
                heatmap_size=(W, H))),
    ]
    elastic_moved = []
    for seed in range(5):
        np.random.seed(seed)
        results = dict(
            img_path=path,
            bbox=np.array([[0, 0, 2 * W, 2 * H]], np.float32),
            bbox_score=np.ones(1, np.float32),
            keypoints=src_kpts[None].copy(),
            keypoints_visible=np.ones((1, len(KPTS)), np.float32))
        for t in pipeline[:4]:
            results = t(results)
        after_affine = results['transformed_keypoints'][0].copy()
        for t in pipeline[4:]:
            results = t(results)
        kpts = results['transformed_keypoints'][0]
        assert results['img'].shape == (H, W)
        assert results['img'].dtype == np.uint8
        errors = blob_errors(results['img'], kpts)
        # measured: <= 0.07 px
        assert errors.max() < TOL and errors.mean() < 0.3, (seed, errors)
        elastic_moved.append(np.hypot(*(kpts - after_affine).T).max())
        # the target is built from the deformed keypoints
        cell = np.floor(kpts + 0.5).astype(int)
        assert results['heatmap_indices'][0].tolist() == (cell[:, 1] * W +
                                                          cell[:, 0]).tolist()
        assert (results['keypoint_weights'] == 1).all()
    assert max(elastic_moved) > 4, elastic_moved


def test_randomness_is_cacheable():
    """mmcv's ``cache_random_params`` (used by wrappers such as
    ``KeyMapper``) replays the same random draw."""
    from mmcv.transforms.utils import cache_random_params
    img = blob_image(W, H, KPTS)
    for cfg in (STRONG_ELASTIC, dict(type='RandomIntensityGamma')):
        t = build(**cfg)
        with cache_random_params(t):
            a = t(results_at_input(img.copy(), KPTS))
            b = t(results_at_input(img.copy(), KPTS))
        assert np.array_equal(a['img'], b['img'])
        assert np.array_equal(a['transformed_keypoints'],
                              b['transformed_keypoints'])
    jitter = build(type='UniformRandomBBoxTransform')
    bbox = dict(
        bbox_center=np.array([[80., 100.]]),
        bbox_scale=np.array([[160., 200.]]))
    with cache_random_params(jitter):
        a = jitter(copy.deepcopy(bbox))
        b = jitter(copy.deepcopy(bbox))
    assert np.array_equal(a['bbox_center'], b['bbox_center'])
    assert np.array_equal(a['bbox_rotation'], b['bbox_rotation'])
    # subclassing must not leave MMPose's own transform broken
    from mmpose.datasets.transforms import RandomBBoxTransform
    assert RandomBBoxTransform._methods_with_randomness == [
        '_get_transform_params'
    ]
    mmpose_jitter = RandomBBoxTransform()
    with cache_random_params(mmpose_jitter):
        mmpose_jitter(copy.deepcopy(bbox))
