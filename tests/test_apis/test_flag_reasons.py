# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Why each landmark is flagged, from the head's fields: the ERE flag, the
configuration (plausibility) flag, both, an invalid map; a checkpoint
without a configuration model gets no plausibility and says it is not
fitted -- in the result, its JSON, the CSV rows and the labelme file (the
same through the real model: tests/test_apis/test_flag_status_outputs.py)."""
import csv
import io
import json
import math

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from mmchh.apis import LandmarkResult
from mmchh.apis.batch_infer import CSV_COLUMNS, landmark_rows
from mmchh.apis.flag_reasons import (FLAG_REASONS, configuration_status,
                                     describe_configuration_status,
                                     landmark_flag_fields)
from mmchh.apis.labelme_export import labelme_document, labelme_summary
from mmchh.codecs.utils import HeatmapFrame
from mmchh.utils.io import csv_text

NAN = float('nan')


def _pred(**fields):
    """pred_instances with (1, K) numpy fields, as the head predicts."""
    pred = InstanceData()
    for key, value in fields.items():
        pred.set_field(np.asarray(value)[None], key)
    return pred


def test_reasons_of_each_signal_and_both():
    """Five landmarks: ERE only, implausible only, both, neither, and one
    the configuration model did not score (NaN sigma: never 'plausible')."""
    pred = _pred(
        keypoint_ere_flagged=[True, False, True, False, False],
        keypoint_implausible=[False, True, True, False, False],
        keypoint_plausibility=[1.0, 5.0, 6.5, 0.5, NAN],
        keypoint_plausibility_mm=[0.4, 3.0, 4.0, 0.2, NAN],
        keypoint_flagged=[True, True, True, False, False])
    got = landmark_flag_fields(pred, np.ones(5, bool))
    assert [g['flag_reasons'] for g in got] == [
        ['ere'], ['implausible'], ['ere', 'implausible'], [], []]
    assert [g['flagged'] for g in got] == [True, True, True, False, False]
    assert [g['implausible'] for g in got] == [False, True, True, False,
                                               None]
    assert [g['plausibility'] for g in got] == [1.0, 5.0, 6.5, 0.5, None]
    assert got[1]['plausibility_mm'] == 3.0
    assert got[4]['plausibility_mm'] is None
    for g in got:  # consistent: reasons exactly when flagged
        assert bool(g['flag_reasons']) == bool(g['flagged'])
        assert set(g['flag_reasons']) <= set(FLAG_REASONS)


def test_older_checkpoint_flags_on_ere_and_invents_no_plausibility():
    """Only ``keypoint_flagged`` (the ERE flag, as before the configuration
    flag); an invalid map is flagged 'invalid' and nothing else."""
    pred = _pred(keypoint_flagged=[True, False, True])
    got = landmark_flag_fields(pred, np.array([True, True, False]))
    assert [g['flag_reasons'] for g in got] == [['ere'], [], ['invalid']]
    assert [g['flagged'] for g in got] == [True, False, True]
    for g in got:
        assert g['plausibility'] is None and g['plausibility_mm'] is None
        assert g['implausible'] is None
    # no threshold at all: not judged, no reason
    none = landmark_flag_fields(_pred(), np.ones(2, bool))
    assert [(g['flagged'], g['flag_reasons']) for g in none] == [
        (None, []), (None, [])]


def test_scores_without_a_threshold_flag_nothing_implausible():
    """A fitted model with no threshold: the sigmas are reported, no
    landmark is called implausible (None: not judged)."""
    pred = _pred(keypoint_ere_flagged=[False, True],
                 keypoint_plausibility=[7.0, 0.3],
                 keypoint_flagged=[False, True])
    got = landmark_flag_fields(pred, np.ones(2, bool))
    assert [g['implausible'] for g in got] == [None, None]
    assert [g['plausibility'] for g in got] == [7.0, 0.3]
    assert [g['flag_reasons'] for g in got] == [[], ['ere']]


def test_implausible_flags_where_the_ere_flag_cannot():
    """An mm ERE threshold and no spacing: the head gives no
    ``keypoint_flagged``; an implausible landmark is still flagged (its
    only reason), the others stay unjudged (None), never 'fine'."""
    pred = _pred(keypoint_implausible=[True, False, False],
                 keypoint_plausibility=[6.0, 1.0, NAN])
    got = landmark_flag_fields(pred, np.ones(3, bool))
    assert [g['flagged'] for g in got] == [True, None, None]
    assert [g['flag_reasons'] for g in got] == [['implausible'], [], []]
    assert [g['implausible'] for g in got] == [True, False, None]


def _head(threshold=NAN, alpha=NAN, num_scores=NAN, fitted=True):
    head = torch.nn.Module()
    head.register_buffer('configuration_mean', torch.full(
        (3, 2), 0.5 if fitted else NAN))
    for name, value in (('configuration_threshold', threshold),
                        ('configuration_alpha', alpha),
                        ('configuration_num_scores', num_scores)):
        head.register_buffer(name, torch.tensor(value))
    return head


def test_configuration_status_used_not_used_and_not_fitted():
    used = configuration_status(_head(3.03, 0.01, 76))
    assert used == dict(status='used', reason='', threshold=pytest.approx(
        3.03), alpha=pytest.approx(0.01), num_scores=76)
    assert describe_configuration_status(used) == (
        'configuration flag: implausible > 3.03 sigma (alpha 0.01, 76 '
        'calibration scores)')
    unset = configuration_status(_head(num_scores=40))
    assert unset['status'] == 'not_used' and unset['threshold'] is None
    assert 'no plausibility threshold' in unset['reason']
    assert describe_configuration_status(unset) == unset['reason']
    few = configuration_status(_head(alpha=0.02, num_scores=9))
    assert few['alpha'] == 0.02  # the float32 buffer as typed
    assert few['reason'] == (
        'configuration flag not used: 9 correct calibration landmarks are '
        'fewer than the 49 a threshold at alpha = 0.02 needs; plausibility '
        'scores reported, nothing flagged implausible')
    for head in (_head(fitted=False), torch.nn.Module()):  # older head
        none = configuration_status(head)
        assert none['status'] == 'none'
        assert describe_configuration_status(none).startswith(
            'configuration flag not fitted')
        assert none['threshold'] is None and none['num_scores'] is None


def _result(flags, status, path='/x/a.png'):
    """A 2-landmark result with the given flag fields, spacing 0.1 mm."""
    landmarks = [
        dict(name=f'lm{k}', index=k, x=10.0 + k, y=20.0, x_mm=1.0 + k / 10,
             y_mm=2.0, probability=0.1, ere_px=3.0, ere_mm=0.3, **f,
             valid=True, regions=None)
        for k, f in enumerate(flags)
    ]
    return LandmarkResult(
        path=path, image_size=(64, 96), landmarks=landmarks, calibrated=True,
        flag_threshold_mm=1.5,
        frame=HeatmapFrame((64, 96), (64, 96), (32, 48), (64, 96),
                           (0.1, 0.1)),
        flag_status=dict(status='used', reason='', threshold=1.5, unit='mm',
                         low=1.2, high=1.9, num_images=4, num_erroneous=12,
                         applied=True),
        configuration_status=status)


USED = dict(status='used', reason='', threshold=3.0, alpha=0.01,
            num_scores=60)


def test_csv_and_json_carry_the_reasons():
    flags = landmark_flag_fields(_pred(
        keypoint_ere_flagged=[True, False],
        keypoint_implausible=[True, False],
        keypoint_plausibility=[4.25, 0.5],
        keypoint_plausibility_mm=[2.5, 0.1],
        keypoint_flagged=[True, False]), np.ones(2, bool))
    result = _result(flags, USED)
    rows = list(csv.DictReader(io.StringIO(csv_text(
        CSV_COLUMNS, landmark_rows([result])))))
    assert [r['flag_reasons'] for r in rows] == ['ere;implausible', '']
    assert [r['plausibility_sigma'] for r in rows] == ['4.25', '0.5']
    assert [r['plausibility_mm'] for r in rows] == ['2.5', '0.1']
    assert [r['implausible'] for r in rows] == ['True', 'False']
    assert [r['flagged'] for r in rows] == ['True', 'False']
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert doc['configuration_status'] == USED
    lm = doc['landmarks'][0]
    assert lm['flag_reasons'] == ['ere', 'implausible']
    assert (lm['plausibility'], lm['plausibility_mm'],
            lm['implausible']) == (4.25, 2.5, True)


def test_json_carries_the_constrained_position_only_when_decoded():
    fields = dict(keypoint_implausible=[True, False, True],
                  keypoint_plausibility=[4.25, 0.5, 5.0],
                  keypoint_flagged=[True, False, True])
    flags = landmark_flag_fields(_pred(**fields), np.ones(3, bool))
    assert all('constrained_xy' not in f for f in flags)
    flags = landmark_flag_fields(_pred(
        keypoint_constrained=[[10.5, 20.25], [NAN, NAN], [1.0, 2.0]],
        **fields), np.array([True, True, False]))
    doc = json.loads(json.dumps(_result(flags, USED).to_dict(),
                                allow_nan=False))
    # beside the prediction; None where not decoded or invalid
    assert [lm['constrained_xy'] for lm in doc['landmarks']] == [
        [10.5, 20.25], None, None]


def test_not_fitted_cells_are_empty_never_invented():
    flags = landmark_flag_fields(_pred(keypoint_flagged=[True, False]),
                                 np.ones(2, bool))
    status = configuration_status(torch.nn.Module())
    result = _result(flags, status)
    rows = list(csv.DictReader(io.StringIO(csv_text(
        CSV_COLUMNS, landmark_rows([result])))))
    for row in rows:
        assert row['plausibility_sigma'] == row['plausibility_mm'] == \
            row['implausible'] == ''
    assert [r['flag_reasons'] for r in rows] == ['ere', '']
    doc = result.to_dict()
    assert doc['configuration_status']['status'] == 'none'
    assert 'not fitted' in doc['configuration_status']['reason']
    assert doc['landmarks'][0]['plausibility'] is None


def test_labelme_description_names_every_reason(tmp_path):
    flags = landmark_flag_fields(_pred(
        keypoint_ere_flagged=[False, True],
        keypoint_implausible=[True, True],
        keypoint_plausibility=[4.25, 6.0],
        keypoint_flagged=[True, True]), np.ones(2, bool))
    result = _result(flags, USED)
    doc = labelme_document(result, str(tmp_path / 'a.json'))
    one, both = (s['description'] for s in doc['shapes'])
    assert 'plausibility 4.25 sigma' in one
    assert one.endswith(
        'FLAGGED for review: implausible (4.25 sigma; configuration flag: '
        'implausible > 3 sigma (alpha 0.01, 60 calibration scores))')
    assert 'FLAGGED for review: ERE (flag ERE > 1.5 mm [1.2, 1.9] (4 '\
        'images, 12 erroneous)); implausible (6.00 sigma' in both
    assert doc['mmchh']['configuration_status'] == USED
    assert labelme_summary([result], 'labelme').endswith(
        '2 flagged landmark(s) marked (ERE 1, implausible 2)')
    # a flag without reasons (a result of an older head) reads as ERE's
    result.landmarks[0]['flag_reasons'] = []
    result.configuration_status = None
    doc = labelme_document(result, str(tmp_path / 'a.json'))
    assert 'FLAGGED for review: ERE (flag ERE > 1.5 mm' in \
        doc['shapes'][0]['description']
    assert not math.isnan(doc['shapes'][0]['points'][0][0])


# -- through the real model: the session's calibrated demo with a
# configuration model fitted on its training shapes

@pytest.fixture(scope='module')
def configured(calibrated_small_demo, tmp_path_factory):
    """A copy of the session's calibrated model (checkpoint resealed) with
    a configuration model fitted on its training annotations and a
    threshold between two of the predicted sigmas, and a spacing that puts
    the ERE threshold amid the EREs: both flags fire on some landmarks."""
    import shutil
    import warnings

    from mmchh.apis import init_landmark_model, predict_landmarks
    from mmchh.codecs.utils.configuration_model import \
        fit_configuration_model
    data = calibrated_small_demo['data']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        model = init_landmark_model(calibrated_small_demo['ckpt'])
    shapes = np.stack([
        np.reshape(a['keypoints'], (-1, 3))[:, :2]
        for a in json.load(open(f'{data}/train.json'))['annotations']
    ])
    shape_model = fit_configuration_model(shapes)
    tmp = tmp_path_factory.mktemp('flag_reasons')
    images = tmp / 'in'
    images.mkdir()
    test = json.load(open(f'{data}/test1.json'))['images'][:2]
    for i, im in enumerate(test):
        shutil.copy(f'{data}/{im["file_name"]}', images / f'{i}.png')
    files = sorted(str(p) for p in images.iterdir())
    model.head.set_configuration_model(shape_model)  # scores only
    results = predict_landmarks(model, files)
    sigma = np.sort([lm['plausibility'] for r in results
                     for lm in r.landmarks
                     if lm['plausibility'] is not None])
    middle = len(sigma) // 2
    threshold = float(sigma[middle - 1] + sigma[middle]) / 2
    ere_px = np.median([lm['ere_px'] for r in results for lm in r.landmarks])
    model.head.set_configuration_model(shape_model, threshold, alpha=0.05,
                                       num_scores=40)
    model.head.seal_calibration(model.state_dict())
    ckpt = torch.load(calibrated_small_demo['ckpt'], map_location='cpu',
                      weights_only=False)
    ckpt['state_dict'] = {k: v.detach().cpu().clone()
                          for k, v in model.state_dict().items()}
    path = str(tmp / 'calibrated.pth')
    torch.save(ckpt, path)
    return dict(model=model, ckpt=path, images=str(images),
                threshold=float(np.float32(threshold)),
                spacing=float(model.head.flag_threshold) / float(ere_px))


def test_infer_json_csv_labelme_carry_the_reasons(configured, tmp_path):
    from mmchh.apis.batch_infer import infer_files
    results, _ = infer_files(configured['model'], configured['images'],
                             str(tmp_path), spacing=configured['spacing'],
                             progress=False, labelme=True)
    doc = json.load(open(tmp_path / 'landmarks.json'))
    status = doc['configuration_status']
    assert status['status'] == 'used' and status['num_scores'] == 40
    assert status['threshold'] == pytest.approx(configured['threshold'])
    with open(tmp_path / 'landmarks.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    seen = set()
    for i, res in enumerate(doc['results']):
        assert res['configuration_status'] == status
        labelme = json.load(open(tmp_path / res['labelme_file']))
        shapes = {s['label']: s for s in labelme['shapes']}
        for lm in res['landmarks']:
            reasons = lm['flag_reasons']
            seen.update(reasons)
            assert lm['flagged'] == bool(reasons)
            assert lm['implausible'] == (
                np.float32(lm['plausibility']) >
                np.float32(configured['threshold']))
            assert ('implausible' in reasons) == lm['implausible']
            assert lm['plausibility_mm'] > 0
            row = rows[i * len(res['landmarks']) + lm['index']]
            assert row['flag_reasons'] == ';'.join(reasons)
            assert float(row['plausibility_sigma']) == lm['plausibility']
            assert row['implausible'] == str(lm['implausible'])
            text = shapes[lm['name']]['description']
            assert text.startswith(f'ERE {lm["ere_mm"]:.3f} mm')
            assert f'plausibility {lm["plausibility"]:.2f} sigma' in text
            if 'implausible' in reasons:
                assert (f'implausible ({lm["plausibility"]:.2f} sigma; '
                        'configuration flag: implausible >') in text
            if 'ere' in reasons:
                assert 'FLAGGED for review: ERE (flag ERE >' in text
    # the threshold sits amid both signals: each flags some landmarks
    assert seen == {'ere', 'implausible'}
    assert [r.configuration_status for r in results] == [status] * 2


def test_infer_tool_prints_the_configuration_basis(configured, tmp_path):
    from mmchh.testing import run_tool_in_process
    proc = run_tool_in_process('infer', [
        configured['images'], '--checkpoint', configured['ckpt'],
        '--out-dir', str(tmp_path / 'o'), '--no-progress',
        '--spacing', repr(configured['spacing'])])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (f'infer.py: configuration flag: implausible > '
            f'{configured["threshold"]:.3g} sigma (alpha 0.05, 40 '
            'calibration scores)\n') in proc.stdout
    with open(tmp_path / 'o' / 'landmarks.csv', newline='') as f:
        assert any('implausible' in r['flag_reasons']
                   for r in csv.DictReader(f))
