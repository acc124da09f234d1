# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Pillow opens DICOM and MetaImage files through our reader, so MMPose's
``inference_topdown(model, path)`` without boxes works on them and predicts
exactly what ``predict_landmarks`` predicts."""
import warnings

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError
from test_datasets.test_converters.landmark_files import (write_dicom,
                                                          write_mha)

import mmchh  # noqa: F401  (registers the plugin)
from mmchh.apis import ImageLoadError
from mmchh.apis.pillow_plugin import XRAY_FORMAT
from mmchh.datasets.image_reader import read_image
from mmchh.datasets.whole_image_box import whole_image_bbox
from mmchh.testing.untrained_tiny_model import write_untrained_tiny_model


@pytest.fixture(scope='module')
def xrays(tmp_path_factory):
    """A 32x40 8-bit MetaImage, a 40x32 12-bit DICOM (both with spacing)
    and 24x20 NRRD and NIfTI files."""
    import SimpleITK as sitk
    root = tmp_path_factory.mktemp('pillow_xrays')
    rng = np.random.default_rng(0)
    files = {
        kind: str(root / f'x.{kind}')
        for kind in ('mha', 'dcm', 'nrrd', 'nii.gz')
    }
    write_mha(files['mha'],
              rng.integers(0, 256, (40, 32)).astype(np.uint8), (0.2, 0.3))
    write_dicom(files['dcm'],
                rng.integers(0, 4096, (32, 40)).astype(np.uint16),
                PixelSpacing=[0.3, 0.2])
    small = sitk.GetImageFromArray(
        rng.integers(0, 65536, (20, 24)).astype(np.uint16))
    for kind in ('nrrd', 'nii.gz'):
        sitk.WriteImage(small, files[kind])
    return dict(files, root=root)


@pytest.mark.parametrize('kind,size,mode', [('mha', (32, 40), 'L'),
                                            ('dcm', (40, 32), 'I;16'),
                                            ('nrrd', (24, 20), 'I;16'),
                                            ('nii.gz', (24, 20), 'I;16')])
def test_image_open_gives_the_readers_size_and_pixels(xrays, kind, size, mode):
    im = Image.open(xrays[kind])
    assert (im.format, im.size, im.mode) == (XRAY_FORMAT, size, mode)
    np.testing.assert_array_equal(np.asarray(im),
                                  read_image(xrays[kind]).array)
    assert im.fp is None  # loaded: the file is closed


def test_unreadable_file_is_the_readers_error_naming_it(xrays):
    bad = xrays['root'] / 'broken.dcm'
    bad.write_bytes(b'not a dicom file at all')
    with pytest.raises(ImageLoadError, match='broken.dcm: cannot read DICOM'):
        Image.open(str(bad))
    other = xrays['root'] / 'notes.txt'  # not ours: Pillow's own answer
    other.write_bytes(b'not an image')
    with pytest.raises(UnidentifiedImageError):
        Image.open(str(other))


def test_inference_topdown_without_boxes_equals_predict_landmarks(
        xrays, tmp_path):
    from mmpose.apis import inference_topdown, init_model

    from mmchh.apis import init_landmark_model, predict_landmarks
    cfg, ckpt = write_untrained_tiny_model(str(tmp_path))
    model = init_model(cfg, ckpt, device='cpu')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # untrained, 12-bit
        ours_model = init_landmark_model(cfg, ckpt)
        ours = predict_landmarks(ours_model, [xrays['mha'], xrays['dcm']])
    for path, result in zip((xrays['mha'], xrays['dcm']), ours):
        sample = inference_topdown(model, path)[0]  # no boxes
        w, h = read_image(path).size
        np.testing.assert_array_equal(sample.pred_instances.bboxes,
                                      whole_image_bbox(w, h))
        np.testing.assert_allclose(sample.pred_instances.keypoints[0],
                                   [[lm['x'], lm['y']]
                                    for lm in result.landmarks],
                                   rtol=0,
                                   atol=1e-4)
