# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The whole-image box: the affine MMPose builds from it, against a float64
reference and by hand, and the dataset giving that box."""
import copy
import json
import os.path as osp

import numpy as np
import pytest
from mmpose.datasets.transforms import GetBBoxCenterScale, TopdownAffine

import mmchh  # noqa: F401
from mmchh.datasets import CephalometricDataset
from mmchh.datasets.data_checks import DatasetError
from mmchh.datasets.whole_image_box import whole_image_bbox


def reference_image_to_input(points, image_size, input_size):
    """The affine the whole-image box should give, the slow obvious way in
    float64: box [0, 0, w, h] widened about its centre to the input's
    aspect, its centre sent to the input's centre (W / 2, H / 2) and its
    width to W."""
    (w, h), (in_w, in_h) = image_size, input_size
    cx, cy, bw, bh = w / 2.0, h / 2.0, float(w), float(h)
    aspect = in_w / in_h
    if bw > bh * aspect:
        bh = bw / aspect
    else:
        bw = bh * aspect
    out = []
    for x, y in points:
        out.append(((x - cx) * in_w / bw + in_w / 2.0,
                    (y - cy) * in_h / bh + in_h / 2.0))
    return np.array(out, dtype=np.float64)


def mmpose_affine(image_size, input_size, points):
    """``points`` (N, 2) of the image through MMPose's GetBBoxCenterScale
    and TopdownAffine with the whole-image box; also the results dict."""
    w, h = image_size
    pts = np.asarray(points, np.float32)[None]
    results = dict(bbox=whole_image_bbox(w, h), keypoints=pts,
                   keypoints_visible=np.ones(pts.shape[:2], np.float32),
                   img=np.zeros((h, w, 3), np.uint8), img_shape=(h, w))
    results = GetBBoxCenterScale(padding=1.0)(results)
    results = TopdownAffine(input_size=input_size)(results)
    return results, np.asarray(results['transformed_keypoints'][0],
                               np.float64)


@pytest.mark.parametrize('image_size, input_size', [
    ((128, 160), (128, 160)),
    ((64, 96), (64, 96)),
    ((100, 120), (64, 96)),
    ((1935, 2400), (1952, 2400)),
], ids=['same_size', 'small_same_size', 'resized', 'native_widened'])
def test_box_affine_matches_float64_reference(image_size, input_size):
    w, h = image_size
    pts = np.array([[0, 0], [w - 1, h - 1], [w / 3.0, h / 7.0], [w, h]])
    _, got = mmpose_affine(image_size, input_size, pts)
    want = reference_image_to_input(pts, image_size, input_size)
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_box_by_hand_identity_at_the_input_size():
    """128x160 into 128x160: centre (64, 80), scale (128, 160), the warp is
    the identity (the clipped box [0, 0, 127, 159] would give centre
    (63.5, 79.5), scale (127.2, 159): a resampling)."""
    np.testing.assert_array_equal(whole_image_bbox(128, 160),
                                  [[0, 0, 128, 160]])
    pts = [[0, 0], [10, 20], [127, 159]]
    results, got = mmpose_affine((128, 160), (128, 160), pts)
    np.testing.assert_array_equal(results['bbox_center'], [[64, 80]])
    np.testing.assert_array_equal(results['bbox_scale'], [[128, 160]])
    np.testing.assert_allclose(got, pts, atol=1e-4)
    # half size: pixel (10, 20) of the image -> (5, 10) of the input
    _, half = mmpose_affine((128, 160), (64, 80), [[10, 20]])
    np.testing.assert_allclose(half, [[5, 10]], atol=1e-5)


@pytest.mark.parametrize('size', [(0, 5), (5, -1)], ids=['zero', 'negative'])
def test_box_refuses_an_empty_image(size):
    with pytest.raises(ValueError, match='must be positive'):
        whole_image_bbox(*size)


def _dataset(data_root, ann_file):
    return CephalometricDataset(data_root=data_root, ann_file=ann_file,
                                data_prefix=dict(img=''),
                                test_mode=True, pipeline=[])


def test_dataset_gives_the_whole_image_box(ceph_coco_small):
    ds = _dataset(ceph_coco_small, 'test1.json')
    with open(osp.join(ceph_coco_small, 'test1.json')) as f:
        sizes = {im['id']: (im['width'], im['height'])
                 for im in json.load(f)['images']}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        np.testing.assert_array_equal(info['bbox'],
                                      whole_image_bbox(*sizes[info['img_id']]))


def test_dataset_refuses_a_box_that_is_not_the_whole_image(
        ceph_coco_small, tmp_path):
    with open(osp.join(ceph_coco_small, 'test1.json')) as f:
        data = json.load(f)
    bad = copy.deepcopy(data)
    bad['annotations'][0]['bbox'] = [2, 3, 40, 50]
    ann = tmp_path / 'tight.json'
    ann.write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match=r'"bbox" must be the whole image'):
        _dataset(ceph_coco_small, str(ann))
