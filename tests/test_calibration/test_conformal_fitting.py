"""Fitting conformal regions: coverage on synthetic calibrated maps (many
seeds at once), the fit's buffers and report, and the scores streamed
through a model's test path."""
import math
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import small_ceph_options
from mmengine.runner import Runner
from mmengine.structures import InstanceData, PixelData
from mmpose.structures import PoseDataSample

from mmchh.codecs.utils import conformal_regions, conformal_scores
from mmchh.calibration.conformal.fitting import (ConformalFitError,
                                            ConformalScores,
                                            collect_conformal_scores,
                                            fit_conformal)
from mmchh.evaluation.functional import conformal_coverage, disc_regions
from mmchh.testing import blob_maps, draw_targets, mode_errors
from mmchh.utils.io import write_json
from mmchh.utils.run_config import load_run_config

CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'ceph', 'unet_r34_onehot_synthetic_demo.py')

N_CALIB, N_TEST, RUNS, SIZE = 19, 100, 200, 8


@pytest.fixture(scope='module')
def runs():
    """RUNS independent runs as columns: (N_CALIB + N_TEST, RUNS) maps of
    SIZE x SIZE, each target drawn from its own map."""
    total = (N_CALIB + N_TEST) * RUNS
    maps = blob_maps(total, SIZE, SIZE, seed=7)
    index = draw_targets(maps, seed=8)
    errors = mode_errors(maps, index)
    shape = (N_CALIB + N_TEST, RUNS)
    return (maps.reshape(shape + (SIZE, SIZE)), index.reshape(shape),
            errors.reshape(shape).numpy())


def calibration_scores(maps, index, errors):
    return ConformalScores(
        scores={
            name: conformal_scores(maps, index, name).numpy()
            for name in ('density', 'mass')
        },
        radial_error_px=errors,
        counted=np.ones(index.shape, dtype=bool))


def observed_floor(level, reps):
    """Lowest fraction of N_TEST a correct threshold covers in any of
    ``reps`` runs but with odds 1e-3 (no ties: ties only raise it)."""
    return conformal_coverage(N_CALIB, level, 1 - 2e-3 / reps,
                              N_TEST)['conditional'][0]


@pytest.mark.parametrize('level', [0.8, 0.9], ids=['80', '90'])
@pytest.mark.parametrize('score', ['density', 'mass'])
def test_per_landmark_regions_cover_as_promised(runs, score, level):
    maps, index, errors = runs
    calib = slice(0, N_CALIB)
    fit = fit_conformal(
        calibration_scores(maps[calib], index[calib], errors[calib]),
        levels=(level, ))
    _, inside = conformal_regions(maps[N_CALIB:], fit.thresholds[score][0],
                                  index[N_CALIB:], score)
    per_run = inside.double().mean(0).numpy()
    expected = conformal_coverage(N_CALIB, level)['expected']
    standard_error = per_run.std(ddof=1) / math.sqrt(RUNS)
    assert abs(per_run.mean() - expected) < 4 * standard_error
    assert per_run.min() >= observed_floor(level, RUNS)


def test_disc_baseline_covers_at_least_the_level(runs):
    """Mode-to-target distances on a pixel grid tie often, which only makes
    the disc more conservative: coverage >= the level, not == k / (n+1)."""
    maps, index, errors = runs
    fit = fit_conformal(
        calibration_scores(maps[:N_CALIB], index[:N_CALIB],
                           errors[:N_CALIB]), levels=(0.9, ))
    inside, _ = disc_regions(errors[N_CALIB:], fit.disc_radius_px[0])
    per_run = inside.mean(0)
    standard_error = per_run.std(ddof=1) / math.sqrt(RUNS)
    assert per_run.mean() >= 0.9 - 4 * standard_error
    assert per_run.min() >= observed_floor(0.9, RUNS)


@pytest.mark.parametrize('score', ['density', 'mass'])
def test_pooled_regions_cover_as_promised(score):
    """Landmarks of different spreads share one threshold: coverage holds
    over the pooled landmarks (not for each)."""
    k, n, m, reps = 4, 10, 50, 200
    maps = blob_maps((n + m) * k * reps, SIZE, SIZE, seed=11)
    # landmark j's maps are sharper the larger j (sorted by mode height)
    order = maps.flatten(-2).amax(-1).reshape(-1, k).argsort(-1)
    maps = maps.reshape(-1, k, SIZE, SIZE)[
        torch.arange(len(order))[:, None], order]
    maps = maps.reshape(reps, n + m, k, SIZE, SIZE)
    index = draw_targets(maps.reshape(-1, SIZE, SIZE), seed=12).reshape(
        reps, n + m, k)
    per_run = []
    for r in range(reps):
        fit = fit_conformal(
            ConformalScores(
                scores={score: conformal_scores(maps[r, :n], index[r, :n],
                                                score).numpy()},
                radial_error_px=np.zeros((n, k)),
                counted=np.ones((n, k), dtype=bool)), levels=(0.9, ))
        _, inside = conformal_regions(maps[r, n:],
                                      fit.pooled_thresholds[score][0],
                                      index[r, n:], score)
        per_run.append(inside.double().mean().item())
    per_run = np.array(per_run)
    expected = conformal_coverage(n * k, 0.9)['expected']
    standard_error = per_run.std(ddof=1) / math.sqrt(reps)
    assert abs(per_run.mean() - expected) < 4 * standard_error


def test_fit_thresholds_buffers_and_report(tmp_path):
    scores = ConformalScores(
        scores=dict(mass=np.array([[0.1, 0.3], [0.2, 0.4], [0.3, 0.5]]),
                    density=-np.array([[0.5, 0.4], [0.3, 0.2], [0.1,
                                                                0.05]])),
        radial_error_px=np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
        counted=np.array([[True, True], [True, True], [True, False]]))
    fit = fit_conformal(scores, levels=(0.5, 0.9))
    # level 0.5: n = 3 -> k = 2; n = 2 -> k = 2; level 0.9: k = 4 > 3 (inf)
    np.testing.assert_array_equal(fit.thresholds['mass'],
                                  [[0.2, 0.4], [np.inf, np.inf]])
    np.testing.assert_array_equal(fit.disc_radius_px,
                                  [[3.0, 4.0], [np.inf, np.inf]])
    # pooled: 5 counted, k = ceil(6 * 0.5) = 3 -> 0.3; k = 6 > 5 -> inf
    np.testing.assert_array_equal(fit.pooled_thresholds['mass'],
                                  [0.3, np.inf])
    np.testing.assert_array_equal(fit.num_per_landmark, [3, 2])

    buffers = fit.head_buffers('mass')
    assert {k: tuple(v.shape) for k, v in buffers.items()} == dict(
        conformal_level=(2, ), conformal_threshold=(2, 2),
        conformal_pooled_threshold=(2, ), conformal_disc_radius=(2, 2),
        conformal_pooled_disc_radius=(2, ))
    assert all(v.dtype == torch.float32 and bool(torch.isfinite(v).all())
               for v in buffers.values())
    # 0.2 and 0.4 are not float32 numbers: stored rounded up, never down
    stored = buffers['conformal_threshold'][0].double().numpy()
    assert (stored >= [0.2, 0.4]).all() and (stored - [0.2, 0.4] < 1e-7).all()
    # inf is stored finite, and still covers the whole map
    whole = float(buffers['conformal_threshold'][1, 0])
    probs = blob_maps(3, 4, 5, seed=0)
    area, _ = conformal_regions(probs, whole, None, 'mass')
    assert bool((area == 20).all())
    with pytest.raises(ValueError, match='no thresholds fitted'):
        fit.head_buffers('box')

    report = fit.report({0: 'sella', 1: 'nasion'})
    assert report['thresholds']['mass']['0.5'] == dict(sella=0.2, nasion=0.4)
    assert report['thresholds']['mass']['0.9'] == dict(sella=None,
                                                       nasion=None)
    assert report['pooled_disc_radius_px'] == {'0.5': 3.0, '0.9': None}
    write_json(str(tmp_path / 'conformal.json'), report)  # strict JSON


def test_too_few_maps_per_landmark_fall_back_to_pooled_for_all():
    """Four calibration images of three landmarks at 0.9: no landmark has
    the nine maps it needs, the twelve pooled ones give a finite threshold
    (k = ceil(13 * 0.9) = 12, the largest), used for every landmark; at 0.5
    every landmark has its own."""
    rng = np.random.default_rng(3)
    mass = rng.uniform(size=(4, 3))
    errors = rng.uniform(1, 9, size=(4, 3))
    scores = ConformalScores(scores=dict(mass=mass), radial_error_px=errors,
                             counted=np.ones((4, 3), bool))
    fit = fit_conformal(scores, levels=(0.5, 0.9))
    assert fit.sources('mass') == ['per_landmark', 'pooled']
    buffers = fit.head_buffers('mass')
    used = buffers['conformal_threshold'].double().numpy()
    radius = buffers['conformal_disc_radius'].double().numpy()
    # level 0.5, n = 4: k = ceil(5 * 0.5) = 3, each landmark's third
    np.testing.assert_allclose(used[0], np.sort(mass, axis=0)[2], rtol=1e-7)
    np.testing.assert_allclose(radius[0], np.sort(errors, axis=0)[2],
                               rtol=1e-7)
    np.testing.assert_allclose(used[1], np.full(3, mass.max()), rtol=1e-7)
    np.testing.assert_allclose(radius[1], np.full(3, errors.max()),
                               rtol=1e-7)
    report = fit.report()
    assert report['sources'] == {'0.5': 'per_landmark', '0.9': 'pooled'}
    assert report['min_maps_per_landmark'] == {'0.5': 1, '0.9': 9}
    # one landmark short is enough to pool them all (no mixed guarantee)
    counted = np.ones((9, 3), bool)
    counted[0, 1] = False
    fit = fit_conformal(
        ConformalScores(scores=dict(mass=rng.uniform(size=(9, 3))),
                        radial_error_px=rng.uniform(size=(9, 3)),
                        counted=counted), levels=(0.9, ))
    assert fit.sources('mass') == ['pooled']


def test_nothing_counted_is_refused():
    scores = ConformalScores(
        scores=dict(mass=np.zeros((2, 3))), radial_error_px=np.zeros((2, 3)),
        counted=np.zeros((2, 3), dtype=bool))
    with pytest.raises(ConformalFitError, match='inside the heatmap'):
        fit_conformal(scores)


class FakeModel:
    """The part of a pose estimator the scores are collected through: a
    ``test_cfg`` and a ``test_step`` returning predicted samples."""

    def __init__(self, maps, index, with_targets=True):
        self.maps, self.index, self.with_targets = maps, index, with_targets
        self.test_cfg = dict(flip_test=False)
        self.seen_cfgs = []

    def test_step(self, batch):
        self.seen_cfgs.append(dict(self.test_cfg))
        samples = []
        for i in batch:
            sample = PoseDataSample()
            w = self.maps.shape[-1]
            target = torch.stack((self.index[i] % w, self.index[i] // w),
                                 -1).float()
            sample.gt_instances = InstanceData(
                keypoints=target[None].numpy() * 2.0)
            if self.with_targets:
                sample.gt_instance_labels = InstanceData(
                    heatmap_indices=self.index[i][None],
                    keypoint_weights=torch.tensor([[1.0, 0.0, 1.0]]))
            sample.pred_instances = InstanceData(
                keypoints=(target[None].numpy() + 1.5) * 2.0,
                keypoint_valid=np.ones((1, 3), dtype=bool))
            if self.test_cfg.get('output_heatmaps'):
                sample.pred_fields = PixelData(heatmaps=self.maps[i])
            samples.append(sample)
        return samples


def test_collect_scores_through_the_test_path():
    maps = blob_maps(5 * 3, 6, 7, seed=3).reshape(5, 3, 6, 7)
    index = draw_targets(maps.reshape(-1, 6, 7), seed=4).reshape(5, 3)
    model = FakeModel(maps, index)
    collected = collect_conformal_scores(model, [[0, 1], [2, 3], [4]])
    assert all(cfg['output_heatmaps'] for cfg in model.seen_cfgs)
    assert model.test_cfg == dict(flip_test=False)  # restored
    assert len(collected) == 5
    for name in ('density', 'mass'):
        np.testing.assert_array_equal(
            collected.scores[name],
            conformal_scores(maps, index, name).numpy())
    # predictions 1.5 heatmap pixels off in x and y, at 2 image px each
    np.testing.assert_allclose(collected.radial_error_px,
                               3 * math.sqrt(2) * np.ones((5, 3)))
    np.testing.assert_array_equal(collected.counted,
                                  [[True, False, True]] * 5)


@pytest.mark.parametrize(
    'broken, message', [('targets', 'GenerateTargetIfAnnotated'),
                        ('nan-map', 'not finite')],
    ids=['no-targets', 'nan-map'])
def test_collect_refuses_unusable_batches(broken, message):
    maps = blob_maps(3, 6, 7, seed=3).reshape(1, 3, 6, 7)
    if broken == 'nan-map':
        maps[0, 1, 2, 3] = float('nan')
    model = FakeModel(maps, torch.zeros(1, 3, dtype=torch.long),
                      with_targets=broken != 'targets')
    with pytest.raises(ConformalFitError, match=message):
        collect_conformal_scores(model, [[0]])
    assert model.test_cfg == dict(flip_test=False)


def test_collect_scores_of_a_real_model(ceph_coco_small, tmp_path):
    """Through the demo config's model and calibration split (untrained
    weights): the density score is minus the probability the head's own
    NLL gives the target, and the radial error is the prediction's."""
    opts = small_ceph_options(ceph_coco_small)
    opts['visualizer.name'] = 'vis_conformal_collect'
    runner = Runner.from_cfg(
        load_run_config(CONFIG, opts, str(tmp_path)))
    model = runner.model.eval()
    loader = runner.build_dataloader(runner.cfg.calib_dataloader)
    collected = collect_conformal_scores(model, loader)
    assert collected.scores['density'].shape == (len(loader.dataset), 19)
    nll, errors = [], []
    with torch.no_grad():
        for data in loader:
            for sample in model.test_step(data):
                nll.append(sample.pred_instances.keypoint_nll[0])
                errors.append(np.hypot(*(
                    sample.pred_instances.keypoints[0] -
                    sample.gt_instances.keypoints[0, :, :2]).T))
    np.testing.assert_allclose(collected.scores['density'],
                               -np.exp(-np.stack(nll)), rtol=1e-4)
    np.testing.assert_allclose(collected.radial_error_px, np.stack(errors),
                               rtol=1e-6)
    assert ((collected.scores['mass'] >= 0) &
            (collected.scores['mass'] < 1)).all()
    fit = fit_conformal(collected, levels=(0.5, ))
    assert fit.thresholds['mass'].shape == (1, 19)
