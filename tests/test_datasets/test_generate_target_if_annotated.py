"""GenerateTargetIfAnnotated: the training encoding for annotated samples,
nothing for images without keypoints (inference)."""
import numpy as np
import pytest
from mmpose.datasets.transforms import GenerateTarget
from mmpose.registry import TRANSFORMS

import mmchh  # noqa: F401

CODEC = dict(type='SoftmaxHeatmap', input_size=(32, 24), heatmap_size=(16, 12))


def affine_results(with_keypoints):
    results = dict(
        img=np.zeros((48, 64, 3), np.uint8),
        bbox=np.array([[0, 0, 64, 48]], np.float32),
        bbox_score=np.ones(1, np.float32))
    if with_keypoints:
        results.update(
            keypoints=np.array([[[3.0, 5.0], [40.5, 20.0], [63.0, 47.0]]],
                               np.float32),
            keypoints_visible=np.array([[1.0, 1.0, 0.0]], np.float32))
    for step in (dict(type='GetBBoxCenterScale', padding=1.0),
                 dict(type='TopdownAffine', input_size=(32, 24))):
        results = TRANSFORMS.build(step)(results)
    return results


def test_annotated_sample_is_encoded_as_in_training():
    ours = TRANSFORMS.build(
        dict(type='GenerateTargetIfAnnotated', encoder=CODEC))(
            affine_results(True))
    theirs = GenerateTarget(encoder=CODEC)(affine_results(True))
    # keypoints at half resolution: (3, 5) -> input (1.5, 2.5) -> cell
    # floor((x + 0.5) / 2) = (1, 1); (40.5, 20) -> (20.25, 10) -> (10, 5)
    np.testing.assert_array_equal(ours['heatmap_indices'],
                                  [[1 * 16 + 1, 5 * 16 + 10, 0]])
    np.testing.assert_array_equal(ours['keypoint_weights'], [[1, 1, 0]])
    for key in ('heatmap_indices', 'keypoint_weights', 'heatmap_grid'):
        np.testing.assert_array_equal(ours[key], theirs[key])


def test_image_without_keypoints_passes_through():
    results = affine_results(False)
    # MMPose leaves a placeholder here at inference
    assert 'transformed_keypoints' in results
    with pytest.raises(Exception):
        GenerateTarget(encoder=CODEC)(affine_results(False))
    out = TRANSFORMS.build(
        dict(type='GenerateTargetIfAnnotated', encoder=CODEC))(results)
    assert 'heatmap_indices' not in out
