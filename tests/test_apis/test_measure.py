# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Measurements with uncertainty end to end: predict_landmarks(...,
measurements=True), tools/infer.py --measurements and tools/measure.py, on a
tiny 19-landmark model trained and calibrated in-test."""
import csv
import json
import math
import os
import os.path as osp
import warnings

import numpy as np
import pytest

import mmchh  # noqa: F401
from mmchh.apis import init_landmark_model, predict_landmarks
from mmchh.apis.batch_infer import MEASUREMENT_CSV_COLUMNS
from mmchh.apis.measure import (EVAL_CSV_COLUMNS, evaluate_measurements,
                                load_measurement_split)
from mmchh.datasets.ceph_meta import CEPH_LABEL_NAMES
from mmchh.evaluation.functional import ceph_measurements, classify_ceph
from mmchh.testing import load_tool, run_tool_in_process

ENTRY_KEYS = {'value', 'value_class', 'mean', 'std', 'ci95',
              'most_likely_class', 'class_probabilities', 'class_names',
              'unit', 'num_valid', 'interval'}


@pytest.fixture(scope='module')
def tiny_ceph(ceph_coco_small, calibrated_small_demo):
    """The session's calibrated demo model (calibrated.pth)."""
    cfg_path, ckpt = calibrated_small_demo['cfg'], calibrated_small_demo[
        'ckpt']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        model = init_landmark_model(cfg_path, ckpt, device='cpu')
    return dict(cfg=cfg_path, ckpt=ckpt, model=model,
                test1=osp.join(ceph_coco_small, 'test1.json'),
                data=ceph_coco_small)


def test_predict_landmarks_measurements(tiny_ceph):
    split = load_measurement_split(tiny_ceph['test1'])
    paths = [s['path'] for s in split]
    sp = [tuple(s['spacing']) for s in split]
    res = predict_landmarks(tiny_ceph['model'], paths, spacing=sp,
                            batch_size=1, measurements=True,
                            num_samples=300, seed=3)
    again = predict_landmarks(tiny_ceph['model'], paths, spacing=sp,
                              batch_size=1, measurements=True,
                              num_samples=300, seed=3)
    rebatched = predict_landmarks(tiny_ceph['model'], paths, spacing=sp,
                                  batch_size=4, measurements=True,
                                  num_samples=300, seed=3)
    for r, r2, r4 in zip(res, again, rebatched):
        assert r.heatmaps is None  # not kept unless asked for
        assert list(r.measurements) == list(CEPH_LABEL_NAMES)
        assert r.measurements == r2.measurements  # same seed, same draws
        # the same uniforms whatever the batching; only float noise of the
        # batched forward pass can move a rare draw to the next pixel
        for name, m in r.measurements.items():
            m4 = r4.measurements[name]
            assert m4['value'] == pytest.approx(m['value'], abs=1e-3,
                                                nan_ok=True)
            for c, p in m['class_probabilities'].items():
                assert m4['class_probabilities'][c] == pytest.approx(
                    p, abs=0.02)
        pts = np.array([[lm['x'], lm['y']] for lm in r.landmarks])
        point = ceph_measurements(pts, r.spacing)
        for name, m in r.measurements.items():
            assert set(m) == ENTRY_KEYS
            if np.isfinite(point[name]):
                assert m['value'] == pytest.approx(point[name])
                assert m['value_class'] == classify_ceph(name, point[name])
            else:  # a tiny model can put two landmarks on one pixel
                assert m['value'] is None and m['value_class'] is None
            assert m['num_valid'] > 0
            lo, hi = m['ci95']
            assert lo <= m['mean'] <= hi and m['std'] >= 0
            assert sum(m['class_probabilities'].values()) == pytest.approx(
                1.0, abs=1e-9)
            best = max(m['class_probabilities'].values())
            assert m['class_probabilities'][str(
                m['most_likely_class'])] == best
        d = json.loads(json.dumps(r.to_dict()))
        assert d['measurements']['MW']['unit'] == 'mm'
    # different seed, different draws
    other = predict_landmarks(tiny_ceph['model'], paths[:1], spacing=sp[:1],
                              measurements=True, num_samples=300, seed=4)
    assert other[0].measurements != res[0].measurements
    # the heatmaps drawn from are the returned ones, mapped to the image
    r = predict_landmarks(tiny_ceph['model'], paths[:1], spacing=sp[:1],
                          measurements=True, return_heatmaps=True)[0]
    assert r.heatmaps is not None and r.heatmaps.shape[0] == 19


def test_without_spacing_mw_is_none_and_warns(tiny_ceph):
    path = load_measurement_split(tiny_ceph['test1'])[0]['path']
    with pytest.warns(UserWarning, match='MW'):
        r = predict_landmarks(tiny_ceph['model'], path, measurements=True,
                              num_samples=50)[0]
    assert r.measurements['MW']['mean'] is None
    assert r.measurements['MW']['ci95'] is None
    assert r.measurements['SNA']['mean'] is not None


def test_non_isbi_model_is_a_clear_error():
    """Checked before anything is predicted: a stub model is enough."""
    from types import SimpleNamespace

    from mmengine.config import Config

    from mmchh.apis.inference import check_measurement_model

    def stub(num, names=None):
        meta = None if names is None else dict(
            keypoint_id2name=dict(enumerate(names)))
        return SimpleNamespace(
            cfg=Config(dict(model=dict(head=dict(out_channels=num)))),
            dataset_meta=meta)

    with pytest.raises(ValueError, match='this model predicts 3'):
        predict_landmarks(stub(3), np.zeros((64, 64), np.uint8),
                          measurements=True)
    # 19 landmarks, but not the ISBI ones
    with pytest.raises(ValueError, match='19 ISBI 2015'):
        check_measurement_model(stub(19, [f'p{i}' for i in range(19)]))
    check_measurement_model(stub(19))  # the ISBI names by default


def test_measure_tool_end_to_end(tiny_ceph, tmp_path):
    out = tmp_path / 'eval'
    proc = run_tool_in_process('measure', [
        tiny_ceph['cfg'], tiny_ceph['ckpt'], tiny_ceph['test1'],
        '--num-samples', '200', '--out-dir', str(out), '--no-progress'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in CEPH_LABEL_NAMES:
        assert f'\n{name} ' in proc.stdout
    doc = json.load(open(out / 'measurements_eval.json'))
    split = load_measurement_split(tiny_ceph['test1'])
    assert doc['num_images'] == len(split) and doc['num_samples'] == 200
    rows = list(csv.DictReader(open(out / 'measurements_eval.csv')))
    assert tuple(rows[0]) == EVAL_CSV_COLUMNS
    assert len(rows) == 8 * len(split)
    # recompute the summary from the per-image entries, the slow way
    for name in CEPH_LABEL_NAMES:
        hits = covered = 0
        for im, s in zip(doc['images'], split):
            e = im['measurements'][name]
            assert e['label'] == s['labels'][name]
            truth = float(ceph_measurements(s['keypoints'],
                                            s['spacing'])[name])
            assert e['true_value'] == pytest.approx(truth)
            p = e['prediction']
            hits += p['most_likely_class'] == e['label']
            covered += p['ci95'][0] <= truth <= p['ci95'][1]
        summ = doc['summary'][name]
        assert summ['accuracy'] == pytest.approx(hits / len(split))
        assert summ['coverage95'] == pytest.approx(covered / len(split))
        assert summ['count'] == len(split)
    assert doc['summary']['mean']['accuracy'] == pytest.approx(np.mean(
        [doc['summary'][n]['accuracy'] for n in CEPH_LABEL_NAMES]))
    # the API gives the same numbers as the tool
    api = evaluate_measurements(tiny_ceph['model'], tiny_ceph['test1'],
                                num_samples=200, progress=False)
    assert api['summary'] == doc['summary']


def test_measure_errors_name_file_and_field(tiny_ceph, tmp_path):
    doc = json.load(open(tiny_ceph['test1']))
    no_labels = json.loads(json.dumps(doc))
    for im in no_labels['images']:
        im.pop('MW', None)
    bad = tmp_path / 'no_labels.json'
    bad.write_text(json.dumps(no_labels))
    with pytest.raises(ValueError, match=r'no_labels\.json.*MW'):
        load_measurement_split(str(bad))
    no_spacing = json.loads(json.dumps(doc))
    no_spacing['images'][0].pop('spacing')
    bad2 = tmp_path / 'no_spacing.json'
    bad2.write_text(json.dumps(no_spacing))
    with pytest.raises(SystemExit) as exc:
        load_tool('measure').main([
            tiny_ceph['cfg'], tiny_ceph['ckpt'], str(bad2), '--out-dir',
            str(tmp_path / 'o')
        ])
    msg = str(exc.value.code)
    assert 'no_spacing.json' in msg and '"spacing"' in msg
    assert not (tmp_path / 'o').exists()


def test_infer_cli_writes_measurements(tiny_ceph, tmp_path):
    split = load_measurement_split(tiny_ceph['test1'])
    folder = tmp_path / 'in'
    folder.mkdir()
    for s in split[:2]:
        os.symlink(s['path'], folder / osp.basename(s['path']))
    out = tmp_path / 'out'
    sx, sy = split[0]['spacing']
    proc = run_tool_in_process('infer', [
        str(folder), '--config', tiny_ceph['cfg'], '--checkpoint',
        tiny_ceph['ckpt'], '--out-dir', str(out), '--spacing', str(sx),
        str(sy), '--no-overlay', '--measurements', '--num-samples', '100',
        '--seed', '1'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.load(open(out / 'landmarks.json'))
    assert doc['measurement_sampling']['num_samples'] == 100
    rows = list(csv.DictReader(open(out / 'measurements.csv')))
    assert tuple(rows[0]) == MEASUREMENT_CSV_COLUMNS
    assert len(rows) == 2 * 8
    for i, res in enumerate(doc['results']):
        assert list(res['measurements']) == list(CEPH_LABEL_NAMES)
        for j, name in enumerate(CEPH_LABEL_NAMES):
            row, m = rows[i * 8 + j], res['measurements'][name]
            assert row['measurement'] == name
            assert float(row['ci95_low']) == m['ci95'][0]
            assert float(row['ci95_high']) == m['ci95'][1]
            assert int(row['most_likely_class']) == m['most_likely_class']
            assert float(row['p_class1']) == m['class_probabilities']['1']
            assert (row['p_class4'] == '') == (name != 'MW')
    with pytest.raises(SystemExit) as exc:
        load_tool('infer').parse_args([
            'x', '--config', 'c', '--checkpoint', 'k', '--out-dir', 'o',
            '--measurements', '--num-samples', '0'
        ])
    assert exc.value.code == 2


def test_fitted_intervals_on_the_tiny_model(tiny_ceph, tmp_path):
    """tools/measure.py --calib: the scale is fitted on the calibration
    split only (it covers that split at its level by construction), its
    intervals are reported beside the full-map ones and reused from the
    saved fit; the evaluated split can never be the calibration one."""
    from mmchh.apis.measure import fit_split_intervals
    from mmchh.engine import MeasurementIntervalFit
    from mmchh.evaluation.functional import interval_scores
    calib = osp.join(tiny_ceph['data'], 'calib.json')
    out = tmp_path / 'fit'
    # n calibration images x 8 values; at 0.9 the fit is the
    # ceil((8n + 1) * 0.9)-th smallest score
    proc = run_tool_in_process('measure', [
        tiny_ceph['cfg'], tiny_ceph['ckpt'], tiny_ceph['test1'],
        '--num-samples', '200', '--out-dir', str(out), '--no-progress',
        '--calib', calib, '--level', '0.9'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'interval scale' in proc.stdout and 'cov_fit' in proc.stdout
    doc = json.load(open(out / 'measurements_eval.json'))
    fit = MeasurementIntervalFit.load(str(out / 'measurement_intervals.json'))
    assert doc['interval_fit'] == fit.to_dict()
    num_scores = 8 * len(load_measurement_split(calib))
    assert fit.calib_file == calib and fit.num_scores == num_scores
    assert fit.rank == math.ceil((num_scores + 1) * 0.9)
    assert np.isfinite(fit.scale)
    # the fit is the rank-th smallest of the pooled calibration scores, so
    # it covers at least rank of them
    model = tiny_ceph['model']
    again = fit_split_intervals(model, calib, level=0.9, num_samples=200,
                                progress=False)
    assert again.scale == fit.scale
    covered = sum(round(m['coverage'] * m['count'])
                  for m in fit.per_measurement.values())
    assert covered >= fit.rank
    # the test split's intervals: center +- scale * spread, coverage
    # recomputed the slow way
    split = load_measurement_split(tiny_ceph['test1'])
    for name in CEPH_LABEL_NAMES:
        covered = []
        for im in doc['images']:
            e = im['measurements'][name]
            iv = e['interval']
            assert iv['low'] == pytest.approx(
                iv['center'] - fit.scale * iv['spread'])
            assert iv['high'] == pytest.approx(
                iv['center'] + fit.scale * iv['spread'])
            covered.append(iv['low'] <= e['true_value'] <= iv['high'])
            s = interval_scores([iv['center']], [iv['spread']],
                                [e['true_value']])[0]
            assert covered[-1] == (s <= fit.scale)
        summ = doc['summary'][name]
        assert summ['coverage_interval'] == pytest.approx(np.mean(covered))
        assert np.isfinite(summ['mean_interval_width'])
    assert len(doc['images']) == len(split)
    rows = list(csv.DictReader(open(out / 'measurements_eval.csv')))
    assert rows[0]['interval_low'] != ''
    # the saved fit gives the same intervals without refitting
    reused = evaluate_measurements(model, tiny_ceph['test1'],
                                   num_samples=200, progress=False,
                                   interval_fit=str(
                                       out / 'measurement_intervals.json'))
    assert reused['summary'] == doc['summary']
    # never on the evaluated split, nor on one sharing an image with it
    with pytest.raises(ValueError, match='calibration split only'):
        evaluate_measurements(model, tiny_ceph['test1'], num_samples=20,
                              progress=False, calib_file=tiny_ceph['test1'])
    with pytest.raises(SystemExit) as exc:
        load_tool('measure').main([
            tiny_ceph['cfg'], tiny_ceph['ckpt'], calib, '--calib', calib,
            '--allow-split-overlap', '--out-dir', str(tmp_path / 'o'),
            '--no-progress'])
    assert 'calibration split only' in str(exc.value.code)
    assert not (tmp_path / 'o').exists()
    # a fit for other weights is refused
    other = MeasurementIntervalFit(**dict(fit.to_dict(), scale=1.0,
                                          weights_fingerprint='0' * 64))
    with pytest.raises(ValueError, match='refit'):
        evaluate_measurements(model, tiny_ceph['test1'], num_samples=20,
                              progress=False, interval_fit=other)
