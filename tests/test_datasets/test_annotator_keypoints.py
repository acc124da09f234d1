"""Annotators' points follow the image through the real augmentation."""
import numpy as np
import pytest
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

import mmchh  # noqa: F401


def _results(rng, k=6, w=96, h=128):
    gt = np.stack([rng.uniform(5, w - 5, k), rng.uniform(5, h - 5, k)], -1)
    return dict(
        img=rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
        img_shape=(h, w),
        ori_shape=(h, w),
        img_path='fake/001.bmp',
        bbox=np.array([[0, 0, w, h]], np.float32),
        bbox_score=np.ones(1, np.float32),
        keypoints=gt[None].astype(np.float32),
        keypoints_visible=np.ones((1, k), np.float32),
        annotator_keypoints=dict(
            senior=(gt + rng.normal(0, 2, gt.shape)).astype(np.float32),
            junior=(gt + rng.normal(0, 2, gt.shape)).astype(np.float32)))


def test_annotators_move_exactly_like_the_ground_truth():
    """Running the pipeline with an annotator's points as the ground truth
    gives the same points as carrying them along as annotator points."""
    init_default_scope('mmpose')
    steps = [
        dict(type='GetBBoxCenterScale', padding=1.0),
        dict(type='UniformRandomBBoxTransform',
             shift_factor=(0.05, 0.05), scale_factor=(0.9, 1.1),
             rotate_factor=10.0),
        dict(type='TopdownAffine', input_size=(64, 96)),
        dict(type='ElasticDeformation', reference_size=(64, 96),
             alpha=(200, 300), sigma=10),
    ]
    carried = Compose([dict(type='AttachAnnotatorKeypoints')] + steps +
                      [dict(type='DetachAnnotatorKeypoints')])
    plain = Compose(steps)
    rng = np.random.default_rng(0)
    base = _results(rng)
    np.random.seed(5)
    out = carried(dict(base))
    assert out['keypoints'].shape == (1, 6, 2)
    assert out['transformed_keypoints'].shape == (1, 6, 2)
    assert out['keypoints_visible'].shape == (1, 6)
    pts = out['transformed_annotator_keypoints']
    assert pts.shape == (1, 2, 6, 2)  # sorted names: junior, senior
    for a, name in enumerate(['junior', 'senior']):
        alone = dict(base)
        alone['keypoints'] = base['annotator_keypoints'][name][None]
        np.random.seed(5)  # the same random warp
        ref = plain(alone)
        np.testing.assert_allclose(pts[0, a], ref['transformed_keypoints'][0],
                                   atol=1e-3)
    np.random.seed(5)
    ref = plain(dict(base))
    np.testing.assert_allclose(out['transformed_keypoints'],
                               ref['transformed_keypoints'], atol=1e-3)


def test_clear_errors():
    init_default_scope('mmpose')
    attach = Compose([dict(type='AttachAnnotatorKeypoints')])
    rng = np.random.default_rng(1)
    r = _results(rng)
    r['annotator_keypoints'] = {}
    with pytest.raises(KeyError, match='fake/001.bmp'):
        attach(r)
    picky = Compose([dict(type='AttachAnnotatorKeypoints',
                          annotators=['senior', 'resident'])])
    with pytest.raises(KeyError, match='resident'):
        picky(_results(rng))
    with pytest.raises(KeyError, match='without AttachAnnotatorKeypoints'):
        Compose([dict(type='DetachAnnotatorKeypoints')])(_results(rng))
