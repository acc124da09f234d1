# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The measurement interval scale that calibration stores, used by default:
calibration's fit equals tools/measure.py --calib's on the same split, the
default path uses the stored scale and gives the --calib path's numbers, a
checkpoint without one is said so and labelled full-map."""
import json
import os.path as osp
import warnings

import numpy as np
import pytest
import torch

import mmchh  # noqa: F401
from mmchh.apis import init_landmark_model
from mmchh.apis.measure import evaluate_measurements, fit_split_intervals
from mmchh.calibration.conformal import MeasurementIntervalFit
from mmchh.calibration.conformal.interval_calibration import \
    fit_calibration_intervals
from mmchh.testing import run_tool_in_process


@pytest.fixture(scope='module')
def small(calibrated_small_demo):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        model = init_landmark_model(calibrated_small_demo['cfg'],
                                    calibrated_small_demo['ckpt'], 'cpu')
    data = calibrated_small_demo['data']
    return dict(calibrated_small_demo, model=model,
                calib=osp.join(data, 'calib.json'),
                test1=osp.join(data, 'test1.json'))


def _stored(small, tmp_path, scale, level, region_level, jitter=None):
    """The calibrated checkpoint with a measurement scale (and jitter)
    stored and resealed (as calibration stores them)."""
    ckpt = torch.load(small['ckpt'], map_location='cpu')
    model = small['model']
    head = model.head
    saved = {n: getattr(head, n).clone() for n in (
        'measurement_interval_scale', 'measurement_interval_level',
        'measurement_region_level', 'measurement_jitter',
        'calibration_fingerprint')}
    try:
        head.set_measurement_interval(scale, level, region_level, jitter)
        head.seal_calibration(model.state_dict())
        ckpt['state_dict'] = {k: v.detach().cpu().clone() for k, v in
                              model.state_dict().items()}
    finally:
        with torch.no_grad():
            for n, v in saved.items():
                getattr(head, n).copy_(v)
    path = str(tmp_path / 'stored.pth')
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize('min_jitter_images', [5, 2],
                         ids=['too-few-for-jitter', 'jitter'])
def test_calibration_fit_is_the_calib_split_fit(small, min_jitter_images):
    """The scale (and jitter) calibration fits equal tools/measure.py
    --calib's fit on the same split (same draws, same seeds, same images);
    the head stores what was fitted."""
    runner, model = small['runner'], small['model']
    loader = runner.build_dataloader(runner.cfg.calib_dataloader)
    net = runner.model
    net.eval()
    head = net.head
    names = ('measurement_interval_scale', 'measurement_interval_level',
             'measurement_region_level', 'measurement_jitter')
    before = {n: getattr(head, n).clone() for n in names}
    try:
        fitted = fit_calibration_intervals(
            net, loader, level=0.9, num_samples=200,
            min_jitter_images=min_jitter_images)
        stored = head.measurement_jitter.clone()
    finally:
        with torch.no_grad():
            for n, v in before.items():
                getattr(head, n).copy_(v)
    by_split = fit_split_intervals(model, small['calib'], level=0.9,
                                   num_samples=200, progress=False,
                                   min_jitter_images=min_jitter_images)
    # 3 calibration images x 8 measurements
    assert fitted['num_scores'] == by_split.num_scores == 24
    assert fitted['scale'] == pytest.approx(by_split.scale, rel=1e-6)
    if min_jitter_images >= 3:
        assert fitted['jitter'] is None and by_split.jitter is None
        assert torch.isnan(stored).all()
        return
    assert fitted['jitter_images'] == by_split.jitter_images == 3
    jitter = np.asarray(fitted['jitter'])
    assert jitter.shape == (19, 2, 2) and np.abs(jitter).max() > 0
    # the dataset's ground truth is float32, the JSON's float64
    np.testing.assert_allclose(jitter, by_split.jitter_array, rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(stored.double().numpy(), jitter, rtol=1e-6,
                               atol=1e-9)


def test_default_uses_the_stored_scale(small, tmp_path):
    calib_run = evaluate_measurements(
        small['model'], small['test1'], num_samples=200, progress=False,
        calib_file=small['calib'], level=0.9)
    fit = calib_run['interval_fit']
    ckpt = _stored(small, tmp_path, fit['scale'], 0.9, fit['region_level'])
    out = tmp_path / 'default'
    proc = run_tool_in_process('measure', [
        small['cfg'], ckpt, small['test1'], '--num-samples', '200',
        '--out-dir', str(out), '--no-progress'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (f'intervals: fitted, interval scale {fit["scale"]:.3f} at level 0.9 '
            'stored in the checkpoint by calibration') in proc.stdout
    # 3 calibration images: no jitter, and the tool says so
    assert "the maps' own draws (no landmark jitter: fitted from 6" in \
        proc.stdout
    doc = json.load(open(out / 'measurements_eval.json'))
    assert doc['intervals'] == dict(kind='fitted', source='checkpoint',
                                    note='')
    assert doc['interval_fit']['scale'] == pytest.approx(fit['scale'])
    for name, r in doc['summary'].items():
        if name == 'mean':
            continue
        ref = calib_run['summary'][name]
        for key in ('coverage_interval', 'mean_interval_width', 'mae'):
            # the stored scale is a float32 buffer
            np.testing.assert_allclose(r[key], ref[key], rtol=1e-5)
    for a, b in zip(doc['images'], calib_run['images']):
        for name, m in a['measurements'].items():
            iv, ref = m['interval'], b['measurements'][name]['interval']
            np.testing.assert_allclose(
                [iv['low'], iv['high']], [ref['low'], ref['high']],
                rtol=1e-5, atol=1e-5)


def test_default_uses_the_stored_jitter(small, tmp_path):
    """A stored jitter widens the default intervals exactly as the --calib
    fit's does, and is said so."""
    calib_run = evaluate_measurements(
        small['model'], small['test1'], num_samples=200, progress=False,
        calib_file=small['calib'], level=0.9)
    fit = fit_split_intervals(small['model'], small['calib'], level=0.9,
                              num_samples=200, progress=False,
                              min_jitter_images=2)
    ckpt = _stored(small, tmp_path, fit.scale, 0.9, fit.region_level,
                   fit.jitter_array)
    out = tmp_path / 'default'
    proc = run_tool_in_process('measure', [
        small['cfg'], ckpt, small['test1'], '--num-samples', '200',
        '--out-dir', str(out), '--no-progress'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "widened by each landmark's fitted jitter" in proc.stdout
    doc = json.load(open(out / 'measurements_eval.json'))
    np.testing.assert_allclose(doc['interval_fit']['jitter'],
                               fit.jitter_array, rtol=1e-6, atol=1e-9)
    widths = {n: r['mean_interval_width'] for n, r in doc['summary'].items()
              if n != 'mean'}
    plain = {n: r['mean_interval_width']
             for n, r in calib_run['summary'].items() if n != 'mean'}
    # the draws differ (widened), so do the spreads behind the widths
    assert any(abs(widths[n] / fit.scale - plain[n] /
                   calib_run['interval_fit']['scale']) > 1e-6
               for n in widths if widths[n] and plain[n])
    # the same images, draws and jitter through the API as the tool
    path = str(tmp_path / 'fit.json')
    fit.save(path)
    api = evaluate_measurements(small['model'], small['test1'],
                                num_samples=200, progress=False,
                                interval_fit=path)
    for a, b in zip(doc['images'], api['images']):
        for name, m in a['measurements'].items():
            iv, ref = m['interval'], b['measurements'][name]['interval']
            # the checkpoint stores the jitter and scale as float32
            np.testing.assert_allclose(
                [iv['low'], iv['high']], [ref['low'], ref['high']],
                rtol=1e-3, atol=1e-3)
    assert MeasurementIntervalFit.load(path).jitter == fit.jitter


def test_no_stored_scale_warns_and_labels_full_map(small, tmp_path):
    # a calibration split too small for a finite scale at 0.95 stores NaN
    region_level = float(small['model'].head.conformal_level.max())
    ckpt = _stored(small, tmp_path, float('nan'), 0.95, region_level)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        proc = run_tool_in_process('measure', [
            small['cfg'], ckpt, small['test1'], '--num-samples',
            '50', '--out-dir', str(tmp_path / 'o'), '--no-progress'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    warned = [str(w.message) for w in caught
              if 'measurement interval scale' in str(w.message)]
    assert len(warned) == 1 and 'FULL-MAP' in warned[0]
    assert '\n' not in warned[0]
    assert 'intervals: FULL-MAP (the calibration split was too small' in \
        proc.stdout
    doc = json.load(open(tmp_path / 'o' / 'measurements_eval.json'))
    assert doc['intervals']['kind'] == 'full-map'
    assert doc['interval_fit'] is None


def test_full_map_on_request(small, tmp_path):
    proc = run_tool_in_process('measure', [
        small['cfg'], small['ckpt'], small['test1'], '--num-samples', '50',
        '--out-dir', str(tmp_path / 'o'), '--no-progress', '--intervals',
        'full-map'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'intervals: FULL-MAP (full-map draws, as requested' in \
        proc.stdout
    assert 'measurement interval scale' not in proc.stderr
    doc = json.load(open(tmp_path / 'o' / 'measurements_eval.json'))
    assert doc['intervals']['source'] == 'requested'
