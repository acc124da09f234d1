# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""predict_landmarks and infer.py --measurements report the intervals
calibration fitted (the scale stored in the checkpoint) by default: the
same numbers as tools/measure.py's default path for the same image,
labelled fitted; without a stored scale one warning and full-map, labelled
so; full-map on request."""
import csv
import json
import shutil
import warnings

import numpy as np
import pytest
import torch

import mmchh  # noqa: F401
from mmchh.apis import init_landmark_model, predict_landmarks
from mmchh.apis.batch_infer import infer_files
from mmchh.apis.measure import evaluate_measurements
from mmchh.testing import run_tool_in_process

DRAWS = 100
NAMES = ('ANB', 'SNB', 'SNA', 'ODI', 'APDI', 'FHI', 'FMA', 'MW')


@pytest.fixture(scope='module')
def stored(calibrated_small_demo, tmp_path_factory):
    """The session's model and a copy of its checkpoint with a
    measurement interval scale stored and resealed (as calibration
    stores it), the first test1 image alone in a folder, its spacing."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        plain = init_landmark_model(calibrated_small_demo['ckpt'])
        model = init_landmark_model(calibrated_small_demo['ckpt'])
    head = model.head
    region_level = float(head.conformal_level.max())
    # a calibration split too small for a finite scale at 0.95 stores NaN
    plain.head.set_measurement_interval(float('nan'), 0.95, region_level)
    plain.head.seal_calibration(plain.state_dict())
    head.set_measurement_interval(1.7, 0.9, region_level)
    head.seal_calibration(model.state_dict())
    ckpt = torch.load(calibrated_small_demo['ckpt'], map_location='cpu',
                      weights_only=False)
    ckpt['state_dict'] = {k: v.detach().cpu().clone()
                          for k, v in model.state_dict().items()}
    tmp = tmp_path_factory.mktemp('stored_scale')
    torch.save(ckpt, str(tmp / 'stored.pth'))
    data = calibrated_small_demo['data']
    test1 = f'{data}/test1.json'
    first = json.load(open(test1))['images'][0]
    (tmp / 'in').mkdir()
    shutil.copy(f'{data}/{first["file_name"]}', tmp / 'in' / 'a.png')
    return dict(model=model, plain=plain, ckpt=str(tmp / 'stored.pth'),
                test1=test1, image=str(tmp / 'in' / 'a.png'),
                folder=str(tmp / 'in'),
                spacing=float(np.mean(first['spacing'])), tmp=tmp)


@pytest.fixture(scope='module')
def measured(stored):
    """tools/measure.py's default path (its function) on test1 with the
    stored scale: the first image's fitted intervals."""
    doc = evaluate_measurements(stored['model'], stored['test1'],
                                num_samples=DRAWS, progress=False)
    assert doc['intervals'] == dict(kind='fitted', source='checkpoint',
                                    note='')
    return {name: (m['interval']['low'], m['interval']['high'])
            for name, m in doc['images'][0]['measurements'].items()}


def _intervals(measurements):
    return {name: (m['interval']['low'], m['interval']['high'])
            for name, m in measurements.items()}


def test_predict_landmarks_fitted_by_default_as_measure(stored, measured):
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        result, = predict_landmarks(stored['model'], stored['image'],
                                    spacing=stored['spacing'],
                                    measurements=True, num_samples=DRAWS)
    assert result.intervals == dict(
        kind='fitted', source='checkpoint', note='',
        scale=pytest.approx(1.7), level=pytest.approx(0.9),
        region_level=pytest.approx(float(
            stored['model'].head.conformal_level.max())), jitter=False)
    assert _intervals(result.measurements) == measured
    for name in NAMES:
        iv = result.measurements[name]['interval']
        assert iv['kind'] == 'fitted' and iv['level'] == pytest.approx(0.9)
        # the full-map interval stays, under its own name
        assert iv['low'] != result.measurements[name]['ci95'][0]
    assert result.to_dict()['intervals']['kind'] == 'fitted'


def test_infer_tool_writes_the_fitted_intervals(stored, measured, tmp_path):
    out = tmp_path / 'o'
    proc = run_tool_in_process('infer', [
        stored['folder'], '--checkpoint', stored['ckpt'], '--out-dir',
        str(out), '--spacing', str(stored['spacing']), '--measurements',
        '--num-samples', str(DRAWS), '--no-progress', '--no-overlay'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ('infer.py: measurement intervals: fitted, interval scale 1.700 '
            'at level 0.9 stored in the checkpoint by calibration'
            ) in proc.stdout
    doc = json.load(open(out / 'landmarks.json'))
    assert doc['intervals']['kind'] == 'fitted'
    assert doc['intervals']['source'] == 'checkpoint'
    assert doc['results'][0]['intervals'] == doc['intervals']
    assert _intervals(doc['results'][0]['measurements']) == measured
    rows = list(csv.DictReader(open(out / 'measurements.csv')))
    assert {(r['intervals'], r['interval_source']) for r in rows} == {
        ('fitted', 'checkpoint')}
    for r in rows:
        np.testing.assert_allclose(
            [float(r['interval_low']), float(r['interval_high'])],
            measured[r['measurement']], rtol=1e-12)


def test_no_stored_scale_one_warning_and_full_map(stored, tmp_path):
    # no finite scale stored in that model
    assert np.isnan(float(stored['plain'].head.measurement_interval_scale))
    shutil.copy(stored['image'], tmp_path / 'b.png')
    shutil.copy(stored['image'], tmp_path / 'c.png')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        results, _ = infer_files(stored['plain'], str(tmp_path),
                                 str(tmp_path / 'o'), spacing=0.1,
                                 batch_size=1, progress=False,
                                 overlay=False, measurements=True,
                                 num_samples=20)
    warned = [str(w.message) for w in caught
              if 'measurement interval scale' in str(w.message)]
    assert len(warned) == 1 and 'FULL-MAP' in warned[0]
    doc = json.load(open(tmp_path / 'o' / 'landmarks.json'))
    assert doc['intervals']['kind'] == 'full-map'
    assert doc['intervals']['source'] == 'no stored scale'
    for result in results:
        for m in result.measurements.values():
            assert m['interval']['kind'] == 'full-map'
            assert [m['interval']['low'], m['interval']['high']] == \
                list(m['ci95'] or (None, None))
    rows = list(csv.DictReader(open(tmp_path / 'o' / 'measurements.csv')))
    assert {(r['intervals'], r['interval_source']) for r in rows} == {
        ('full-map', 'no stored scale')}


def test_full_map_on_request(stored):
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        result, = predict_landmarks(stored['model'], stored['image'],
                                    spacing=stored['spacing'],
                                    measurements=True, num_samples=20,
                                    intervals='full-map')
    assert result.intervals['source'] == 'requested'
    assert 'not calibrated' in result.intervals['note']
    anb = result.measurements['ANB']
    assert anb['interval']['kind'] == 'full-map'
    assert [anb['interval']['low'], anb['interval']['high']] == anb['ci95']


def test_seed_of_three_integers_refused_for_fitted(stored):
    with pytest.raises(ValueError, match='seed of one or two integers'):
        predict_landmarks(stored['model'], stored['image'],
                          spacing=stored['spacing'], measurements=True,
                          num_samples=5, seed=(1, 2, 3))
