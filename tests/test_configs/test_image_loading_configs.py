"""The X-ray configs read every image kind the converters read.

Every config under configs/ whose datasets are X-rays
(``CephalometricDataset``) loads images with ``LoadFullRangeImage`` in each
pipeline, so 16-bit PNG/TIFF, DICOM and MetaImage/NRRD/NIfTI load as well as
8-bit files (which it loads exactly as MMPose's ``LoadImage``). The
overlays on MMPose's photo configs (COCO, OneHand10K) keep their base's
pipeline unchanged (``test_config_derivation.py``).

End to end, the test pipeline of ``configs/ceph/unet_r34_onehot.py`` turns a
MetaImage and a DICOM into the network input, the same input as the PNG the
converter writes for that file.
"""
import ast
import glob
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmpose.registry import TRANSFORMS
from test_datasets.test_converters.landmark_files import (write_dicom,
                                                          write_mha)

import mmchh  # noqa: F401
from mmchh.datasets.converters.resize import write_png
from mmchh.datasets.image_reader import read_image
from mmchh.datasets.transforms import LoadFullRangeImage

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p
    for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in osp.relpath(p, REPO).split(osp.sep))
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader',
           'calib_dataloader')
LOAD_STEPS = ('LoadImage', 'LoadFullRangeImage')


def _name(path):
    return osp.relpath(path, osp.join(REPO, 'configs'))


def _is_xray(cfg):
    return cfg.train_dataloader.dataset.type == 'CephalometricDataset'


def _is_mmpose_overlay(path):
    """Whether the config, or a local base it derives from, derives from one
    of MMPose's configs (``mmpose::`` in a ``_base_``)."""
    with open(path) as f:
        text = f.read()
    if "'mmpose::" in text:
        return True
    bases = []
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(
                getattr(t, 'id', None) == '_base_' for t in node.targets):
            value = ast.literal_eval(node.value)
            bases = [value] if isinstance(value, str) else list(value)
    return any(
        _is_mmpose_overlay(osp.join(osp.dirname(path), base))
        for base in bases if '::' not in base)


@pytest.mark.parametrize('path', CONFIGS, ids=_name)
def test_xray_configs_load_with_load_full_range_image(path):
    cfg = Config.fromfile(path)
    if not _is_xray(cfg):
        # the photo configs inherit MMPose's pipelines as they are
        assert _is_mmpose_overlay(path), _name(path)
        return
    init_default_scope('mmpose')
    for loader in LOADERS:
        pipeline = cfg[loader].dataset.pipeline
        loads = [t for t in pipeline if t['type'] in LOAD_STEPS]
        assert [t['type'] for t in loads] == ['LoadFullRangeImage'], loader
        # loading comes first: every later step reads the image
        assert pipeline[0] == loads[0], loader
        assert isinstance(TRANSFORMS.build(loads[0]), LoadFullRangeImage)


def test_the_xray_configs_are_found():
    names = {_name(p) for p in CONFIGS if _is_xray(Config.fromfile(p))}
    assert {
        'ceph/unet_r34_onehot.py', 'ceph/unet_r34_multiannotator.py',
        'landmark/unet_r34_onehot.py'
    } <= names


def _raw_files(tmp_path):
    """An 8-bit MetaImage and a 12-bit DICOM, 40x32, with spacing
    (x, y) = (0.2, 0.3) mm in their headers."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (40, 32)).astype(np.uint8)
    mha = str(tmp_path / 'x.mha')
    write_mha(mha, grey, (0.2, 0.3))
    dcm = str(tmp_path / 'x.dcm')
    # PixelSpacing is (row, column) = (y, x)
    write_dicom(dcm,
                rng.integers(0, 4096, (40, 32)).astype(np.uint16),
                PixelSpacing=[0.3, 0.2])
    return dict(mha=mha, dcm=dcm)


def _sample(path, width, height):
    """A test-split record as the dataset gives it: the whole-image box and
    19 annotated points, no spacing of its own."""
    rng = np.random.default_rng(1)
    points = rng.uniform(1, (width - 2, height - 2), (1, 19, 2))
    return dict(img_path=path,
                id=0,
                img_id=0,
                bbox=np.array([[0, 0, width, height]], np.float32),
                bbox_score=np.ones(1, np.float32),
                keypoints=points.astype(np.float32),
                keypoints_visible=np.ones((1, 19), np.float32))


@pytest.mark.parametrize('kind', ['mha', 'dcm'])
def test_ceph_test_pipeline_reads_metaimage_and_dicom(tmp_path, kind):
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'ceph', 'unet_r34_onehot.py'))
    init_default_scope(cfg.default_scope)
    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    raw = _raw_files(tmp_path)[kind]
    # the PNG convert_landmarks writes for this file (8 bits for the
    # MetaImage, 16 for the DICOM)
    png = str(tmp_path / f'{kind}.png')
    write_png(png, read_image(raw).array)

    out = pipeline(_sample(raw, 32, 40))
    inputs = out['inputs']
    assert tuple(inputs.shape) == (3, 800, 640)  # (C, H, W) of the codec
    assert inputs.any()
    meta = out['data_samples'].metainfo
    np.testing.assert_allclose(meta['spacing'], [0.2, 0.3], rtol=1e-6)
    assert tuple(meta['ori_shape']) == (40, 32)
    labels = out['data_samples'].gt_instance_labels
    assert tuple(labels.heatmap_indices.shape) == (1, 19)  # ground truth
    # the raw file and its converted PNG give the model the same input
    converted = pipeline(_sample(png, 32, 40))['inputs']
    assert converted.dtype == inputs.dtype
    assert bool((converted == inputs).all())
