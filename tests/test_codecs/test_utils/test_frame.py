# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""HeatmapFrame against slow float64 references, MMPose's own warp, the
head's mm per heatmap pixel, and one case computed by hand."""
import cv2
import numpy as np
import pytest
import torch
from mmpose.registry import KEYPOINT_CODECS, MODELS
from mmpose.structures import PoseDataSample
from mmpose.structures.bbox import get_warp_matrix

import mmchh  # noqa: F401
from mmchh.codecs.utils import HeatmapFrame
from mmchh.utils.errors import InputError

# heatmap (W, H), input (w, h), box centre, box size, spacing
FRAMES = {
    'full_resolution': ((32, 24), (32, 24), (40.0, 30.0), (64.0, 48.0),
                        (0.1, 0.1)),
    'quarter': ((16, 24), (64, 96), (120.5, 77.0), (100.0, 150.0),
                (0.25, 0.2)),
    'non_exact_ratio': ((30, 27), (100, 90), (51.3, 44.9), (233.0, 209.7),
                        (0.1, 0.12)),
    'anisotropic': ((20, 10), (40, 40), (10.0, -5.0), (30.0, 80.0),
                    (0.3, 0.05)),
}


def make_frame(case):
    heatmap, inp, center, scale, spacing = FRAMES[case]
    return HeatmapFrame(heatmap, inp, center, scale, spacing)


def slow_heatmap_to_image(frame, uv):
    """Point by point in Python floats: heatmap pixel u is the block of
    input pixels [u * s - 0.5, (u + 1) * s - 0.5), whose middle is its
    position; input pixel x lies x * (box / input) from the box's left
    edge, centre - box / 2."""
    out = np.empty_like(np.asarray(uv, np.float64))
    for i, point in enumerate(np.asarray(uv, np.float64).reshape(-1, 2)):
        for a in range(2):
            s = frame.input_size[a] / frame.heatmap_size[a]
            lo, hi = point[a] * s - 0.5, (point[a] + 1) * s - 0.5
            x_in = (lo + hi) / 2
            left = frame.input_center[a] - frame.input_scale[a] / 2
            out.reshape(-1, 2)[i, a] = left + x_in * (
                frame.input_scale[a] / frame.input_size[a])
    return out


@pytest.mark.parametrize('case', list(FRAMES))
def test_random_points_against_slow_reference(case):
    frame = make_frame(case)
    rng = np.random.default_rng(len(case))
    uv = rng.uniform(-2, 40, (7, 3, 2))
    image = frame.heatmap_to_image(uv)
    # the frame divides in float32 as the codec does; the reference does
    # not, hence the relative tolerance of a float32 ratio
    np.testing.assert_allclose(image, slow_heatmap_to_image(frame, uv),
                               rtol=1e-7, atol=1e-5)
    spacing = np.asarray(frame.spacing)
    np.testing.assert_allclose(frame.image_to_mm(image), image * spacing,
                               rtol=1e-15)
    # every round trip comes back
    xy_in = frame.image_to_input(image)
    np.testing.assert_allclose(xy_in, frame.heatmap_to_input(uv),
                               rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(frame.input_to_heatmap(xy_in), uv,
                               rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(frame.input_to_image(xy_in), image,
                               rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize('case', list(FRAMES))
def test_image_to_input_is_mmpose_topdown_warp(case):
    """The input frame is the one TopdownAffine warps the image into."""
    frame = make_frame(case)
    warp = get_warp_matrix(
        np.asarray(frame.input_center, np.float32),
        np.asarray(frame.input_scale, np.float32), 0.0,
        output_size=frame.input_size, fix_aspect_ratio=False)
    pts = np.random.default_rng(3).uniform(-10, 200, (20, 2))
    expected = cv2.transform(pts[None], warp)[0]
    np.testing.assert_allclose(frame.image_to_input(pts), expected,
                               rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    'dtype', [torch.float32, torch.float64, torch.int64],
    ids=['float32', 'float64', 'int64'])
def test_tensors_keep_type_and_match_numpy(dtype):
    frame = make_frame('non_exact_ratio')
    uv = torch.arange(12).reshape(2, 3, 2).to(dtype)
    for method in ('heatmap_to_input', 'input_to_heatmap', 'input_to_image',
                   'image_to_input', 'heatmap_to_image', 'image_to_mm'):
        out = getattr(frame, method)(uv)
        assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 2)
        assert out.dtype == (torch.float32 if dtype == torch.int64 else dtype)
        ref = getattr(frame, method)(uv.numpy())
        assert ref.dtype == np.float64
        np.testing.assert_allclose(out.double().numpy(), ref, rtol=1e-5,
                                   atol=1e-4)


def test_hand_computed():
    # heatmap 4 x 3 on an input of 16 x 12: 4 input pixels per heatmap pixel
    # input 16 x 12 on a box of 32 x 24 centred at (50, 40): 2 image pixels
    # per input pixel, box corner at (34, 28)
    frame = HeatmapFrame((4, 3), (16, 12), (50, 40), (32, 24), (0.1, 0.2))
    assert frame.heatmap_scale.tolist() == [4.0, 4.0]
    # heatmap (0, 0): input centre (1.5, 1.5); image 34 + 3, 28 + 3
    assert frame.heatmap_to_input([0, 0]).tolist() == [1.5, 1.5]
    assert frame.heatmap_to_image([0, 0]).tolist() == [37.0, 31.0]
    assert frame.heatmap_to_image([3, 2]).tolist() == [61.0, 47.0]
    assert frame.image_to_input([34, 28]).tolist() == [0.0, 0.0]
    np.testing.assert_allclose(frame.image_to_mm([37.0, 31.0]), [3.7, 6.2])
    assert frame.input_pixel_size().tolist() == [2.0, 2.0]
    # 4 input px x 2 image px x (0.1, 0.2) mm
    np.testing.assert_allclose(frame.heatmap_pixel_mm(), [0.8, 1.6])


def head_and_codec(heatmap_size, input_size):
    codec = dict(type='SoftmaxHeatmap', input_size=input_size,
                 heatmap_size=heatmap_size)
    head = MODELS.build(
        dict(type='SoftmaxHeatmapHead', in_channels=4, out_channels=2,
             deconv_out_channels=None, deconv_kernel_sizes=None,
             decoder=codec))
    return head, KEYPOINT_CODECS.build(codec)


def slow_heatmap_pixel_mm(codec, meta):
    """mm between the image positions of two neighbouring heatmap pixels,
    along x and along y, on the codec's (float32) grid."""
    out = []
    for a in range(2):
        s = float(codec.scale_factor[a])
        box = float(np.asarray(meta['input_scale'], np.float64)[a])
        size = float(meta['input_size'][a])
        spacing = float(np.broadcast_to(
            np.asarray(meta['spacing'], np.float64), (2, ))[a])
        image = [((u + 0.5) * s - 0.5) * box / size for u in (0, 1)]
        out.append((image[1] - image[0]) * spacing)
    return np.array(out)


@pytest.mark.parametrize(
    'heatmap_size,input_size,box,spacing',
    [((16, 12), (32, 24), (50.0, 37.5), (0.1, 0.1)),
     ((30, 27), (100, 90), (233.3, 209.97), (0.1, 0.12)),
     ((20, 20), (60, 60), (81.0, 81.0), 0.25),
     ((8, 16), (32, 64), (17.0, 34.0), np.float32([0.3, 0.05]))],
    ids=['half', 'non_exact_ratio', 'scalar_spacing', 'float32_spacing'])
def test_heatmap_pixel_mm_is_the_heads(heatmap_size, input_size, box,
                                       spacing):
    head, codec = head_and_codec(heatmap_size, input_size)
    samples = []
    for shift in (0.0, 3.7):
        meta = dict(
            input_center=np.float32([20.0 + shift, 30.0]),
            input_scale=np.float32(box) * np.float32(1 + shift / 10),
            input_size=input_size, spacing=spacing)
        samples.append(PoseDataSample(metainfo=meta))
    heads = head.heatmap_pixel_mm(samples)
    for i, sample in enumerate(samples):
        frame = HeatmapFrame.from_codec(head.decoder, sample.metainfo)
        got = frame.heatmap_pixel_mm()
        assert got.dtype == np.float64 and got.shape == (2, )
        np.testing.assert_allclose(
            got, slow_heatmap_pixel_mm(codec, sample.metainfo), rtol=1e-12)
        assert torch.equal(torch.as_tensor(got, dtype=torch.float32),
                           heads[i, 0])


def test_heatmap_pixel_mm_without_spacing_is_none():
    head, _ = head_and_codec((16, 12), (32, 24))
    meta = dict(input_center=(1.0, 2.0), input_scale=(8.0, 6.0),
                input_size=(32, 24))
    assert head.heatmap_pixel_mm([PoseDataSample(metainfo=meta)]) is None
    assert HeatmapFrame.from_codec(head.decoder, meta).heatmap_pixel_mm() \
        is None


def test_from_codec_reads_metainfo_and_codec():
    _, codec = head_and_codec((16, 12), (32, 24))
    grid = HeatmapFrame.from_codec(codec)
    assert (grid.heatmap_size, grid.input_size) == ((16, 12), (32, 24))
    assert grid.input_center is grid.input_scale is grid.spacing is None
    frame = HeatmapFrame.from_codec(
        codec, dict(input_center=np.float32([3, 4]), input_scale=[8, 6],
                    input_size=(32, 24), spacing=0.5, img_path='x.png'))
    assert frame == HeatmapFrame((16, 12), (32, 24), (3.0, 4.0),
                                 (8.0, 6.0), (0.5, 0.5))


@pytest.mark.parametrize(
    'build,match',
    [(lambda c: HeatmapFrame.from_codec(c).heatmap_to_image([0, 0]),
      'input_center and input_scale'),
     (lambda c: HeatmapFrame.from_codec(
         c, dict(input_center=(0, 0), input_scale=(1, 1))).image_to_mm(
             [0, 0]), 'image_to_mm needs spacing'),
     (lambda c: HeatmapFrame.from_codec(c, dict(spacing=0.1))
      .heatmap_pixel_mm(), 'needs input_scale'),
     (lambda c: HeatmapFrame.from_codec(c, dict(input_size=(64, 48))),
      r"metainfo\['input_size'\] \(64, 48\)"),
     (lambda c: HeatmapFrame.from_codec(object()), 'not a heatmap codec'),
     (lambda c: HeatmapFrame((16, 12), (32, 24), spacing=(0.1, -1)),
      'spacing must be'),
     (lambda c: HeatmapFrame((16, 12), (32, 24), input_scale=(1, 2, 3)),
      'input_scale must be'),
     (lambda c: HeatmapFrame((16, 12.5), (32, 24)), 'heatmap_size'),
     (lambda c: HeatmapFrame((16, 12), (32, 24), input_center=(np.nan, 0)),
      'input_center must be')],
    ids=['no_box', 'no_spacing', 'mm_without_box', 'other_input_size',
         'not_a_codec', 'negative_spacing', 'three_scales',
         'fractional_size', 'nan_center'])
def test_clear_errors(build, match):
    _, codec = head_and_codec((16, 12), (32, 24))
    with pytest.raises(InputError, match=match):
        build(codec)
