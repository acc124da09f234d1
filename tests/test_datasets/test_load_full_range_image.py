"""LoadFullRangeImage: a 12-bit image in a 16-bit PNG uses the full range
(as inference loads it), 8-bit images load exactly as MMPose's LoadImage
loads them."""
import os.path as osp
import warnings

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmpose.registry import TRANSFORMS

import mmchh  # noqa: F401
from mmchh.datasets.transforms.load_full_range_image import \
    sixteen_bit_to_uint8


def load(path, **cfg):
    init_default_scope('mmpose')
    step = TRANSFORMS.build(
        dict(type=cfg.pop('type', 'LoadFullRangeImage'), **cfg))
    return step(dict(img_path=path))['img']


def write_png16(path, top=4095):
    """A ramp 0..top stored in a 16-bit PNG, (H, W) = (16, 256)."""
    ramp = np.linspace(0, top, 256).round().astype(np.uint16)
    img = np.tile(ramp, (16, 1))
    assert cv2.imwrite(path, img)
    return img


@pytest.mark.parametrize('color_type,shape', [('color', (16, 256, 3)),
                                              ('grayscale', (16, 256))],
                         ids=['color', 'grayscale'])
def test_twelve_bit_png_uses_the_full_range(tmp_path, color_type, shape):
    path = str(tmp_path / 'xray16.png')
    raw = write_png16(path)
    plain = load(path, type='LoadImage', color_type=color_type)
    assert plain.max() <= 16  # MMPose's LoadImage: nearly black
    img = load(path, color_type=color_type)
    assert img.shape == shape and img.dtype == np.uint8
    assert img.min() == 0 and img.max() == 255
    grey = img if img.ndim == 2 else img[..., 0]
    np.testing.assert_array_equal(grey, np.round(raw / 4095 * 255))
    if img.ndim == 3:  # grey replicated into 3 identical channels
        assert (img == img[..., :1]).all()
    as_float = load(path, color_type=color_type, to_float32=True)
    assert as_float.dtype == np.float32
    np.testing.assert_array_equal(as_float, img)


@pytest.mark.parametrize('top', [4095, 3000, 65535],
                         ids=['12bit', '12bit_dim', '16bit'])
def test_training_and_inference_load_16_bit_alike(tmp_path, top):
    """The model sees the grey levels mmchh.apis.load_xray gives it."""
    from mmchh.apis import load_xray
    path = str(tmp_path / 'ramp.png')
    write_png16(path, top)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # load_xray names 12-bit files
        expected = load_xray(path)
    np.testing.assert_array_equal(load(path, color_type='grayscale'), expected)


@pytest.mark.parametrize(
    'values,expected', [
        ([0, 4095], [0, 255]),
        ([0, 2048, 4095], [0, 128, 255]),
        ([0, 65535], [0, 255]),
        ([0, 257 * 200], [0, 200]),
        ([257, 257 * 3], [1, 3]),
    ],
    ids=['12bit', '12bit_mid', '16bit', 'widened_8bit', 'widened_low'])
def test_sixteen_bit_to_uint8(values, expected):
    out = sixteen_bit_to_uint8(np.array(values, np.uint16))
    assert out.dtype == np.uint8 and out.tolist() == expected


@pytest.mark.parametrize('name,channels',
                         [('grey8.png', 1), ('colour8.png', 3),
                          ('grey8.jpg', 1), ('colour8.tif', 3)],
                         ids=['png_grey', 'png_colour', 'jpeg', 'tiff'])
@pytest.mark.parametrize('color_type', ['color', 'grayscale'])
def test_eight_bit_images_are_loaded_byte_identically(tmp_path, name, channels,
                                                      color_type):
    rng = np.random.default_rng(0)
    shape = (20, 30) if channels == 1 else (20, 30, 3)
    path = str(tmp_path / name)
    assert cv2.imwrite(path, rng.integers(0, 256, shape, dtype=np.uint8))
    ours = load(path, color_type=color_type)
    theirs = load(path, type='LoadImage', color_type=color_type)
    assert ours.dtype == theirs.dtype == np.uint8
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize('cfg,message', [
    (dict(color_type='unchanged'), 'color_type'),
    (dict(imdecode_backend='pillow'), 'cv2'),
],
                         ids=['color_type', 'backend'])
def test_bad_options_are_refused(cfg, message):
    init_default_scope('mmpose')
    with pytest.raises(ValueError, match=message):
        TRANSFORMS.build(dict(type='LoadFullRangeImage', **cfg))


def test_missing_file_names_it(tmp_path):
    path = osp.join(str(tmp_path), 'nope.png')
    with pytest.raises(Exception, match='nope.png'):
        load(path)


@pytest.mark.parametrize('kind', ['mha', 'dcm'])
def test_header_files_load_through_the_image_reader(tmp_path, kind):
    """A MetaImage or 12-bit DICOM gives load_xray's grey pixels (3 equal
    channels) and its header's spacing, unless the sample has one."""
    from test_datasets.test_converters.landmark_files import (write_dicom,
                                                              write_mha)

    from mmchh.apis import read_xray
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (40, 32)).astype(np.uint8)
    path = str(tmp_path / f'x.{kind}')
    if kind == 'mha':
        write_mha(path, grey, (0.2, 0.3))
    else:  # PixelSpacing is (row, column) = (y, x)
        write_dicom(path, grey.astype(np.uint16) * 16, PixelSpacing=[0.3, 0.2])
    init_default_scope('mmpose')
    step = TRANSFORMS.build(dict(type='LoadFullRangeImage'))
    out = step(dict(img_path=path))
    want = read_xray(path).grey
    assert out['img'].shape == (40, 32, 3) and out['ori_shape'] == (40, 32)
    for c in range(3):
        np.testing.assert_array_equal(out['img'][..., c], want)
    np.testing.assert_allclose(out['spacing'], [0.2, 0.3], rtol=1e-6)
    kept = step(dict(img_path=path, spacing=np.array([1., 1.], np.float32)))
    np.testing.assert_array_equal(kept['spacing'], [1, 1])
    grey_step = TRANSFORMS.build(
        dict(type='LoadFullRangeImage', color_type='grayscale'))
    np.testing.assert_array_equal(grey_step(dict(img_path=path))['img'],
                                  want)


def test_mmpose_inference_topdown_reads_a_metaimage(calibrated_small_demo,
                                                    tmp_path):
    """MMPose's init_model + inference_topdown with the demo config's own
    test pipeline (LoadFullRangeImage) predict a MetaImage exactly as
    predict_landmarks, ERE in mm from its header."""
    from mmengine.config import Config
    from mmpose.apis import inference_topdown, init_model
    from test_datasets.test_converters.landmark_files import write_mha

    from mmchh.apis import init_landmark_model, predict_landmarks
    from mmchh.datasets.whole_image_box import whole_image_bbox
    cfg = Config.fromfile(calibrated_small_demo['cfg'])
    pipeline = cfg.test_dataloader.dataset.pipeline
    assert pipeline[0]['type'] == 'LoadFullRangeImage'
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, (80, 64)).astype(np.uint8)
    path = str(tmp_path / 'x.mha')
    write_mha(path, grey, (0.25, 0.25))
    model = init_model(cfg, calibrated_small_demo['ckpt'], device='cpu')
    # PIL cannot size a MetaImage: the whole-image box is passed
    sample = inference_topdown(model, path, bboxes=whole_image_bbox(64, 80))[0]
    ours = predict_landmarks(
        init_landmark_model(cfg, calibrated_small_demo['ckpt']), path)[0]
    assert ours.spacing_source == 'header'
    np.testing.assert_array_equal(
        sample.pred_instances.keypoints[0],
        np.array([[lm['x'], lm['y']] for lm in ours.landmarks], np.float32))
    np.testing.assert_array_equal(
        sample.pred_instances.keypoint_ere_mm[0],
        np.array([lm['ere_mm'] for lm in ours.landmarks], np.float32))
