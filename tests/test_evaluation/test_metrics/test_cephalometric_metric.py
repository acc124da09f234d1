import math

import numpy as np
import pytest

from mmchh.evaluation.metrics import CephalometricMetric


def sample(pred, gt, spacing, visible=None):
    pred = np.asarray(pred, np.float32)[None]
    gt = np.asarray(gt, np.float32)[None]
    vis = np.ones(gt.shape[:2]) if visible is None else np.asarray(
        visible)[None]
    return dict(
        pred_instances=dict(keypoints=pred),
        gt_instances=dict(keypoints=gt, keypoints_visible=vis),
        spacing=np.asarray(spacing))


def test_hand_computed_two_spacings():
    metric = CephalometricMetric(per_landmark=True)
    metric.dataset_meta = dict(keypoint_id2name={0: 'a', 1: 'b', 2: 'c'})
    gt = [[0, 0], [10, 10], [5, 5]]
    # image 1, 0.1 mm/px: errors 30 px -> 3 mm, 5 px -> 0.5 mm, 20 px -> 2 mm
    p1 = [[30, 0], [13, 14], [5, 25]]
    # image 2, (0.2, 0.5) mm/px: (10, 0) -> 2 mm, (0, 3) -> 1.5 mm,
    # (3, 4) -> sqrt(0.36 + 4) mm
    p2 = [[10, 0], [10, 13], [8, 9]]
    metric.process({}, [sample(p1, gt, [0.1, 0.1]),
                        sample(p2, gt, [0.2, 0.5])])
    res = metric.evaluate(2)
    errors = np.array([3.0, 0.5, 2.0, 2.0, 1.5, math.sqrt(0.36 + 4)])
    assert res['ceph/MRE'] == pytest.approx(errors.mean())
    assert res['ceph/MRE_std'] == pytest.approx(errors.std())
    assert res['ceph/num_landmarks'] == 6
    # strict "<": the two errors of exactly 2 mm do not count at 2 mm
    assert res['ceph/SDR_2mm'] == pytest.approx(100 * 2 / 6)
    assert res['ceph/SDR_2.5mm'] == pytest.approx(100 * 5 / 6)
    assert res['ceph/SDR_3mm'] == pytest.approx(100 * 5 / 6)
    assert res['ceph/SDR_4mm'] == pytest.approx(100.0)
    assert res['ceph/MRE/a'] == pytest.approx(2.5)
    assert res['ceph/MRE/c'] == pytest.approx((2 + math.sqrt(4.36)) / 2)
    assert res['ceph/SDR_2mm/b'] == pytest.approx(100.0)


def test_invisible_landmarks_do_not_count_and_missing_spacing_fails():
    metric = CephalometricMetric(per_landmark=False)
    metric.process({}, [sample([[1, 0], [100, 0]], [[0, 0], [0, 0]], 1.0,
                               visible=[1, 0])])
    res = metric.evaluate(1)
    assert res['ceph/MRE'] == 1.0 and res['ceph/num_landmarks'] == 1
    bad = sample([[1, 0]], [[0, 0]], 1.0)
    del bad['spacing']
    with pytest.raises(KeyError, match='spacing'):
        CephalometricMetric().process({}, [bad])
    fallback = CephalometricMetric(spacing=0.5, per_landmark=False)
    fallback.process({}, [bad])
    assert fallback.evaluate(1)['ceph/MRE'] == 0.5


def test_mean_position_baseline_hand_computed(tmp_path):
    import json

    from mmchh.evaluation.mean_position_baseline import mean_position_baseline

    def write(name, pts, spacing):
        data = dict(
            images=[
                dict(id=i + 1, spacing=s) for i, s in enumerate(spacing)
            ],
            annotations=[
                dict(id=i + 1, image_id=i + 1,
                     keypoints=sum([[x, y, 2] for x, y in p], []))
                for i, p in enumerate(pts)
            ])
        path = str(tmp_path / name)
        json.dump(data, open(path, 'w'))
        return path

    # means: landmark 0 at (2, 0), landmark 1 at (0, 4)
    train = write('train.json', [[[0, 0], [0, 2]], [[4, 0], [0, 6]]],
                  [[1, 1], [1, 1]])
    # test errors: (3 px * 0.5, 0) and (0, 1 px * 2) -> 1.5 mm and 2 mm
    test = write('test.json', [[[5, 0], [0, 5]]], [[0.5, 2.0]])
    res = mean_position_baseline(train, test)
    assert res['MRE'] == pytest.approx(1.75)
    assert res['SDR_2mm'] == pytest.approx(50.0)
    assert res['SDR_2.5mm'] == pytest.approx(100.0)


def test_intervals_over_images():
    """MRE / SDR intervals equal bootstrap_mean on the (N, K) errors, one
    row per image; NaN with an invalid prediction; none when disabled."""
    from mmchh.evaluation.functional import BootstrapOptions, bootstrap_mean
    rng = np.random.default_rng(2)
    gt = rng.uniform(0, 100, (10, 4, 2))
    pred = gt + rng.normal(0, 15, gt.shape)
    visible = rng.random((10, 4)) < 0.9
    batch = [sample(p, g, 0.1, v) for p, g, v in zip(pred, gt, visible)]
    metric = CephalometricMetric(per_landmark=False, ci_resamples=200,
                                 ci_seed=3)
    metric.process({}, batch)
    res = metric.evaluate(10)
    errors = np.linalg.norm(
        pred.astype(np.float32) - gt.astype(np.float32), axis=-1) * 0.1
    opts = dict(valid=visible,
                options=BootstrapOptions(num_resamples=200, seed=3))
    for key, values in (('MRE', errors),
                        ('SDR_2mm', (errors < 2) * 100.0),
                        ('SDR_4mm', (errors < 4) * 100.0)):
        want = bootstrap_mean(values, **opts)
        assert res[f'ceph/{key}_low'] == pytest.approx(want.low, rel=1e-6)
        assert res[f'ceph/{key}_high'] == pytest.approx(want.high, rel=1e-6)
        assert res[f'ceph/{key}_low'] <= res[f'ceph/{key}'] <= \
            res[f'ceph/{key}_high']
    assert {k for k in res if k.endswith('_low')} == {
        'ceph/MRE_low', 'ceph/SDR_2mm_low', 'ceph/SDR_2.5mm_low',
        'ceph/SDR_3mm_low', 'ceph/SDR_4mm_low'}

    broken = CephalometricMetric(per_landmark=False, ci_resamples=50)
    batch[0]['pred_instances']['keypoint_valid'] = np.zeros((1, 4), bool)
    batch[0]['gt_instances']['keypoints_visible'] = np.ones((1, 4))
    broken.process({}, batch)
    with pytest.warns(UserWarning, match='no valid prediction'):
        res = broken.evaluate(10)
    ends = [k for k in res if k.endswith(('_low', '_high'))]
    assert len(ends) == 10 and all(math.isnan(res[k]) for k in ends)

    off = CephalometricMetric(per_landmark=False, ci_resamples=0)
    off.process({}, batch[1:])
    assert not [k for k in off.evaluate(9) if k.endswith('_low')]
    with pytest.raises(ValueError, match='ci_resamples'):
        CephalometricMetric(ci_resamples=2.5)
