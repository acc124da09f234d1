import json
import os
import os.path as osp

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mmchh.evaluation.functional import compare_runs
from mmchh.evaluation.metrics import UncertaintyMetric
from mmchh.utils.errors import InputError
from mmchh.utils.io import read_npz


def sample(pred_xy, gt_xy, ere, conf, nll, hit, spacing=(0.5, 0.5),
           flagged=None):
    k = len(ere)
    pred = dict(
        keypoints=np.asarray(pred_xy, np.float32)[None],
        keypoint_ere_mm=np.asarray(ere, np.float32)[None],
        keypoint_mode_prob=np.asarray(conf, np.float32)[None],
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


def conformal_sample(pred_xy, gt_xy, inside, area_mm2, radius,
                     levels=(0.8, 0.9), spacing=(0.5, 0.5)):
    """A sample with the head's conformal fields, (1, K, L) each."""
    k = len(pred_xy)
    out = sample(pred_xy, gt_xy, [1.0] * k, [0.1] * k, [2.0] * k,
                 [True] * k, spacing=spacing)
    pixel_area_mm2 = spacing[0] * spacing[1]
    out['pred_instances'].update(
        keypoint_in_region=np.asarray(inside, bool)[None],
        keypoint_region_area_mm2=np.asarray(area_mm2, np.float64)[None],
        keypoint_region_area=np.asarray(area_mm2, np.float64)[None] /
        pixel_area_mm2,
        keypoint_disc_radius=np.asarray(radius, np.float32)[None],
        keypoint_region_level=np.asarray(levels, np.float32)[None])
    return out


def test_conformal_numbers_by_hand():
    """Two images of two landmarks at levels 0.8 and 0.9, 0.5 mm pixels."""
    radius = [[6.0, 12.0], [0.5, 2.0]]  # (K, L) image pixels
    batch = [
        # radial errors 5 and 0 px
        conformal_sample([[0, 0], [10, 10]], [[3, 4], [10, 10]],
                         inside=[[True, True], [False, True]],
                         area_mm2=[[2.0, 5.0], [1.0, 3.0]], radius=radius),
        # radial errors 10 and 1 px
        conformal_sample([[0, 0], [0, 0]], [[6, 8], [0, 1]],
                         inside=[[False, True], [False, False]],
                         area_mm2=[[4.0, 8.0], [6.0, 7.0]], radius=radius),
    ]
    metric = UncertaintyMetric(corr_bin_size=2)
    metric.dataset_meta = dict(keypoint_id2name={0: 'sella', 1: 'nasion'})
    metric.process({}, batch)
    res = metric.evaluate(2)
    expected = {
        'coverage': 1 / 4, 'area_mm2': 3.0,  # median of 2, 1, 4, 6
        'disc_coverage': 2 / 4,  # 5 <= 6, 0 <= 0.5; 10 > 6, 1 > 0.5
        # pi r^2 of 6 and 0.5 px at 0.25 mm^2 per px^2, median of two each
        'disc_area_mm2': (9 * np.pi + np.pi / 16) / 2,
        'coverage/sella': 1 / 2, 'coverage/nasion': 0.0,
        'coverage_0.9': 3 / 4, 'area_mm2_0.9': 6.0,  # of 5, 3, 8, 7
        'disc_coverage_0.9': 1.0,
        'disc_area_mm2_0.9': (36 * np.pi + np.pi) / 2,
        'coverage/sella_0.9': 1.0, 'coverage/nasion_0.9': 1 / 2,
    }
    got = {k[len('unc/conformal/'):]: v for k, v in res.items()
           if k.startswith('unc/conformal/')
           and not k.endswith(('_low', '_high'))}
    assert set(got) == set(expected)
    # intervals of the coverages of every level, not per landmark
    ends = {k[len('unc/conformal/'):] for k in res
            if k.startswith('unc/conformal/') and k.endswith('_low')}
    assert ends == {'coverage_low', 'disc_coverage_low',
                    'coverage_0.9_low', 'disc_coverage_0.9_low'}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key


def test_conformal_disc_of_unbounded_radius_is_the_whole_plane():
    """A radius fitted from too few maps is stored as float32's largest
    value; the metric reads it as infinite."""
    big = float(np.finfo(np.float32).max)
    metric = UncertaintyMetric(corr_bin_size=2)
    metric.process({}, [conformal_sample(
        [[0, 0]], [[30, 40]], [[True, True]], [[1.0, 2.0]],
        [[big, 1.0]])] * 2)
    res = metric.evaluate(2)
    assert res['unc/conformal/disc_coverage'] == 1.0
    assert res['unc/conformal/disc_area_mm2'] == np.inf
    assert res['unc/conformal/disc_coverage_0.9'] == 0.0  # 50 px > 1 px


def test_conformal_numbers_absent_without_regions_and_nan_when_invalid():
    plain = UncertaintyMetric(corr_bin_size=2)
    plain.process({}, [sample([[0, 0]], [[1, 0]], [1.0], [0.1], [2.0],
                              [True])] * 2)
    assert not [k for k in plain.evaluate(2) if 'conformal' in k]
    broken = conformal_sample([[0, 0]], [[1, 0]], [[False, False]],
                              [[np.nan, np.nan]], [[2.0, 3.0]])
    broken['pred_instances']['keypoint_valid'] = np.zeros((1, 1), bool)
    metric = UncertaintyMetric(corr_bin_size=2)
    metric.process({}, [broken, conformal_sample(
        [[0, 0]], [[1, 0]], [[True, True]], [[1.0, 2.0]], [[2.0, 3.0]])])
    with pytest.warns(UserWarning, match='no valid prediction'):
        res = metric.evaluate(2)
    conformal = {k: v for k, v in res.items() if 'conformal' in k}
    assert 'unc/conformal/coverage_0.9' in conformal
    assert all(np.isnan(v) for v in conformal.values())


def px_sample(pred_xy, gt_xy, ere_px, flagged=None, name='a.png'):
    """A sample without spacing: the head's ERE in image pixels."""
    out = sample(pred_xy, gt_xy, ere_px, [0.5] * len(ere_px),
                 [1.0] * len(ere_px), [True] * len(ere_px), flagged=flagged)
    pred = out['pred_instances']
    pred['keypoint_ere_px'] = pred.pop('keypoint_ere_mm')
    del out['spacing']
    out['img_path'] = name
    return out


def test_pixel_units_by_hand(tmp_path):
    """Two images of two landmarks without spacing: radial errors 5, 0, 10
    and 13 px; ERE 4, 1, 12, 2 px; erroneous = error > 6 px."""
    batch = [
        px_sample([[0, 0], [10, 10]], [[3, 4], [10, 10]], [4.0, 1.0],
                  flagged=[True, False]),
        px_sample([[0, 0], [0, 0]], [[6, 8], [5, 12]], [12.0, 2.0],
                  flagged=[True, False]),
    ]
    metric = UncertaintyMetric(erroneous_px=6.0, corr_bin_size=2,
                               out_dir=str(tmp_path))
    metric.process({}, batch)
    res = metric.evaluate(2)
    error, ere = np.array([5.0, 0.0, 10.0, 13.0]), np.array([4, 1, 12, 2.0])
    assert res['unc/MERE'] == pytest.approx(19 / 4)
    assert res['unc/erroneous_fraction'] == pytest.approx(50.0)
    # erroneous: 10 (ERE 12) and 13 (ERE 2); good: 5 (ERE 4) and 0 (ERE 1)
    # pairs ranked right: 12 > 4, 12 > 1, 2 > 1; wrong: 2 < 4 -> AUC 3/4
    assert res['unc/AUC'] == pytest.approx(0.75)
    assert res['unc/pearson'] == pytest.approx(np.corrcoef(ere, error)[0, 1])
    assert res['unc/NLL'] == pytest.approx(1.0)
    # the table in pixels: counts and MRE, no SDR (its radii are in mm)
    assert res['unc/good/count'] == 2 and res['unc/erroneous/count'] == 2
    assert res['unc/good/MRE'] == pytest.approx(6.5)
    assert res['unc/erroneous/MRE'] == pytest.approx(7.5)
    assert not [k for k in res if 'SDR' in k]
    assert metric.last_details['unit'] == 'px'
    assert metric.last_details['erroneous_px'] == 6.0
    report = json.load(open(osp.join(str(tmp_path), 'unc_uncertainty.json')))
    assert report['unit'] == 'px' and 'erroneous_mm' not in report


def test_mm_units_named_in_details():
    metric = UncertaintyMetric(corr_bin_size=2)
    metric.process({}, [sample([[0, 0]], [[1, 0]], [1.0], [0.1], [2.0],
                               [True])] * 2)
    metric.evaluate(2)
    assert metric.last_details['unit'] == 'mm'
    assert metric.last_details['erroneous_mm'] == 2.0


def test_mixed_spacing_is_refused_naming_both():
    from mmchh.utils.errors import InputError
    metric = UncertaintyMetric(corr_bin_size=2)
    with_mm = sample([[0, 0]], [[1, 0]], [1.0], [0.1], [2.0], [True])
    with_mm['img_path'] = 'ceph.bmp'
    metric.process({}, [with_mm, px_sample([[0, 0]], [[1, 0]], [1.0],
                                           name='hand.jpg')])
    with pytest.raises(InputError, match=r'1 of 2 .*ceph\.bmp.*hand\.jpg'):
        metric.evaluate(2)


def test_pixel_units_need_the_px_ere():
    bad = px_sample([[0, 0]], [[1, 0]], [1.0])
    del bad['pred_instances']['keypoint_ere_px']
    with pytest.raises(KeyError, match='keypoint_ere_px'):
        UncertaintyMetric().process({}, [bad])


# --------------------------------------------------------------------------
# bootstrap intervals over images
# --------------------------------------------------------------------------
def interval_batch(num_images=12, k=5, seed=3):
    """Random samples that all share ONE file name (names may repeat: the
    bootstrap's image is the sample), with flags; the per-landmark truth
    (errors in mm at 0.5 mm/px)."""
    rng = np.random.default_rng(seed)
    batch, truth = [], dict(error=[], ere=[], conf=[], nll=[], hit=[],
                            flag=[])
    for _ in range(num_images):
        gt = rng.uniform(0, 50, (k, 2))
        err_px = rng.exponential(4.0, k)
        pred = gt + np.stack([err_px, np.zeros(k)], 1)
        ere = err_px * 0.5 * rng.uniform(0.5, 1.5, k)
        conf = np.round(rng.uniform(0, 0.3, k), 2)
        nll, hit = rng.uniform(1, 5, k), rng.random(k) < 0.3
        flag = ere > 2.0
        s = sample(pred, gt, ere, conf, nll, hit, flagged=flag)
        s['img_path'] = 'same_name.png'
        batch.append(s)
        for key, v in zip(truth, (err_px * 0.5, ere, conf, nll, hit, flag)):
            truth[key].append(np.asarray(v, np.float32).astype(np.float64))
    return batch, {key: np.concatenate(v) for key, v in truth.items()}


def nan_on_error(fn):
    def wrapped(*args):
        try:
            return fn(*args)
        except ValueError:
            return float('nan')
    return wrapped


def test_intervals_equal_the_bootstrap_on_the_same_arrays(tmp_path):
    from scipy import stats

    from mmchh.evaluation.functional import (BootstrapOptions, bootstrap_mean,
                                             expected_calibration_error,
                                             image_bootstrap)
    batch, t = interval_batch()
    metric = UncertaintyMetric(erroneous_mm=2.0, corr_bin_size=4,
                               ci_resamples=150, ci_seed=7,
                               out_dir=str(tmp_path))
    metric.process({}, batch)
    res = metric.evaluate(len(batch))
    ids = np.repeat(np.arange(len(batch)), 5)
    opts = dict(image_ids=ids,
                options=BootstrapOptions(num_resamples=150, seed=7))
    bad = t['error'] > 2.0
    want = dict(
        MERE=bootstrap_mean(t['ere'], **opts),
        NLL=bootstrap_mean(t['nll'], **opts),
        erroneous_fraction=bootstrap_mean(bad * 100.0, **opts),
        AUC=image_bootstrap(nan_on_error(lambda e, b: roc_auc_score(b, e)),
                            (t['ere'], bad), **opts),
        ECE=image_bootstrap(
            lambda c, h: expected_calibration_error(c, h, 10)['ece'],
            (t['conf'], t['hit'] > 0), **opts),
        ECE_unit=image_bootstrap(
            lambda c, h: expected_calibration_error(c, h, 10, 'unit')['ece'],
            (t['conf'], t['hit'] > 0), **opts),
        pearson=image_bootstrap(lambda e, r: stats.pearsonr(e, r)[0],
                                (t['ere'], t['error']), **opts),
        spearman=image_bootstrap(lambda e, r: stats.spearmanr(e, r)[0],
                                 (t['ere'], t['error']), **opts))
    flag = t['flag'] > 0
    want['good/MRE'] = bootstrap_mean(t['error'], valid=~flag, **opts)
    want['erroneous/SDR_2.5mm'] = bootstrap_mean(
        (t['error'] < 2.5) * 100.0, valid=flag, **opts)
    for key, interval in want.items():
        assert np.isfinite(interval.low), key
        assert res[f'unc/{key}_low'] == pytest.approx(interval.low,
                                                      rel=1e-6), key
        assert res[f'unc/{key}_high'] == pytest.approx(interval.high,
                                                       rel=1e-6), key
        # the interval brackets the metric's own value
        assert res[f'unc/{key}_low'] <= res[f'unc/{key}'] <= \
            res[f'unc/{key}_high'], key
    ends = {k[:-len('_low')] for k in res if k.endswith('_low')}
    assert ends == {f'unc/{k}' for k in (
        'MERE', 'NLL', 'ECE', 'ECE_unit', 'pearson', 'spearman', 'AUC',
        'erroneous_fraction')} | {
        f'unc/{row}/{key}' for row in ('overall', 'good', 'erroneous')
        for key in ('MRE', 'SDR_2mm', 'SDR_2.5mm', 'SDR_3mm', 'SDR_4mm')} | {
        # a head without the configuration flag: its flag is the ERE's
        f'unc/flag_signals/{signal}/{rate}' for signal in ('ere', 'combined')
        for rate in ('erroneous_recall', 'catastrophic_recall',
                     'false_flag_rate')}
    assert all(isinstance(v, float) for k, v in res.items()
               if k.endswith(('_low', '_high')))
    report = json.load(open(osp.join(str(tmp_path), 'unc_uncertainty.json')))
    auc = report['intervals']['AUC']
    assert auc['num_images'] == len(batch) and auc['num_resamples'] == 150
    assert auc['low'] == pytest.approx(res['unc/AUC_low'])
    assert report['metrics']['AUC_high'] == pytest.approx(res['unc/AUC_high'])


def test_invalid_predictions_give_nan_intervals_and_none_when_disabled():
    batch, _ = interval_batch(num_images=4)
    valid = UncertaintyMetric(corr_bin_size=4, ci_resamples=20)
    valid.process({}, batch)
    valid_keys = {k for k in valid.evaluate(4) if k.endswith('_low')}
    batch[1]['pred_instances']['keypoint_valid'] = np.array(
        [[True, False, True, True, True]])
    broken = UncertaintyMetric(corr_bin_size=4, ci_resamples=20)
    broken.process({}, batch)
    with pytest.warns(UserWarning, match='no valid prediction'):
        res = broken.evaluate(4)
    ends = [k for k in res if k.endswith(('_low', '_high'))]
    assert {k for k in ends if k.endswith('_low')} == valid_keys
    assert all(np.isnan(res[k]) for k in ends)
    assert 'invalid' in broken.last_details['intervals']['MERE']['reason']
    # an infinite NLL (a zero probability): no NLL interval, the rest stay
    batch, _ = interval_batch(num_images=4)
    batch[2]['pred_instances']['keypoint_nll'][0, 3] = np.inf
    inf_nll = UncertaintyMetric(corr_bin_size=4, ci_resamples=20)
    inf_nll.process({}, batch)
    res = inf_nll.evaluate(4)
    assert res['unc/NLL'] == np.inf and np.isnan(res['unc/NLL_low'])
    assert np.isfinite(res['unc/MERE_low'])
    assert 'NLL' in inf_nll.last_details['intervals']['NLL']['reason']
    off = UncertaintyMetric(corr_bin_size=4, ci_resamples=0)
    off.process({}, interval_batch(num_images=4)[0])
    res = off.evaluate(4)
    assert not [k for k in res if k.endswith(('_low', '_high'))]
    assert off.last_details['intervals'] == {}
    with pytest.raises(ValueError, match='ci_resamples'):
        UncertaintyMetric(ci_resamples=-1)
    with pytest.raises(ValueError, match='ci_level'):
        UncertaintyMetric(ci_level=95)


def test_landmark_rows_round_trip_through_npz(tmp_path):
    batch, t = interval_batch(num_images=3, k=4)
    batch[2]['img_path'] = 'other.png'
    # an invisible landmark: in the file, not counted
    batch[0]['gt_instances']['keypoints_visible'] = np.array([[1, 0, 1, 1]])
    metric = UncertaintyMetric(corr_bin_size=4, ci_resamples=10,
                               out_dir=str(tmp_path))
    metric.process({}, batch)
    metric.evaluate(3)
    rows = read_npz(osp.join(str(tmp_path), 'unc_landmarks.npz'))
    assert set(rows) == {'sample', 'landmark', 'error', 'ere', 'confidence',
                         'hit', 'nll', 'counted', 'invalid', 'unit'}
    assert str(rows['unit']) == 'mm' and not rows['invalid'].any()
    assert rows['sample'].dtype.kind == 'U'
    assert rows['sample'].tolist() == ['same_name.png'] * 8 + \
        ['other.png'] * 4
    assert rows['landmark'].tolist() == [0, 1, 2, 3] * 3
    assert rows['counted'].tolist() == [True, False] + [True] * 10
    np.testing.assert_allclose(rows['error'], t['error'], rtol=1e-5)
    np.testing.assert_allclose(rows['ere'], t['ere'], rtol=1e-6)
    np.testing.assert_allclose(rows['nll'], t['nll'], rtol=1e-6)
    assert rows['hit'].tolist() == (t['hit'] > 0).tolist()
    # last_arrays: the counted rows, named
    counted = rows['counted']
    assert metric.last_arrays['sample'].tolist() == \
        rows['sample'][counted].tolist()
    assert metric.last_arrays['landmark'].tolist() == \
        rows['landmark'][counted].tolist()
    np.testing.assert_array_equal(metric.last_arrays['error'],
                                  rows['error'][counted])
    # two images share a name: runs cannot be paired by name, and a
    # comparison says so instead of mixing their landmarks
    with pytest.raises(ValueError, match='occurs twice'):
        compare_runs(rows, rows, ('NLL', ), num_resamples=10)


def test_invalid_run_writes_its_landmarks_marked_invalid(tmp_path):
    out = str(tmp_path)
    batch, _ = interval_batch(num_images=3, k=4)
    for i, data_sample in enumerate(batch):
        data_sample['img_path'] = f'{i}.png'
    good = UncertaintyMetric(corr_bin_size=4, ci_resamples=10, out_dir=out)
    good.process({}, batch)
    good.evaluate(3)
    before = read_npz(osp.join(out, 'unc_landmarks.npz'))
    batch[1]['pred_instances']['keypoint_valid'] = np.array(
        [[True, False, True, True]])
    broken = UncertaintyMetric(corr_bin_size=4, ci_resamples=10, out_dir=out)
    broken.process({}, batch)
    with pytest.warns(UserWarning, match='no valid prediction'):
        broken.evaluate(3)
    # the earlier run's file is replaced, never left standing for this one
    rows = read_npz(osp.join(out, 'unc_landmarks.npz'))
    assert rows['invalid'].tolist() == [False] * 5 + [True] + [False] * 6
    with pytest.raises(ValueError, match='no valid prediction'):
        compare_runs(before, rows)
    with pytest.raises(InputError, match='lacks the array'):
        read_npz(osp.join(out, 'unc_landmarks.npz'), required=('xyz', ))
    with pytest.raises(InputError, match='does not exist'):
        read_npz(osp.join(out, 'missing.npz'))
    with open(osp.join(out, 'bad.npz'), 'w') as f:
        f.write('not a zip')
    with pytest.raises(InputError, match='bad.npz is not a readable'):
        read_npz(osp.join(out, 'bad.npz'))


#: 3 images x 4 landmarks: radial errors (mm), the ERE flag and the
#: configuration flag (their rates by hand in
#: tests/test_evaluation/test_functional/test_flag_signals.py)
SIGNAL_ERRORS = [[0.5, 3.0, 12.0, 1.0], [2.5, 0.2, 0.3, 15.0],
                 [0.1, 0.4, 5.0, 1.9]]
SIGNAL_ERE = [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1]]
SIGNAL_IMPLAUSIBLE = [[0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0]]


def signal_batch(configuration=True):
    """The three images with the head's flag fields: ERE alone,
    implausible, either (``configuration=False``: a head without the
    configuration flag, ``keypoint_flagged`` = the ERE flag)."""
    batch = []
    for err, ere, impl in zip(SIGNAL_ERRORS, SIGNAL_ERE, SIGNAL_IMPLAUSIBLE):
        gt = np.stack([np.arange(4) * 40.0, np.full(4, 10.0)], 1)
        pred = gt + np.stack([np.asarray(err) / 0.5, np.zeros(4)], 1)
        ere, impl = np.asarray(ere, bool), np.asarray(impl, bool)
        s = sample(pred, gt, [1.0] * 4, [0.1] * 4, [2.0] * 4, [True] * 4,
                   flagged=ere | impl if configuration else ere)
        if configuration:
            s['pred_instances'].update(
                keypoint_ere_flagged=ere[None],
                keypoint_implausible=impl[None],
                keypoint_plausibility=np.where(impl, 5.0, 1.0)[None])
        batch.append(s)
    return batch


def test_flag_signals_by_hand_with_intervals(tmp_path):
    from mmchh.evaluation.functional.flag_signals import \
        flag_signal_intervals
    from mmchh.evaluation.metrics.flag_signal_report import \
        flag_signal_lines
    metric = UncertaintyMetric(corr_bin_size=4, ci_resamples=50, ci_seed=2,
                               out_dir=str(tmp_path))
    metric.process({}, signal_batch())
    res = metric.evaluate(3)
    expected = dict(ere=(3 / 5, 0.0, 1 / 7), implausible=(2 / 5, 1.0, 1 / 7),
                    combined=(1.0, 1.0, 2 / 7))
    error = np.ravel(SIGNAL_ERRORS)
    ids = np.repeat(np.arange(3), 4)
    flags = dict(ere=np.ravel(SIGNAL_ERE) > 0,
                 implausible=np.ravel(SIGNAL_IMPLAUSIBLE) > 0)
    flags['combined'] = flags['ere'] | flags['implausible']
    for name, values in expected.items():
        want = flag_signal_intervals(flags[name], error, 2.0, 10.0, ids,
                                     num_resamples=50, seed=2)
        for rate, value in zip(('erroneous_recall', 'catastrophic_recall',
                                'false_flag_rate'), values):
            key = f'unc/flag_signals/{name}/{rate}'
            assert res[key] == pytest.approx(value, rel=1e-6), key
            for end in ('low', 'high'):
                got, ref = res[f'{key}_{end}'], getattr(want[rate], end)
                assert got == ref or (np.isnan(got) and np.isnan(ref)), key
    assert (res['unc/flag_signals/num_erroneous'],
            res['unc/flag_signals/num_catastrophic'],
            res['unc/flag_signals/num_good']) == (5, 2, 7)
    section = json.load(open(tmp_path / 'unc_uncertainty.json'))[
        'flag_signals']
    assert (section['erroneous'], section['catastrophic'],
            section['unit']) == (2.0, 10.0, 'mm')
    assert section['implausible']['catastrophic_recall'] == 1.0
    assert 'catastrophic_recall_low' in section['implausible']
    lines = flag_signal_lines(res)
    assert [line.split(':')[0] for line in lines] == [
        'flag ere', 'flag implausible', 'flag combined']
    assert lines[1].startswith('flag implausible: erroneous recall 0.40 [')


def test_flag_signals_say_the_configuration_flag_is_not_fitted():
    """A head calibrated without a configuration model: ERE and combined
    (the same flag), no implausible number -- the JSON and the lines say
    it is not fitted."""
    from mmchh.evaluation.metrics.flag_signal_report import \
        flag_signal_lines
    metric = UncertaintyMetric(corr_bin_size=4, ci_resamples=0)
    metric.process({}, signal_batch(configuration=False))
    res = metric.evaluate(3)
    assert not [k for k in res if '/implausible/' in k]
    for rate in ('erroneous_recall', 'catastrophic_recall',
                 'false_flag_rate'):
        assert res[f'unc/flag_signals/ere/{rate}'] == \
            res[f'unc/flag_signals/combined/{rate}']
    assert res['unc/flag_signals/ere/erroneous_recall'] == \
        pytest.approx(0.6)
    section = metric.last_details['flag_signals']
    assert section['implausible'].startswith('not used')
    assert flag_signal_lines(res)[1] == (
        'flag implausible: not used (no configuration threshold in the '
        'checkpoint: calibrated without a configuration model, or with too '
        'few correct calibration landmarks for a threshold; calibration.json '
        '"configuration" says which)')
    # no flag at all: every signal not fitted, no key
    plain = UncertaintyMetric(corr_bin_size=4, ci_resamples=0)
    batch = signal_batch(configuration=False)
    for s in batch:
        del s['pred_instances']['keypoint_flagged']
    plain.process({}, batch)
    res = plain.evaluate(3)
    assert not [k for k in res if 'flag_signals' in k]
    assert all('not fitted' in line or 'not used' in line
               for line in flag_signal_lines(res))


def test_flag_signals_nan_when_a_prediction_is_invalid():
    batch = signal_batch()
    batch[0]['pred_instances']['keypoint_valid'] = np.array(
        [[True, False, True, True]])
    metric = UncertaintyMetric(corr_bin_size=4, ci_resamples=20)
    metric.process({}, batch)
    with pytest.warns(UserWarning, match='no valid prediction'):
        res = metric.evaluate(3)
    keys = [k for k in res if 'flag_signals' in k]
    assert 'unc/flag_signals/implausible/erroneous_recall_low' in keys
    assert all(np.isnan(res[k]) for k in keys)
