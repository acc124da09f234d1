"""Invisible means absent everywhere: a ground-truth landmark of visibility
0 (written ``0,0,0`` by the converters) is never read as a position -- a
measurement that needs it is reported missing and counted, and the numbers
do not move when its coordinates are garbage."""
import json
import math
import os.path as osp
import warnings

import numpy as np
import pytest

from mmchh.datasets.ceph_meta import CEPH_LABEL_NAMES, CEPH_LANDMARK_NAMES
from mmchh.evaluation.functional import ceph_measurements
from mmchh.evaluation.functional.cephalometric import \
    missing_measurement_landmarks
from mmchh.evaluation.metrics import CephalometricMetric
from mmchh.testing import run_tool_in_process

SELLA = CEPH_LANDMARK_NAMES.index('sella')
#: The measurements that use the sella (L1).
NEEDS_SELLA = {'ANB', 'SNB', 'SNA', 'FHI', 'FMA'}


def test_missing_measurement_landmarks_names_what_each_needs():
    present = np.ones(19, bool)
    assert all(v == () for v in missing_measurement_landmarks(
        present).values())
    present[SELLA] = False
    gone = missing_measurement_landmarks(present)
    assert {n for n, v in gone.items() if v} == NEEDS_SELLA
    assert gone['ANB'] == ('sella', )
    # every landmark a measurement is said not to need leaves it unchanged
    rng = np.random.default_rng(0)
    pts = rng.uniform(100, 900, (19, 2))
    base = ceph_measurements(pts, 0.1)
    for k in range(19):
        moved = pts.copy()
        moved[k] = (1e6, -1e6)
        changed = {n for n, v in ceph_measurements(moved, 0.1).items()
                   if not v == pytest.approx(base[n])}
        only = np.ones(19, bool)
        only[k] = False
        assert changed <= {n for n, v in missing_measurement_landmarks(
            only).items() if v}, CEPH_LANDMARK_NAMES[k]


def _split_with_invisible(src, dst, xy):
    """``src`` with the sella of its first image invisible at ``xy``."""
    doc = json.load(open(src))
    first = doc['images'][0]['id']
    ann = next(a for a in doc['annotations'] if a['image_id'] == first)
    ann['keypoints'][3 * SELLA:3 * SELLA + 3] = [xy[0], xy[1], 0]
    with open(dst, 'w') as f:
        json.dump(doc, f)
    return str(dst)


@pytest.fixture(scope='module')
def measured(ceph_coco_small, calibrated_small_demo, tmp_path_factory):
    """The demo model's measurements of test1 with the first image's sella
    invisible at (0, 0) and at (1e6, -1e6), and of the untouched split."""
    from mmchh.apis import init_landmark_model
    from mmchh.apis.measure import evaluate_measurements
    root = tmp_path_factory.mktemp('invisible')
    src = osp.join(ceph_coco_small, 'test1.json')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        model = init_landmark_model(calibrated_small_demo['cfg'],
                                    calibrated_small_demo['ckpt'])
    out = {}
    for tag, xy in (('zero', (0, 0)), ('garbage', (1e6, -1e6)),
                    ('full', None)):
        path = src if xy is None else _split_with_invisible(
            src, root / f'{tag}.json', xy)
        out[tag] = evaluate_measurements(model, path, num_samples=50,
                                         img_root=ceph_coco_small,
                                         progress=False)
    return dict(out, src=src, root=root, data=ceph_coco_small,
                cfg=calibrated_small_demo['cfg'],
                ckpt=calibrated_small_demo['ckpt'])


def test_measure_reports_invisible_landmark_missing(measured):
    zero, full = measured['zero'], measured['full']
    for name in CEPH_LABEL_NAMES:
        entry = zero['images'][0]['measurements'][name]
        summ = zero['summary'][name]
        assert full['summary'][name]['n_missing_truth'] == 0
        if name in NEEDS_SELLA:
            assert entry['true_value'] is None and entry['true_class'] is None
            assert 'sella' in entry['missing']['truth']
            assert summ['n_missing_truth'] == 1
            assert summ['missing_reasons'] == {
                f'truth: {entry["missing"]["truth"]}': 1}
            # the MAE over the other images only, by hand
            err = [abs(im['measurements'][name]['prediction']['value'] -
                       im['measurements'][name]['true_value'])
                   for im in full['images'][1:]
                   if im['measurements'][name]['prediction']['value']
                   is not None]
            assert summ['mae'] == pytest.approx(np.mean(err)) if err else \
                math.isnan(summ['mae'])
        else:  # untouched, and the same as with every landmark visible
            assert entry == full['images'][0]['measurements'][name]
            assert summ == full['summary'][name]


def test_garbage_at_an_invisible_point_changes_nothing(measured):
    zero, garbage = measured['zero'], measured['garbage']
    assert json.dumps(zero['summary']) == json.dumps(garbage['summary'])
    assert json.dumps(zero['images']) == json.dumps(garbage['images'])


def test_measure_tool_prints_the_missing_count(measured, tmp_path):
    path = _split_with_invisible(measured['src'], tmp_path / 's.json',
                                 (1e6, -1e6))
    proc = run_tool_in_process('measure', [
        measured['cfg'], measured['ckpt'], path, '--img-root',
        measured['data'], '--num-samples', '20', '--out-dir',
        str(tmp_path / 'o'), '--no-progress'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'measurements missing' in proc.stdout
    assert 'ANB 1 (truth)' in proc.stdout
    rows = [r.split(',') for r in open(tmp_path / 'o' /
                                       'measurements_eval.csv')][1:9]
    anb = next(r for r in rows if r[1] == 'ANB')
    assert anb[4] == '' and anb[11] == ''  # no true value, no coverage


def test_metric_never_reads_an_invisible_point():
    """CephalometricMetric: garbage at an invisible point moves nothing."""
    gt = np.array([[[10., 10.], [20., 20.], [30., 30.]]])
    pred = gt + 1.0
    results = []
    for far in ((0., 0.), (1e6, -1e6)):
        g = gt.copy()
        g[0, 1] = far
        metric = CephalometricMetric(per_landmark=False)
        metric.dataset_meta = dict(keypoint_id2name={0: 'a', 1: 'b', 2: 'c'})
        metric.process({}, [dict(
            pred_instances=dict(keypoints=pred),
            gt_instances=dict(keypoints=g,
                              keypoints_visible=np.array([[1., 0., 1.]])),
            spacing=np.array([0.1, 0.1]))])
        results.append(metric.evaluate(1))
    # NaN (no interval from one image) compares equal as text
    assert json.dumps(results[0], sort_keys=True) == json.dumps(
        results[1], sort_keys=True)
    assert results[0]['ceph/num_landmarks'] == 2


def _calib_with_invisible(data, out, garbage):
    """calib.json with two landmarks of each image invisible, their
    coordinates zeros (as the converters write them) or garbage."""
    doc = json.load(open(osp.join(data, 'calib.json')))
    for ann in doc['annotations']:
        for k in (SELLA, 7):
            ann['keypoints'][3 * k:3 * k + 3] = (
                [1e6, -1e6, 0] if garbage else [0, 0, 0])
        ann['num_keypoints'] = 17
    with open(out, 'w') as f:
        json.dump(doc, f)


def test_calibration_never_reads_an_invisible_point(calibrated_small_demo,
                                                    tmp_path):
    """Temperatures, flag threshold, conformal thresholds and the
    calibration metrics are the same whether an invisible landmark's
    coordinates are zeros or garbage."""
    import copy

    import torch

    from mmchh.engine import calibrate_model
    runner = calibrated_small_demo['runner']
    model = runner.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fits = []
    try:
        for garbage in (False, True):
            ann = str(tmp_path / f'calib_{garbage}.json')
            _calib_with_invisible(calibrated_small_demo['data'], ann,
                                  garbage)
            loader = copy.deepcopy(runner.cfg.calib_dataloader)
            loader.dataset.ann_file = ann
            model.load_state_dict(before)
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', UserWarning)
                report = calibrate_model(runner, loader,
                                         out_dir=str(tmp_path / str(garbage)),
                                         checkpoint_name=None)
            fits.append(({k: v.clone()
                          for k, v in model.state_dict().items()
                          if k.startswith('head.')}, report))
    finally:
        model.load_state_dict(before)
    (state0, report0), (state1, report1) = fits
    assert report0['calib']['num_landmarks'] == 3 * 17
    for key in state0:
        torch.testing.assert_close(state0[key], state1[key], equal_nan=True,
                                   rtol=0, atol=0, msg=key)
    # the reports as calibration.json holds them
    doc0 = json.load(open(tmp_path / 'False' / 'calibration.json'))
    doc1 = json.load(open(tmp_path / 'True' / 'calibration.json'))
    for doc in (doc0, doc1):  # wall time of the fit
        doc['calib']['selection'].pop('seconds')
    assert doc0['calib'] == doc1['calib']
    assert doc0['flagging'] == doc1['flagging']
