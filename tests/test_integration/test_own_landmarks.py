"""From a user's own annotated X-rays to a trained, calibrated and tested
model, through the tools a user runs: labelme JSONs of two annotators
(K = 5, one landmark missing for one annotator), 16-bit PNG images and
MetaImages with a header spacing, converted by convert_landmarks; the
config written by tools/landmark_config.py; a real Runner trains one step
through tools/train.py (tiny input via --cfg-options), calibrates, and
tools/test.py evaluates the calibrated checkpoint on the test split;
tools/infer.py predicts the named landmarks on new 16-bit images and its
labelme files go back in through convert_landmarks (the review loop)."""
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
from conftest import as_cli_options, small_ceph_options
from test_datasets.test_converters.landmark_files import (write_labelme,
                                                          write_mha)

from mmchh.datasets.converters import convert_landmarks
from mmchh.testing import load_tool

NAMES = ('sella', 'nasion', 'menton', 'gonion', 'pogonion')
SIZE = (64, 64)  # (w, h) of the images and of the network input
NUM_IMAGES = 10
MHA_STEMS = {'009': (0.2, 0.25), '010': (0.3, 0.3)}
MISSING = ('003', 'dr_b', 'gonion')


def xray16(points, rng):
    """A 12-bit image (0..4095) in 16 bits with a bright spot per point."""
    img = rng.integers(200, 800, SIZE[::-1]).astype(np.float64)
    yy, xx = np.mgrid[:SIZE[1], :SIZE[0]]
    for x, y in points:
        img += 3000 * np.exp(-((xx - x)**2 + (yy - y)**2) / 8)
    return np.clip(img, 0, 4095).astype(np.uint16)


def write_own_set(root):
    """images/NNN.{png,mha} and dr_a/, dr_b/ labelme JSONs."""
    rng = np.random.default_rng(0)
    os.makedirs(osp.join(root, 'images'))
    for i in range(1, NUM_IMAGES + 1):
        stem = f'{i:03d}'
        truth = rng.uniform(8, SIZE[0] - 8, (len(NAMES), 2))
        pixels = xray16(truth, rng)
        if stem in MHA_STEMS:
            write_mha(osp.join(root, 'images', f'{stem}.mha'), pixels,
                      MHA_STEMS[stem])
        else:
            assert cv2.imwrite(osp.join(root, 'images', f'{stem}.png'), pixels)
        for annotator in ('dr_a', 'dr_b'):
            os.makedirs(osp.join(root, annotator), exist_ok=True)
            points = {
                n: p + rng.normal(0, 0.5, 2)
                for n, p in zip(NAMES, truth)
                if (stem, annotator, n) != MISSING
            }
            write_labelme(osp.join(root, annotator, f'{stem}.json'),
                          points,
                          size=SIZE)


@pytest.fixture(scope='module')
def own_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('own')
    root, out = str(tmp / 'xrays'), str(tmp / 'own_coco')
    write_own_set(root)
    summary = convert_landmarks(
        out,
        osp.join(root, 'images'),
        NAMES,
        labelme={a: osp.join(root, a)
                 for a in ('dr_a', 'dr_b')},
        spacing=0.1,
        skip_bad=True,
        test_fraction=0.2,
        num_val=2,
        num_calib=2,
        progress=False)
    config = str(tmp / 'own_unet_r34_onehot.py')
    assert load_tool('landmark_config').main([out, config]) == 0

    opts = small_ceph_options(out, epochs=1, size=SIZE)
    # the 4 training images in one batch: one optimizer step
    opts['train_dataloader.batch_size'] = summary.images_per_split['train']
    opts['visualizer.name'] = 'vis_own_landmarks'
    work = str(tmp / 'work')
    assert load_tool(
        'train').main([config, '--work-dir', work, '--cfg-options'] +
                      as_cli_options(opts)) == 0
    metrics_json = str(tmp / 'test' / 'metrics.json')
    opts['visualizer.name'] = 'vis_own_landmarks_test'
    assert load_tool('test').main([
        config,
        osp.join(work, 'calibrated.pth'), '--work-dir',
        str(tmp / 'test'), '--out', metrics_json, '--cfg-options'
    ] + as_cli_options(opts)) == 0
    with open(metrics_json) as f:
        metrics = json.load(f)
    return dict(root=root,
                out=out,
                summary=summary,
                work=work,
                config=config,
                metrics=metrics,
                tmp=str(tmp))


def test_conversion_keeps_both_annotators_and_per_image_spacing(own_run):
    out, summary = own_run['out'], own_run['summary']
    assert summary.images_per_split == dict(train=4, val=2, calib=2, test=2)
    assert summary.spacing_sources['--spacing'] == NUM_IMAGES - len(MHA_STEMS)
    assert [f['label'] for f in summary.faults] == [MISSING[2]]
    spacing = {}
    for split in ('train', 'val', 'calib', 'test'):
        with open(osp.join(out, f'{split}.json')) as f:
            data = json.load(f)
        for img in data['images']:
            stem = osp.splitext(osp.basename(img['file_name']))[0]
            spacing[stem] = tuple(img['spacing'])
            # every image arrives as a 16-bit PNG for the pipeline
            pixels = cv2.imread(osp.join(out, img['file_name']),
                                cv2.IMREAD_UNCHANGED)
            assert pixels.dtype == np.uint16, img['file_name']
        for ann in data['annotations']:
            assert {'keypoints_dr_a', 'keypoints_dr_b'} <= set(ann)
    assert len(spacing) == NUM_IMAGES
    for stem, value in spacing.items():
        assert value == pytest.approx(MHA_STEMS.get(stem, (0.1, 0.1)))


def test_trains_calibrates_and_tests_with_the_landmark_names(own_run):
    assert osp.isfile(osp.join(own_run['work'], 'calibrated.pth'))
    metrics = own_run['metrics']
    with open(osp.join(own_run['out'], 'test.json')) as f:
        visible = sum(
            int(np.sum(np.asarray(a['keypoints']).reshape(-1, 3)[:, 2] > 0))
            for a in json.load(f)['annotations'])
    assert metrics['ceph/num_landmarks'] == visible
    assert metrics['ceph/num_invalid'] == 0
    for name in NAMES:
        assert np.isfinite(metrics[f'ceph/MRE/{name}']), name
    assert np.isfinite(metrics['ceph/MRE'])
    # UncertaintyMetric: ERE, NLL and calibration for any K
    assert any(key.startswith('unc/') for key in metrics), metrics


def test_infers_named_landmarks_and_the_review_goes_back_in(own_run):
    tmp, work = own_run['tmp'], own_run['work']
    new = osp.join(tmp, 'new_xrays')
    os.makedirs(new)
    for stem in ('001', '002', '004'):
        shutil.copy(osp.join(own_run['root'], 'images', f'{stem}.png'), new)
    preds = osp.join(tmp, 'preds')
    # the config as trained (the tiny input), dumped by the Runner
    trained = osp.join(work, osp.basename(own_run['config']))
    assert load_tool('infer').main([
        new, '--config', trained, '--checkpoint',
        osp.join(work, 'calibrated.pth'), '--out-dir', preds, '--spacing',
        '0.1', '--format', 'labelme', '--no-progress'
    ]) == 0
    with open(osp.join(preds, 'landmarks.json')) as f:
        results = json.load(f)
    predicted = {}
    for result in results['results']:
        stem = osp.splitext(osp.basename(result['path']))[0]
        assert [lm['name'] for lm in result['landmarks']] == list(NAMES)
        predicted[stem] = [(lm['x'], lm['y']) for lm in result['landmarks']]
    assert sorted(predicted) == ['001', '002', '004']
    reviewed = osp.join(tmp, 'reviewed_coco')
    convert_landmarks(reviewed,
                      new,
                      NAMES,
                      labelme=dict(reviewed=osp.join(preds, 'labelme')),
                      spacing=0.1,
                      test_fraction=0,
                      num_val=1,
                      num_calib=1,
                      progress=False)
    back = {}
    for split in ('train', 'val', 'calib'):
        with open(osp.join(reviewed, f'{split}.json')) as f:
            data = json.load(f)
        names = {i['id']: i['file_name'] for i in data['images']}
        for ann in data['annotations']:
            stem = osp.splitext(osp.basename(names[ann['image_id']]))[0]
            back[stem] = np.asarray(ann['keypoints_reviewed']).reshape(
                -1, 3)[:, :2]
    for stem, points in predicted.items():
        np.testing.assert_array_equal(back[stem], points)
