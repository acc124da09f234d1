"""Non-finite values are never an answer, and calibration
state follows the weights.

Real checkpoints written by a real MMEngine Runner (the session fixture
``trained_tiny``), loaded through the mmchh API, MMEngine's own
``load_checkpoint`` and a fine-tuning Runner (``load_from``)."""
import copy
import csv
import json
import os
import os.path as osp
import warnings

import cv2
import numpy as np
import pytest
import torch
from mmengine.runner import Runner, load_checkpoint
from mmpose.registry import MODELS
from mmpose.structures import PoseDataSample

import mmchh  # noqa: F401
from mmchh.apis import init_landmark_model, predict_landmarks
from mmchh.engine import calibrate_model
from mmchh.evaluation.metrics import CephalometricMetric, UncertaintyMetric
from mmchh.testing.tiny_head import build_tiny_head
from mmchh.models.heads.calibration_buffers import (CALIBRATION_STATE_NAMES,
                                                 calibration_seal,
                                                 calibration_weights_fingerprint)
from mmchh.utils.checkpoint import CheckpointError
from mmchh.visualization.overlay import draw_overlay


def _strict_loads(text):
    """json.loads that refuses NaN/Infinity (strict JSON)."""
    def refuse(token):
        raise ValueError(f'non-JSON constant {token}')
    return json.loads(text, parse_constant=refuse)


def _state(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def _runner(cfg, work_dir, name, **changes):
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.experiment_name = name
    cfg.visualizer = dict(type='Visualizer', name=f'vis_{name}')
    for key, value in changes.items():
        cfg[key] = value
    return Runner.from_cfg(cfg)


def _image(trained_tiny):
    root = osp.dirname(trained_tiny['cfg'].train_dataloader.dataset.ann_file)
    return osp.join(root, 'images', '000.png')


# --------------------------------------------------------------------------
# finite weights at every load
# --------------------------------------------------------------------------
@pytest.mark.parametrize('tensor,value', [('backbone.conv1.weight', 'nan'),
                                          ('head.log_temperature', 'inf')])
def test_nonfinite_checkpoint_refused_by_api_and_mmengine(
        trained_tiny, tmp_path, tensor, value):
    ckpt = _state(trained_tiny['checkpoint'])
    ckpt['state_dict'][tensor].view(-1)[0] = float(value)
    path = str(tmp_path / f'broken_{value}.pth')
    torch.save(ckpt, path)

    with pytest.raises(CheckpointError) as info:
        init_landmark_model(trained_tiny['cfg'], path)
    assert path in str(info.value) and tensor in str(info.value)

    # MMEngine's own recursive loader (Runner load_from/resume use it)
    model = MODELS.build(copy.deepcopy(trained_tiny['cfg'].model))
    with pytest.raises(CheckpointError, match=tensor.replace('.', r'\.')):
        load_checkpoint(model, path, map_location='cpu')
    # and torch's
    with pytest.raises(CheckpointError, match=tensor.replace('.', r'\.')):
        model.load_state_dict(ckpt['state_dict'])


# --------------------------------------------------------------------------
# invalid maps at prediction
# --------------------------------------------------------------------------
def _head():
    # the tiny head without deconvolutions: features at the 16x12 grid
    head = build_tiny_head(deconv_out_channels=None)
    head.set_flag_threshold(0.3)
    return head


def _samples(batch=2):
    return [
        PoseDataSample(
            metainfo=dict(
                spacing=np.array([0.1, 0.1]),
                input_center=np.array([16.0, 12.0]),
                input_scale=np.array([32.0, 24.0]),
                input_size=(32, 24))) for _ in range(batch)
    ]


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_head_marks_a_nonfinite_map_invalid_and_keeps_the_others(bad):
    head = _head()
    g = torch.Generator().manual_seed(0)
    clean_logits = torch.randn(2, 3, 12, 16, generator=g) * 3
    broken = clean_logits.clone()
    broken[0, 1, 5, 7] = bad
    outputs = []
    for logits in (clean_logits, broken):
        head.forward = lambda feats, logits=logits: logits
        outputs.append(head.predict((torch.zeros(1), ), _samples()))
    clean, pred = outputs
    p = pred[0]
    assert np.isnan(p.keypoints[0, 1]).all()  # never (0, 0)
    for field in ('keypoint_scores', 'keypoint_mode_prob', 'keypoint_ere',
                  'keypoint_ere_mm'):
        assert np.isnan(p[field][0, 1]), field
    assert p.keypoint_flagged[0, 1] and not p.keypoint_valid[0, 1]
    # every other map is exactly the clean prediction
    others = np.array([True, False, True])
    for field in ('keypoints', 'keypoint_scores', 'keypoint_mode_prob',
                  'keypoint_ere', 'keypoint_ere_mm', 'keypoint_flagged',
                  'keypoint_valid'):
        np.testing.assert_array_equal(p[field][0, others],
                                      clean[0][field][0, others])
        np.testing.assert_array_equal(pred[1][field], clean[1][field])
    assert clean[0].keypoint_valid.all() and clean[1].keypoint_valid.all()


def test_api_reports_invalid_landmark_as_none_and_warns_once(
        trained_tiny, tmp_path):
    with pytest.warns(UserWarning, match='uncalibrated'):
        model = init_landmark_model(trained_tiny['cfg'],
                                    trained_tiny['checkpoint'])
    # a non-finite weight is refused at load, so break the model in memory
    with torch.no_grad():
        model.head.final_layer.bias[1] = float('inf')
    image = _image(trained_tiny)
    grey = cv2.imread(image, cv2.IMREAD_GRAYSCALE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        results = predict_landmarks(model, [image, grey], spacing=0.1)
    ours = [w for w in caught if 'no valid heatmap' in str(w.message)]
    assert len(ours) == 2  # one per image
    assert image in str(ours[0].message) and 'square' in str(ours[0].message)
    assert '<array 1>' in str(ours[1].message)
    for r in results:
        lm = r.landmarks[1]
        assert lm['name'] == 'square'
        assert lm['valid'] is False and lm['flagged'] is True
        for key in ('x', 'y', 'x_mm', 'y_mm', 'probability', 'ere_px',
                    'ere_mm'):
            assert lm[key] is None, key
        for ok in (r.landmarks[0], r.landmarks[2]):
            assert ok['valid'] is True and np.isfinite(ok['x'])
        doc = json.dumps(r.to_dict(), allow_nan=False)
        assert _strict_loads(doc)['landmarks'][1]['x'] is None
    # the overlay leaves it out and says so
    out = str(tmp_path / 'overlay.png')
    draw_overlay(grey, results[1], out)
    assert cv2.imread(out) is not None
    # the files tools/infer.py writes say the same: strict JSON, CSV row
    # with empty coordinates, flagged and not valid
    from mmchh.apis.batch_infer import infer_files
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), grey)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        infer_files(model, str(folder), str(tmp_path / 'out'), spacing=0.1,
                    progress=False)
    doc = _strict_loads((tmp_path / 'out' / 'landmarks.json').read_text())
    assert doc['results'][0]['landmarks'][1]['x'] is None
    rows = list(csv.DictReader(open(tmp_path / 'out' / 'landmarks.csv')))
    assert [r['valid'] for r in rows] == ['True', 'False', 'True']
    bad = rows[1]
    assert bad['landmark'] == 'square' and bad['flagged'] == 'True'
    assert bad['x'] == bad['y'] == bad['ere_mm'] == bad['probability'] == ''


# --------------------------------------------------------------------------
# calibration state follows the weights
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def calibrated_tiny(trained_tiny, tmp_path_factory):
    """The tiny model calibrated by calibrate_model on a real Runner."""
    work = str(tmp_path_factory.mktemp('calibrated_tiny'))
    runner = _runner(trained_tiny['cfg'], work, 'calib_tiny')
    runner.load_checkpoint(trained_tiny['checkpoint'], map_location='cpu')
    report = calibrate_model(
        runner, trained_tiny['cfg'].val_dataloader, target_tpr=0,
        out_dir=work)
    return dict(report=report, work=work,
                checkpoint=osp.join(work, 'calibrated.pth'))


def test_calibration_records_fingerprint_and_reloads_calibrated(
        trained_tiny, calibrated_tiny):
    report = calibrated_tiny['report']
    fingerprint = report['weights_fingerprint']
    ckpt = _state(calibrated_tiny['checkpoint'])
    assert ckpt['meta']['calibration']['weights_fingerprint'] == fingerprint
    assert calibration_weights_fingerprint(ckpt['state_dict']) == fingerprint
    with open(osp.join(calibrated_tiny['work'], 'calibration.json')) as f:
        doc = _strict_loads(f.read())
    assert doc['weights_fingerprint'] == fingerprint

    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)  # no stale warning
        model = init_landmark_model(trained_tiny['cfg'],
                                    calibrated_tiny['checkpoint'])
    assert model.head.is_calibrated
    # the head stores the seal of these weights and these values
    assert model.head.calibration_fingerprint_hex == calibration_seal(
        fingerprint, model.head.calibration_values())
    r = predict_landmarks(model, _image(trained_tiny), spacing=0.1)[0]
    assert r.calibrated


@pytest.mark.parametrize('edit', [
    'weight_changed', 'no_fingerprint', 'temperature_edited',
    'values_deleted'
])
def test_stale_calibration_loads_uncalibrated(trained_tiny, calibrated_tiny,
                                              tmp_path, edit):
    ckpt = _state(calibrated_tiny['checkpoint'])
    state = ckpt['state_dict']
    if edit == 'weight_changed':
        state['backbone.conv1.weight'].view(-1)[0] += 1e-3
        match = 'weights changed after calibration'
    elif edit == 'temperature_edited':
        # a temperature changed by hand under the old seal
        state['head.log_temperature'][0] += 0.5
        match = 'calibration values were edited'
    elif edit == 'values_deleted':
        # every fitted value stripped, the seal kept: an "uncalibrated"
        # export must not pass as a calibration that kept T = 1
        for name in CALIBRATION_STATE_NAMES:
            if name != 'calibration_fingerprint':
                del state['head.' + name]
        match = 'calibration values were edited'
    else:  # a checkpoint from before the fingerprint existed
        del state['head.calibration_fingerprint']
        match = 'no calibration fingerprint'
    path = str(tmp_path / f'{edit}.pth')
    torch.save(ckpt, path)

    with pytest.warns(UserWarning, match=match):
        model = init_landmark_model(trained_tiny['cfg'], path)
    head = model.head
    assert not head.is_calibrated and not head.has_calibration_state
    assert head.calibration_fingerprint_hex is None
    r = predict_landmarks(model, _image(trained_tiny), spacing=0.1)[0]
    assert not r.calibrated and r.flag_threshold_mm is None

    # the same through MMEngine's loader, into a built model
    built = MODELS.build(copy.deepcopy(trained_tiny['cfg'].model))
    with pytest.warns(UserWarning, match=match):
        load_checkpoint(built, path, map_location='cpu')
    assert not built.head.is_calibrated


def test_fine_tuning_a_calibrated_checkpoint_resets_calibration(
        trained_tiny, calibrated_tiny, tmp_path):
    work = str(tmp_path / 'finetune')
    cfg = trained_tiny['cfg']
    runner = _runner(
        cfg, work, 'finetune_tiny',
        load_from=calibrated_tiny['checkpoint'],
        train_cfg=dict(by_epoch=True, max_epochs=1),
        val_dataloader=None, val_cfg=None, val_evaluator=None,
        param_scheduler=[])
    runner.train()
    written = _state(osp.join(work, 'epoch_1.pth'))['state_dict']
    assert torch.equal(written['head.log_temperature'],
                       torch.zeros_like(written['head.log_temperature']))
    assert not written['head.calibration_fingerprint'].any()
    with pytest.warns(UserWarning, match='uncalibrated'):
        model = init_landmark_model(cfg, osp.join(work, 'epoch_1.pth'))
    assert not model.head.is_calibrated
    logs = [
        open(osp.join(root, f)).read()
        for root, _, files in os.walk(work) for f in files
        if f.endswith('.log')
    ]
    assert any('calibration reset' in text for text in logs)


# --------------------------------------------------------------------------
# metrics on invalid predictions
# --------------------------------------------------------------------------
def _metric_sample(pred, valid):
    k = len(pred)
    return dict(
        pred_instances=dict(
            keypoints=np.asarray(pred, np.float32)[None],
            keypoint_valid=np.asarray(valid, bool)[None],
            keypoint_ere_mm=np.where(valid, 1.0, np.nan)[None],
            keypoint_mode_prob=np.where(valid, 0.5, np.nan)[None],
            keypoint_nll=np.where(valid, 2.0, np.nan)[None],
            keypoint_mode_hit=np.asarray(valid, bool)[None],
            keypoint_target_weight=np.ones((1, k), np.float32)),
        gt_instances=dict(
            keypoints=np.zeros((1, k, 2), np.float32),
            keypoints_visible=np.ones((1, k))),
        spacing=np.array([0.1, 0.1]))


def test_metrics_count_invalid_landmarks_and_report_nan(tmp_path):
    nan = float('nan')
    batch = [
        _metric_sample([[10, 0], [nan, nan], [0, 5]], [True, False, True]),
        _metric_sample([[3, 4], [0, 1], [6, 8]], [True, True, True]),
    ]
    ceph = CephalometricMetric()
    ceph.dataset_meta = dict(keypoint_id2name={0: 'a', 1: 'b', 2: 'c'})
    ceph.process({}, batch)
    with pytest.warns(UserWarning, match='1 of 6 landmarks'):
        res = ceph.evaluate(2)
    assert res['ceph/num_invalid'] == 1 and res['ceph/num_landmarks'] == 6
    assert np.isnan(res['ceph/MRE']) and np.isnan(res['ceph/SDR_2mm'])
    assert np.isnan(res['ceph/MRE/b']) and np.isnan(res['ceph/SDR_2mm/b'])
    assert res['ceph/MRE/a'] == pytest.approx((1.0 + 0.5) / 2)

    unc = UncertaintyMetric(out_dir=str(tmp_path))
    unc.process({}, batch)
    with pytest.warns(UserWarning, match='1 of 6 landmarks'):
        res = unc.evaluate(2)
    assert res['unc/num_invalid'] == 1
    assert np.isnan(res['unc/MERE']) and np.isnan(res['unc/NLL'])
    with open(tmp_path / 'unc_uncertainty.json') as f:
        doc = _strict_loads(f.read())
    assert doc['num_invalid'] == 1 and doc['metrics']['MERE'] is None


def test_test_tool_exits_1_when_every_landmark_is_invalid(
        calibrated_small_demo, tmp_path):
    """Negative BN variances: finite weights that load, but every map is
    NaN. tools/test.py writes what it measured (nothing valid) and exits
    1 with one line instead of reporting NaN metrics with status 0."""
    from mmchh.testing import run_tool_in_process, write_nan_map_checkpoint
    broken = write_nan_map_checkpoint(calibrated_small_demo['ckpt'],
                                      str(tmp_path / 'nan_maps.pth'))
    out = tmp_path / 'metrics.json'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        proc = run_tool_in_process('test', [
            calibrated_small_demo['cfg'], broken, '--out', str(out),
            '--work-dir', str(tmp_path / 'work')])
    assert proc.returncode == 1, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith('test.py: error: every one of the') and \
        str(out) in line
    metrics = json.loads(out.read_text())
    assert metrics['ceph/num_invalid'] == metrics['ceph/num_landmarks'] > 0
