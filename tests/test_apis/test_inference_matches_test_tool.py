# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""One affine: the same image and checkpoint give exactly the same
coordinates and ERE through tools/test.py --dump (the dataset's box),
predict_landmarks and tools/infer.py (the inference box)."""
import csv
import json
import os.path as osp
import pickle

import numpy as np
import pytest
from mmengine.config import Config

import mmchh  # noqa: F401
from mmchh.apis import init_landmark_model, predict_landmarks
from mmchh.testing import run_tool_in_process


@pytest.fixture(scope='module')
def test_dump(calibrated_small_demo, tmp_path_factory):
    """tools/test.py --dump on the calibrated demo's test split."""
    tmp = tmp_path_factory.mktemp('one_affine')
    dump = str(tmp / 'preds.pkl')
    proc = run_tool_in_process('test', [
        calibrated_small_demo['cfg'], calibrated_small_demo['ckpt'],
        '--work-dir', str(tmp / 'work'), '--dump', dump])
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(dump, 'rb') as f:
        preds = pickle.load(f)
    cfg = Config.fromfile(calibrated_small_demo['cfg'])
    return dict(preds=sorted(preds, key=lambda p: p['img_path']), tmp=tmp,
                batch_size=int(cfg.test_dataloader.batch_size),
                stdout=proc.stdout)


def test_test_tool_prints_one_line_per_flag_signal(test_dump):
    """What the ERE flag, the configuration flag and either catch, or
    why a signal is not fitted or not used: one line each."""
    lines = [line for line in test_dump['stdout'].splitlines()
             if line.startswith('test.py: flag ')]
    assert [line.split(':')[1] for line in lines] == [
        ' flag ere', ' flag implausible', ' flag combined']
    for line in lines:
        assert ('erroneous recall' in line or 'not fitted' in line
                or 'not used' in line), line


def test_predict_landmarks_equals_the_test_path(calibrated_small_demo,
                                                test_dump):
    preds = test_dump['preds']
    assert len(preds) >= 2
    model = init_landmark_model(calibrated_small_demo['cfg'],
                                calibrated_small_demo['ckpt'])
    paths = [p['img_path'] for p in preds]
    spacings = [tuple(float(v) for v in p['spacing']) for p in preds]
    results = predict_landmarks(model, paths, spacing=spacings,
                                batch_size=test_dump['batch_size'])
    for pred, result in zip(preds, results):
        inst = pred['pred_instances']
        got_xy = np.array([[lm['x'], lm['y']] for lm in result.landmarks],
                          np.float32)
        np.testing.assert_array_equal(got_xy, inst['keypoints'][0])
        for unit in ('mm', 'px'):
            got_ere = np.array([lm[f'ere_{unit}'] for lm in result.landmarks],
                               np.float32)
            np.testing.assert_array_equal(got_ere,
                                          inst[f'keypoint_ere_{unit}'][0])
        # both mapped the box the same way: centre (w / 2, h / 2)
        w, h = result.image_size
        np.testing.assert_array_equal(pred['input_center'], [w / 2, h / 2])


def test_infer_tool_equals_the_test_path(calibrated_small_demo, test_dump):
    """tools/infer.py on the test split's files with each file's spacing
    (all equal here) writes the test path's coordinates and ERE."""
    preds = test_dump['preds']
    spacing = {tuple(float(v) for v in p['spacing']) for p in preds}
    assert len(spacing) == 1, spacing
    folder = osp.dirname(preds[0]['img_path'])
    wanted = {osp.basename(p['img_path']): p for p in preds}
    out = str(test_dump['tmp'] / 'infer')
    proc = run_tool_in_process('infer', [
        folder, '--config', calibrated_small_demo['cfg'], '--checkpoint',
        calibrated_small_demo['ckpt'], '--out-dir', out, '--no-overlay',
        '--no-progress', '--batch-size', str(test_dump['batch_size']),
        '--spacing', *(str(v) for v in next(iter(spacing)))])
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(osp.join(out, 'landmarks.csv'), newline='') as f:
        rows = [r for r in csv.DictReader(f)
                if osp.basename(r['image']) in wanted]
    assert len(rows) == 19 * len(wanted)
    for row in rows:
        inst = wanted[osp.basename(row['image'])]['pred_instances']
        k = int(row['index'])
        # the CSV holds the float32 numbers as Python writes them
        assert np.float32(float(row['x'])) == inst['keypoints'][0, k, 0]
        assert np.float32(float(row['y'])) == inst['keypoints'][0, k, 1]
        assert np.float32(float(row['ere_mm'])) == \
            inst['keypoint_ere_mm'][0, k]
    with open(osp.join(out, 'landmarks.json')) as f:
        assert json.load(f)['complete'] is True
