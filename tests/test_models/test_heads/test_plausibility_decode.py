"""The configuration flag on demo-like predictions, through the head's real
``predict``: confident false peaks (ERE cannot see them) are caught, correct
landmarks are flagged at most at the conformal alpha, and the constrained
decode (``keypoint_constrained``) is the constrained mode of the map,
beside the unconstrained one.

The maps are synthetic, not a trained model's (training the demo takes
minutes): sharp Gaussians at the synthetic heads' ground truth plus noise
(:func:`~mmchh.datasets.synthetic.anatomy.place_landmarks`, 19 ISBI
landmarks at 0.1 mm per pixel) on a 2 mm heatmap grid; the configuration
model is fitted on other heads' ground truth and its threshold on a
calibration split's correct landmarks, as calibration does."""
import numpy as np
import pytest
import torch
from mmpose.registry import MODELS
from mmpose.structures import PoseDataSample

import mmchh  # noqa: F401
from mmchh.codecs.utils.configuration_model import (expected_positions,
                                                    fit_configuration_model)
from mmchh.codecs.utils.constrained_decode import (constrained_mode,
                                                   gaussian_log_prior,
                                                   prior_on_heatmap)
from mmchh.codecs.utils.frame import HeatmapFrame
from mmchh.datasets.ceph_meta import ISBI_IMAGE_SIZE, ISBI_SPACING_MM
from mmchh.datasets.synthetic.anatomy import place_landmarks
from mmchh.evaluation.functional.conformal import conformal_thresholds
from mmchh.testing.false_peaks import (draw_false_peak_shift,
                                       gaussian_log_maps, inject_false_peak,
                                       predict_from_log_probs)

K = 19
ALPHA = 0.02
ERRONEOUS_MM = 2.0
# heatmap = model input, ~2 mm per pixel of the full ISBI image
GRID = (96, 120)
FRAME = HeatmapFrame(heatmap_size=GRID, input_size=GRID,
                     input_center=np.array(ISBI_IMAGE_SIZE) / 2,
                     input_scale=ISBI_IMAGE_SIZE,
                     spacing=(ISBI_SPACING_MM, ISBI_SPACING_MM))
#: the predictions' error (mm per axis) and the maps' width (heatmap px)
NOISE_MM, MAP_SIGMA = 0.8, 1.0


def shapes(num, seed):
    """(num, K, 2) ground truth of synthetic heads, image pixels."""
    rng = np.random.default_rng(seed)
    return np.stack([place_landmarks(rng)[1] for _ in range(num)])


def samples(num):
    meta = dict(img_path='synthetic.png', input_center=FRAME.input_center,
                input_scale=FRAME.input_scale, input_size=GRID,
                spacing=np.array(FRAME.spacing))
    return [PoseDataSample(metainfo=dict(meta)) for _ in range(num)]


def log_maps(truth, seed):
    """Sharp maps at the truth plus noise: (N, K, H, W) log probs."""
    rng = np.random.default_rng(seed)
    noisy = truth + rng.normal(0, NOISE_MM / ISBI_SPACING_MM, truth.shape)
    uv = FRAME.input_to_heatmap(FRAME.image_to_input(noisy))
    return gaussian_log_maps(uv, GRID[1], GRID[0], MAP_SIGMA)


def predicted(head, maps, test_cfg=None):
    """Per sample fields, keypoints in image pixels."""
    preds = predict_from_log_probs(head, maps, samples(len(maps)), test_cfg)
    for pred in preds:
        pred.keypoints = FRAME.input_to_image(
            np.asarray(pred.keypoints, np.float64))
    return preds


def errors_mm(preds, truth, key='keypoints'):
    points = np.stack([np.asarray(p[key], np.float64)[0] for p in preds])
    return np.linalg.norm(points - truth, axis=-1) * ISBI_SPACING_MM


def stacked(preds, key):
    return np.stack([np.asarray(p[key])[0] for p in preds])


def injected(maps, seed, mass=0.97):
    """One landmark per image gets a false peak 30-80 mm away carrying
    ``mass``: the maps and the landmarks."""
    rng = np.random.default_rng(seed)
    out, which = maps.clone(), []
    pixel_mm = FRAME.heatmap_pixel_mm()
    for i in range(len(maps)):
        k = int(rng.integers(K))
        flat = int(maps[i, k].argmax())
        mode = (flat % GRID[0], flat // GRID[0])
        shift = draw_false_peak_shift(rng, mode, GRID, pixel_mm, 30, 80)
        out[i, k] = inject_false_peak(maps[i, k], shift, mass)
        which.append(k)
    return out, np.array(which)


@pytest.fixture(scope='module')
def calibration():
    """A head holding a configuration model of 60 training heads, its
    threshold fitted at ALPHA on 30 calibration heads' correct landmarks,
    and an ERE threshold above every correct calibration landmark's; the
    calibration landmarks' sigma and correctness (N, K)."""
    torch.manual_seed(0)
    head = MODELS.build(dict(
        type='SoftmaxHeatmapHead', in_channels=4, out_channels=K,
        deconv_out_channels=None,
        decoder=dict(type='SoftmaxHeatmap', input_size=GRID,
                     heatmap_size=GRID, subpixel_radius=1))).eval()
    model = fit_configuration_model(shapes(60, seed=0) * ISBI_SPACING_MM)
    head.set_configuration_model(model)
    truth = shapes(30, seed=1)
    preds = predicted(head, log_maps(truth, seed=11))
    correct = errors_mm(preds, truth) <= ERRONEOUS_MM
    sigma = stacked(preds, 'keypoint_plausibility')
    threshold = conformal_thresholds(sigma[correct], [1 - ALPHA])['pooled']
    head.set_configuration_model(model, float(threshold[0]), ALPHA,
                                 int(correct.sum()))
    head.set_flag_threshold(
        float(stacked(preds, 'keypoint_ere_mm')[correct].max()), 'mm')
    return dict(head=head, sigma=sigma, correct=correct)


@pytest.fixture(scope='module')
def calibrated_head(calibration):
    return calibration['head']


@pytest.fixture(scope='module')
def held_out(calibrated_head):
    """60 held-out heads: their truth, unmodified and injected predictions
    (with the constrained decode) and the injected landmarks."""
    truth = shapes(60, seed=2)
    maps = log_maps(truth, seed=12)
    bad_maps, which = injected(maps, seed=22)
    cfg = dict(plausibility_decode=True)
    return dict(truth=truth, which=which,
                clean=predicted(calibrated_head, maps, cfg),
                bad=predicted(calibrated_head, bad_maps, cfg),
                bad_maps=bad_maps)


def test_false_peaks_caught_and_correct_landmarks_spared(held_out):
    truth, which = held_out['truth'], held_out['which']
    rows = np.arange(len(which))
    bad = held_out['bad']
    # the injection is the failure ERE cannot see: the mode moved tens of
    # mm, the ERE stayed below the threshold for most of them
    assert (errors_mm(bad, truth)[rows, which] > 25).all()
    ere = stacked(bad, 'keypoint_ere_flagged')[rows, which]
    assert ere.mean() < 0.5
    implausible = stacked(bad, 'keypoint_implausible')[rows, which]
    assert implausible.mean() >= 0.95
    assert stacked(bad, 'keypoint_flagged')[rows, which].mean() >= 0.95
    # unmodified correct landmarks: flagged about as often as alpha (one
    # calibration draw: its realised rate scatters around alpha by ~0.7 %)
    clean = held_out['clean']
    correct = errors_mm(clean, truth) <= ERRONEOUS_MM
    false_flags = stacked(clean, 'keypoint_implausible')[correct]
    assert correct.sum() > 900 and false_flags.mean() <= 2 * ALPHA


def test_false_flags_at_most_alpha_over_calibration_draws(calibration,
                                                          held_out):
    """The guarantee is marginal, over calibration draws: on average over
    random splits of the 90 heads into 30 calibration and 60 test images,
    at most ALPHA of the correct test landmarks are flagged."""
    clean = held_out['clean']
    sigma = np.concatenate(
        [calibration['sigma'], stacked(clean, 'keypoint_plausibility')])
    correct = np.concatenate([
        calibration['correct'],
        errors_mm(clean, held_out['truth']) <= ERRONEOUS_MM])
    rng = np.random.default_rng(3)
    rates = []
    for _ in range(200):
        order = rng.permutation(len(sigma))
        calib, test = order[:30], order[30:]
        threshold = conformal_thresholds(
            sigma[calib][correct[calib]], [1 - ALPHA])['pooled'][0]
        rates.append(np.mean(sigma[test][correct[test]] > threshold))
    assert np.mean(rates) <= ALPHA


def test_constrained_decode_recovers_the_right_peak(held_out):
    truth, which = held_out['truth'], held_out['which']
    rows = np.arange(len(which))
    bad = held_out['bad']
    implausible = stacked(bad, 'keypoint_implausible')
    constrained = stacked(bad, 'keypoint_constrained')
    assert constrained.shape == (len(which), K, 2)
    # beside the prediction: NaN wherever not implausible, never replacing
    # the keypoints
    np.testing.assert_array_equal(np.isfinite(constrained).all(-1),
                                  implausible)
    before = errors_mm(bad, truth)[rows, which][implausible[rows, which]]
    after = np.linalg.norm(constrained[rows, which] - truth[rows, which],
                           axis=-1)[implausible[rows, which]] * \
        ISBI_SPACING_MM
    assert np.median(before) > 25 and np.median(after) < ERRONEOUS_MM


def test_constrained_field_is_the_math_per_sample(calibrated_head,
                                                  held_out):
    head, bad = calibrated_head, held_out['bad']
    model = head.configuration_model
    maps = held_out['bad_maps']
    for i in range(4):
        points = np.asarray(bad[i].keypoints, np.float64)[0]
        ks = np.flatnonzero(np.asarray(bad[i].keypoint_implausible)[0])
        assert len(ks)
        center, cov = expected_positions(FRAME.image_to_mm(points), model)
        center, cov = prior_on_heatmap(center[ks], cov[ks], FRAME, True)
        uv = constrained_mode(maps[i, ks].exp(), gaussian_log_prior(
            center, cov, GRID[1], GRID[0]), subpixel_radius=1)
        np.testing.assert_allclose(
            np.asarray(bad[i].keypoint_constrained)[0, ks],
            FRAME.heatmap_to_image(uv.numpy()), rtol=1e-5)


def test_constrained_field_only_when_asked_and_thresholded(calibrated_head,
                                                           held_out):
    maps = held_out['bad_maps'][:2]
    assert 'keypoint_constrained' not in predicted(calibrated_head,
                                                   maps)[0]
    model = calibrated_head.configuration_model
    threshold = calibrated_head.plausibility_threshold
    num_scores = float(calibrated_head.configuration_num_scores)
    calibrated_head.set_configuration_model(model)
    try:
        pred = predicted(calibrated_head, maps,
                         dict(plausibility_decode=True))[0]
        assert 'keypoint_plausibility' in pred
        assert 'keypoint_constrained' not in pred
    finally:
        calibrated_head.set_configuration_model(model, threshold, ALPHA,
                                                num_scores)
