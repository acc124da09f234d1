import json
import os
import os.path as osp

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mmchh.evaluation.metrics import UncertaintyMetric


def sample(pred_xy, gt_xy, ere, conf, nll, hit, spacing=(0.5, 0.5),
           flagged=None):
    k = len(ere)
    pred = dict(
        keypoints=np.asarray(pred_xy, np.float32)[None],
        keypoint_ere_mm=np.asarray(ere, np.float32)[None],
        keypoint_scores=np.asarray(conf, np.float32)[None],
        keypoint_nll=np.asarray(nll, np.float32)[None],
        keypoint_mode_hit=np.asarray(hit, bool)[None],
        keypoint_target_weight=np.ones((1, k), np.float32))
    if flagged is not None:
        pred['keypoint_flagged'] = np.asarray(flagged, bool)[None]
    return dict(
        pred_instances=pred,
        gt_instances=dict(
            keypoints=np.asarray(gt_xy, np.float32)[None],
            keypoints_visible=np.ones((1, k))),
        spacing=np.asarray(spacing))


def test_numbers_against_direct_computation(tmp_path):
    rng = np.random.default_rng(0)
    metric = UncertaintyMetric(erroneous_mm=2.0, corr_bin_size=4,
                               out_dir=str(tmp_path))
    batch, all_err, all_ere, all_flag = [], [], [], []
    for _ in range(6):
        gt = rng.uniform(0, 50, (5, 2))
        err_px = rng.exponential(4.0, 5)
        ang = rng.uniform(0, 2 * np.pi, 5)
        pred = gt + err_px[:, None] * np.stack([np.cos(ang), np.sin(ang)], 1)
        ere = err_px * 0.5 * rng.uniform(0.7, 1.3, 5)
        flagged = ere > 2.0
        batch.append(sample(pred, gt, ere, rng.uniform(0, 0.2, 5),
                            rng.uniform(1, 5, 5), rng.random(5) < 0.3,
                            flagged=flagged))
        all_err.append(err_px * 0.5)
        all_ere.append(ere)
        all_flag.append(flagged)
    metric.process({}, batch)
    res = metric.evaluate(6)
    err, ere = np.concatenate(all_err), np.concatenate(all_ere)
    flag = np.concatenate(all_flag)
    assert res['unc/MERE'] == pytest.approx(ere.mean(), rel=1e-5)
    assert res['unc/pearson'] == pytest.approx(
        np.corrcoef(ere, err)[0, 1], rel=1e-4)
    assert res['unc/AUC'] == pytest.approx(
        roc_auc_score(err > 2.0, ere), rel=1e-6)
    assert res['unc/good/count'] == (~flag).sum()
    assert res['unc/erroneous/count'] == flag.sum()
    assert res['unc/good/MRE'] == pytest.approx(err[~flag].mean(), rel=1e-5)
    assert res['unc/overall/SDR_2mm'] == pytest.approx(
        (err < 2).mean() * 100, rel=1e-6)
    for name in ('unc_reliability.png', 'unc_ere_vs_error.png',
                 'unc_roc.png', 'unc_uncertainty.json'):
        assert osp.getsize(osp.join(str(tmp_path), name)) > 0
    report = json.load(open(osp.join(str(tmp_path), 'unc_uncertainty.json')))
    assert report['metrics']['MERE'] == pytest.approx(res['unc/MERE'])
    assert len(report['reliability']['bin_count']) == 10
    assert not [f for f in os.listdir(str(tmp_path)) if 'tmp' in f]


def test_requires_the_head_fields():
    metric = UncertaintyMetric()
    bad = sample([[0, 0]], [[0, 0]], [1.0], [0.1], [2.0], [True])
    del bad['pred_instances']['keypoint_nll']
    with pytest.raises(KeyError, match='keypoint_nll'):
        metric.process({}, [bad])
