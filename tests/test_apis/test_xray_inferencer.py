# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""XrayInferencer: MMPose's Pose2DInferencer over a folder of DICOM,
MetaImage and PNG files, one prediction per file in sorted order, equal to
predict_landmarks; unreadable files are errors naming them; plain
MMPoseInferencer behaves as docs/api.md says; the docs' example runs."""
import json
import os.path as osp
import re
import shutil
import warnings

import cv2
import numpy as np
import pytest
from test_datasets.test_converters.landmark_files import (write_dicom,
                                                          write_mha)

import mmchh  # noqa: F401
from mmchh.apis import ImageLoadError, read_xray
from mmchh.datasets.image_reader import read_image
from mmchh.datasets.whole_image_box import whole_image_bbox
from mmchh.testing.untrained_tiny_model import write_untrained_tiny_model

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: Sorted file names and (H, W): three sizes, so a wrong order or box
#: would move the predictions.
FILES = (('a.dcm', (32, 40)), ('a.mha', (40, 32)), ('a.png', (36, 36)))


def write_xrays(folder):
    """A 12-bit DICOM and an 8-bit MetaImage with spacing, an 8-bit PNG."""
    rng = np.random.default_rng(1)
    (_, dcm), (_, mha), (_, png) = FILES
    write_dicom(str(folder / 'a.dcm'),
                rng.integers(0, 4096, dcm).astype(np.uint16),
                PixelSpacing=[0.3, 0.2])
    write_mha(str(folder / 'a.mha'),
              rng.integers(0, 256, mha).astype(np.uint8), (0.2, 0.3))
    cv2.imwrite(str(folder / 'a.png'),
                rng.integers(0, 256, png).astype(np.uint8))
    return [str(folder / name) for name, _ in FILES]


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    from mmchh.apis import (XrayInferencer, init_landmark_model,
                            predict_landmarks)
    root = tmp_path_factory.mktemp('xray_inferencer')
    cfg, ckpt = write_untrained_tiny_model(str(root / 'model'))
    folder = root / 'xrays'
    folder.mkdir()
    paths = write_xrays(folder)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # untrained, 12-bit
        ours = predict_landmarks(init_landmark_model(cfg, ckpt), paths)
    inferencer = XrayInferencer(cfg,
                                ckpt,
                                device='cpu',
                                det_model='whole_image')
    return dict(cfg=cfg,
                ckpt=ckpt,
                root=root,
                folder=str(folder),
                paths=paths,
                ours=ours,
                inferencer=inferencer)


def ours_xy(result):
    return [[lm['x'], lm['y']] for lm in result.landmarks]


def test_registered_in_mmpose():
    from mmpose.registry import INFERENCERS

    from mmchh.apis import XrayInferencer
    assert INFERENCERS.get('XrayInferencer') is XrayInferencer


def test_folder_one_prediction_per_file_sorted_as_predict_landmarks(setup):
    results = list(setup['inferencer'](setup['folder'],
                                       return_datasamples=True))
    assert len(results) == len(FILES)
    for result, path, ours in zip(results, setup['paths'], setup['ours']):
        (sample, ) = result['predictions']
        assert sample.metainfo['img_path'] == path
        w, h = read_image(path).size
        np.testing.assert_array_equal(sample.pred_instances.bboxes,
                                      whole_image_bbox(w, h))
        np.testing.assert_allclose(sample.pred_instances.keypoints[0],
                                   ours_xy(ours),
                                   rtol=0,
                                   atol=1e-4)


def test_output_files_and_drawings(setup, tmp_path):
    out = tmp_path / 'out'
    # the drawing is read_xray's grey, which says how 12 bits became 8
    with pytest.warns(UserWarning, match='a.dcm: 16-bit image .* 12-bit'):
        results = list(setup['inferencer'](setup['folder'],
                                           return_vis=True,
                                           kpt_thr=0,
                                           vis_out_dir=str(out / 'vis'),
                                           pred_out_dir=str(out / 'pred')))
        greys = [read_xray(path).grey for path in setup['paths']]
    # whole names where OpenCV cannot write the file: no overwriting
    assert sorted(p.name for p in (out / 'vis').iterdir()) == sorted(
        ['a.dcm.png', 'a.mha.png', 'a.png'])
    assert sorted(p.name for p in (out / 'pred').iterdir()) == sorted(
        ['a.dcm.json', 'a.mha.json', 'a.json'])
    with open(out / 'pred' / 'a.mha.json') as f:
        np.testing.assert_allclose(json.load(f)[0]['keypoints'],
                                   ours_xy(setup['ours'][1]),
                                   rtol=0,
                                   atol=1e-4)
    for result, grey in zip(results, greys):
        (drawing, ) = result['visualization']
        assert drawing.shape == grey.shape + (3, )
        # drawn on the reader's 8-bit grey: untouched pixels are that grey
        same = (drawing == grey[..., None]).all(axis=2)
        assert same.mean() > 0.5


def test_unreadable_files_are_errors_naming_them(setup, tmp_path):
    folder = tmp_path / 'mixed'
    shutil.copytree(setup['folder'], folder)
    (folder / 'notes.txt').write_text('not an x-ray')
    with pytest.raises(ImageLoadError,
                       match=r'notes\.txt: not an image '
                       r'kind mmchh reads'):
        next(setup['inferencer'](str(folder)))  # before any prediction
    (folder / 'notes.txt').unlink()
    (folder / 'broken.dcm').write_bytes(b'not a dicom file')
    with pytest.raises(ImageLoadError, match=r'broken\.dcm: cannot read'):
        list(setup['inferencer'](str(folder)))
    with pytest.raises(ImageLoadError, match=r'missing\.mha: no such file'):
        next(setup['inferencer']([str(folder / 'missing.mha')]))


def test_medical_file_needs_load_full_range_image(setup):
    steps = setup['inferencer'].cfg.test_dataloader.dataset.pipeline
    steps[0]['type'] = 'LoadImage'
    try:
        with pytest.raises(ImageLoadError,
                           match=r'a\.mha: .*LoadFullRangeImage'):
            next(setup['inferencer'](setup['paths'][1]))
    finally:
        steps[0]['type'] = 'LoadFullRangeImage'


def test_plain_mmpose_inferencer_as_documented(setup):
    """PNG: the same prediction; MetaImage: MMPose's mimetypes listing
    fails (docs/api.md, "MMPose's own entry points")."""
    from mmpose.apis import MMPoseInferencer
    plain = MMPoseInferencer(pose2d=setup['cfg'],
                             pose2d_weights=setup['ckpt'],
                             device='cpu',
                             det_model='whole_image')
    (result, ) = list(plain(setup['paths'][2]))
    np.testing.assert_allclose(result['predictions'][0][0]['keypoints'],
                               ours_xy(setup['ours'][2]),
                               rtol=0,
                               atol=1e-4)
    with pytest.raises(AttributeError,
                       match="'NoneType' object has no "
                       "attribute 'split'"):
        list(plain(setup['paths'][1]))


@pytest.mark.filterwarnings('ignore:.*12-bit:UserWarning')
def test_docs_example_runs(setup, tmp_path, monkeypatch):
    """The example of docs/api.md, run on the files above."""
    text = open(osp.join(REPO, 'docs', 'api.md'), encoding='utf-8').read()
    (code, ) = [
        block
        for block in re.findall(r'^```python\n(.*?)^```', text, re.M | re.S)
        if 'XrayInferencer(' in block
    ]
    shutil.copytree(setup['folder'], tmp_path / 'xrays')
    shutil.copy(setup['cfg'], tmp_path / 'my_config.py')
    shutil.copy(setup['ckpt'], tmp_path / 'calibrated.pth')
    monkeypatch.chdir(tmp_path)
    exec(compile(code, 'docs/api.md', 'exec'), {})
    assert sorted(p.name for p in (tmp_path / 'out' /
                                   'predictions').iterdir()) == sorted(
                                       ['a.dcm.json', 'a.mha.json', 'a.json'])
