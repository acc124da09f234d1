"""The configuration model fitted at calibration: the training shapes, the
threshold on the calibration split, the report, the sealed buffers, on a
real Runner (the session's calibrated demo run)."""
import json
import os.path as osp
import warnings

import numpy as np
import pytest
import torch

import mmchh  # noqa: F401
from mmchh.codecs.utils.configuration_model import plausibility_scores
from mmchh.engine import CalibrationError
from mmchh.calibration.settings import check_calibration_settings
from mmchh.calibration.configuration import (
    DEFAULT_PLAUSIBILITY_ALPHA, fit_configuration_calibration, shape_dataset,
    training_shapes)
from mmchh.evaluation.functional.conformal import conformal_min_maps
from mmchh.testing import run_tool_in_process
from mmchh.models.heads.calibration_buffers import CALIBRATION_STATE_NAMES

REPORT_KEYS = {'num_shapes', 'num_landmarks', 'unit', 'alpha', 'threshold',
               'num_scores', 'rank', 'used', 'reason'}


class Records:
    """A dataset of records only (``get_data_info``)."""

    def __init__(self, infos):
        self.infos = infos

    def __len__(self):
        return len(self.infos)

    def get_data_info(self, i):
        return self.infos[i]


def _record(points, visible=None, spacing=None, annotators=None):
    points = np.asarray(points, np.float32)
    info = dict(keypoints=points[None],
                keypoints_visible=np.ones((1, len(points)), np.float32)
                if visible is None else np.asarray(visible)[None])
    if spacing is not None:
        info['spacing'] = np.asarray(spacing, np.float32)
    if annotators is not None:
        info['annotator_keypoints'] = annotators
    return info


# --------------------------------------------------------------------------
# the training shapes
# --------------------------------------------------------------------------
def test_training_shapes_in_mm_with_annotators_and_invisible_points():
    a = np.arange(8, dtype=np.float64).reshape(4, 2) + 1
    b = a * 3
    senior, junior = a.copy(), a + 0.5
    junior[2] = np.nan  # not marked by the junior annotator
    data = Records([
        _record(a, visible=[1, 0, 1, 1], spacing=(0.1, 0.2)),
        _record(b, spacing=(0.1, 0.2),
                annotators=dict(senior=senior, junior=junior)),
        _record(a, visible=[1, 0, 1, 1], spacing=(0.1, 0.2)),  # repeated
    ])
    shapes, unit = training_shapes(data, return_unit=True)
    assert unit == 'mm' and shapes.shape == (3, 4, 2)
    first = a * [0.1, 0.2]
    first[1] = np.nan  # invisible
    np.testing.assert_allclose(shapes[0], first)
    # annotators instead of the record's mean
    np.testing.assert_allclose(shapes[1], senior * [0.1, 0.2])
    np.testing.assert_allclose(shapes[2], junior * [0.1, 0.2])

    plain = training_shapes(Records([_record(a), _record(b)]))
    np.testing.assert_allclose(plain, [a, b])
    with pytest.raises(CalibrationError, match='1 of 2 training images'):
        training_shapes(Records([_record(a, spacing=0.1), _record(b)]))
    # a shape under 3 landmarks is no configuration
    assert len(training_shapes(
        Records([_record(a, visible=[1, 1, 0, 0])]))) == 0


def test_shape_data_forms(ceph_coco_small, tmp_path):
    assert shape_dataset(None)[0] is None
    assert 'no training split' in shape_dataset(None)[1]
    cfg = dict(type='CephalometricDataset', data_root=ceph_coco_small,
               ann_file='train.json', data_mode='topdown',
               pipeline=[dict(type='NoSuchTransform')])
    # a dataloader config's dataset, built without its pipeline
    dataset, reason = shape_dataset(dict(batch_size=2, dataset=cfg))
    assert reason is None and len(dataset) == 4
    shapes, unit = training_shapes(dataset, return_unit=True)
    # 4 images, 2 annotators each
    assert unit == 'mm' and shapes.shape == (8, 19, 2)
    dataset, reason = shape_dataset(dict(cfg, ann_file='missing.json'))
    assert dataset is None and 'cannot be read' in reason
    with pytest.raises(CalibrationError, match='shape_data'):
        shape_dataset(object())


def test_alpha_is_checked_before_any_work(tmp_path):
    for value in (0, 1, float('nan'), True):
        with pytest.raises(CalibrationError, match='plausibility_alpha'):
            check_calibration_settings(plausibility_alpha=value)
    from mmchh.calibration import TemperatureScalingHook
    with pytest.raises(CalibrationError, match='plausibility_alpha'):
        TemperatureScalingHook(plausibility_alpha=1.5)
    proc = run_tool_in_process('calibrate', [
        str(tmp_path / 'no_config.py'), str(tmp_path / 'no.pth'),
        '--plausibility-alpha', '1'])
    assert proc.returncode == 2
    assert 'argument --plausibility-alpha: must be in (0, 1)' in proc.stderr
    # the default's rank exists on 3 calibration images of 19 landmarks
    assert conformal_min_maps(1 - DEFAULT_PLAUSIBILITY_ALPHA) == 49 <= 57


# --------------------------------------------------------------------------
# on the calibrated demo run
# --------------------------------------------------------------------------
def _state(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def test_the_hook_fits_on_the_training_split(calibrated_small_demo):
    """The demo run's TemperatureScalingHook fitted the model on the
    runner's training split and reported it; the calibrated checkpoint
    holds it, sealed."""
    work = calibrated_small_demo['work']
    conf = json.load(open(osp.join(work, 'calibration.json')))[
        'configuration']
    assert REPORT_KEYS | {'signals', 'erroneous'} <= set(conf)
    # 4 training images, senior and junior each; never the calibration split
    assert conf['num_shapes'] == 8 and conf['num_landmarks'] == 19
    assert conf['unit'] == 'mm' and conf['alpha'] == 0.02
    assert conf['used'] == (conf['rank'] <= conf['num_scores']) == (
        conf['num_scores'] >= 49)
    assert (conf['threshold'] is None) == (not conf['used'])
    assert conf['reason'] and conf['erroneous'] == dict(limit=2.0, unit='mm')
    signals = conf['signals']
    assert signals['num_counted'] == 57
    assert signals['num_counted'] - signals['num_erroneous'] == \
        conf['num_scores']
    ckpt = _state(osp.join(work, 'calibrated.pth'))
    assert ckpt['meta']['calibration']['configuration'] == conf
    state = ckpt['state_dict']
    assert torch.isfinite(state['head.configuration_mean']).all()
    assert torch.isfinite(state['head.configuration_cov']).all()
    assert state['head.configuration_cov'].shape == (19, 2, 2)
    assert (state['head.configuration_num_shapes'] == 8).all()
    assert float(state['head.configuration_alpha']) == pytest.approx(0.02)
    assert float(state['head.configuration_num_scores']) == \
        conf['num_scores']
    threshold = float(state['head.configuration_threshold'])
    if conf['used']:
        assert threshold == pytest.approx(conf['threshold'], rel=1e-6)
    else:
        assert np.isnan(threshold)


def test_reloaded_checkpoint_scores_and_a_tampered_one_is_stale(
        calibrated_small_demo):
    from mmchh.apis import init_landmark_model
    runner = calibrated_small_demo['runner']
    data = next(iter(runner.build_dataloader(runner.cfg.calib_dataloader)))
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        model = init_landmark_model(calibrated_small_demo['cfg'],
                                    calibrated_small_demo['ckpt'])
    head = model.head
    assert head.is_calibrated and head.configuration_model is not None
    with torch.no_grad():
        sample = model.test_step(data)[0]
    pred = sample.pred_instances
    spacing = np.asarray(sample.metainfo['spacing'], np.float64)
    sigma, dist = plausibility_scores(
        np.asarray(pred.keypoints, np.float64)[0] * spacing,
        head.configuration_model)
    np.testing.assert_allclose(pred.keypoint_plausibility[0], sigma,
                               rtol=1e-4)
    np.testing.assert_allclose(pred.keypoint_plausibility_mm[0], dist,
                               rtol=1e-4)

    # a configuration edited under the seal: every load path resets it
    state = _state(calibrated_small_demo['ckpt'])['state_dict']
    state['head.configuration_cov'][3] *= 2
    with pytest.warns(UserWarning, match='calibration values were edited'):
        model.load_state_dict(state)
    assert not head.is_calibrated and head.configuration_model is None
    with torch.no_grad():
        pred = model.test_step(data)[0].pred_instances
    assert 'keypoint_plausibility' not in pred


@pytest.fixture(scope='module')
def refitted(calibrated_small_demo):
    """The configuration fit alone on the demo run, with every landmark
    correct (so the threshold is used) and its training split given as a
    dataloader config; the run's calibration is restored afterwards."""
    runner = calibrated_small_demo['runner']
    model = runner.model
    head = model.head
    before = {n: getattr(head, n).clone() for n in CALIBRATION_STATE_NAMES}
    was_training = model.training
    loader = runner.build_dataloader(runner.cfg.calib_dataloader)
    model.eval()
    try:
        report = fit_configuration_calibration(
            model, loader, runner.cfg.train_dataloader, erroneous_mm=1e3)
        stored = {n: getattr(head, n).clone() for n in before}
        with torch.no_grad():
            pred = model.test_step(next(iter(loader)))[0].pred_instances
    finally:
        with torch.no_grad():
            for name, value in before.items():
                getattr(head, name).copy_(value)
        model.train(was_training)
    return dict(report=report, stored=stored, pred=pred)


def test_threshold_on_the_calibration_split(refitted):
    report, stored = refitted['report'], refitted['stored']
    # every landmark of the 3 calibration images is correct: 57 >= 49
    assert report['used'] and report['num_scores'] == 57
    assert report['rank'] == 57  # ceil(58 * 0.98): the largest
    assert report['erroneous'] == dict(limit=1e3, unit='mm')
    signals = report['signals']
    assert signals['num_counted'] == 57 and signals['num_erroneous'] == 0
    assert signals['implausible'] == dict(erroneous=0, correct=0)
    assert float(stored['configuration_threshold']) == pytest.approx(
        report['threshold'], rel=1e-6)
    assert float(stored['configuration_num_scores']) == 57
    # a calibration image scores at most the threshold: not implausible
    pred = refitted['pred']
    assert (pred.keypoint_plausibility[0] <= report['threshold']).all()
    assert not pred.keypoint_implausible[0].any()
    np.testing.assert_array_equal(
        pred.keypoint_flagged[0], pred.keypoint_ere_flagged[0]
        if 'keypoint_ere_flagged' in pred else ~pred.keypoint_valid[0])


def test_without_training_split_nothing_is_fitted(calibrated_small_demo):
    runner = calibrated_small_demo['runner']
    model = runner.model
    head = model.head
    before = {n: getattr(head, n).clone() for n in CALIBRATION_STATE_NAMES}
    try:
        report = fit_configuration_calibration(model, None, None)
        assert not report['used'] and report['num_shapes'] == 0
        assert 'no training split' in report['reason']
        assert head.configuration_model is None
        # one shape is no model (nor is an image of two landmarks)
        one = Records([dict(keypoints=np.random.rand(1, 19, 2) * 50,
                            keypoints_visible=np.ones((1, 19)))])
        report = fit_configuration_calibration(model, None, one)
        assert '1 training shape(s)' in report['reason']
        with pytest.raises(CalibrationError, match='has 3 landmarks'):
            fit_configuration_calibration(model, None, Records(
                [dict(keypoints=np.random.rand(1, 3, 2))] * 2))
    finally:
        with torch.no_grad():
            for name, value in before.items():
                getattr(head, name).copy_(value)
