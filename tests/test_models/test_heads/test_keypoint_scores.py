"""The head's keypoint_scores: the calibrated mass within 2 mm of the
prediction for a sample with a spacing, within 5 % of the box without one,
each equal to a float64 loop over the temperature-scaled map; NaN for an
invalid map; the mode probability kept as keypoint_mode_prob."""
import math

import numpy as np
import torch
from mmpose.structures import PoseDataSample

import mmchh  # noqa: F401
from mmchh.codecs.utils import softmax_2d
from mmchh.testing.tiny_head import build_tiny_head, tiny_feats


def slow_within(prob_map, cx, cy, radius, sx, sy):
    """Mass of the pixels whose centre is within ``radius``, one pixel at a
    time, in float64."""
    p = np.asarray(prob_map, dtype=np.float64)
    return sum(p[y, x] for y in range(p.shape[0]) for x in range(p.shape[1])
               if math.hypot((x - cx) * sx, (y - cy) * sy) <= radius)


def two_samples():
    """One sample with a spacing (0.3 x 0.2 mm) and one without; both of a
    64 x 48 image box (2 image pixels per input pixel)."""
    metas = [dict(input_center=(32.0, 24.0), input_scale=(64.0, 48.0),
                  spacing=(0.3, 0.2)),
             dict(input_center=(32.0, 24.0), input_scale=(64.0, 48.0))]
    return [PoseDataSample(metainfo=m) for m in metas]


def test_scores_are_mass_within_radius_mm_or_box_fraction():
    head = build_tiny_head()
    head.set_temperature(torch.tensor([0.7, 1.3, 2.0]))
    x = tiny_feats()
    with torch.no_grad():
        probs = softmax_2d(head(x), head.temperature)
        preds = head.predict(x, two_samples())
    for b, pred in enumerate(preds):
        # model-input pixels -> heatmap pixels: (xy + 0.5) / 2 - 0.5
        uv = (np.asarray(pred.keypoints[0], np.float64) + 0.5) / 2 - 0.5
        for k in range(3):
            if b == 0:
                # 2 mm; one heatmap pixel = 2 input = 4 image pixels,
                # 4 * (0.3, 0.2) mm
                expected = slow_within(probs[b, k], *uv[k], 2.0, 1.2, 0.8)
            else:
                # 5 % of the 16 x 12 map: an ellipse of 0.8 x 0.6 pixels
                expected = slow_within(probs[b, k], *uv[k], 1.0,
                                       1 / 0.8, 1 / 0.6)
            assert abs(pred.keypoint_scores[0, k] - expected) < 1e-6
        np.testing.assert_allclose(
            pred.keypoint_mode_prob[0],
            probs[b].flatten(-2).max(-1).values.numpy(), rtol=1e-6)
    # the radius is wider than the mode pixel: the score exceeds the mode
    # probability whenever a neighbour holds mass (2 mm > 1.2 mm)
    assert (preds[0].keypoint_scores > preds[0].keypoint_mode_prob).all()


def test_radius_from_test_cfg():
    head = build_tiny_head()
    x = tiny_feats()
    samples = two_samples()
    with torch.no_grad():
        default = head.predict(x, samples)
        wide = head.predict(x, samples, dict(score_radius_mm=100.0,
                                             score_box_fraction=2.0))
    # a radius covering the whole map: all the mass
    for pred in wide:
        np.testing.assert_allclose(pred.keypoint_scores, 1.0, atol=1e-6)
    assert (default[0].keypoint_scores < 0.999).all()


def test_invalid_map_has_nan_score():
    head = build_tiny_head()
    x = tiny_feats()
    with torch.no_grad():
        logits = head(x)
    logits[1, 2, 3, 4] = float('nan')
    head.forward = lambda feats: logits.clone()
    preds = head.predict(x, two_samples())
    assert math.isnan(preds[1].keypoint_scores[0, 2])
    assert math.isnan(preds[1].keypoint_mode_prob[0, 2])
    assert np.isfinite(preds[1].keypoint_scores[0, :2]).all()
    assert np.isfinite(preds[0].keypoint_scores).all()


def test_confident_map_passes_mmpose_threshold_its_mode_does_not():
    """A map sure of a 2 mm disc: its best pixel holds far less than
    MMPose's kpt_thr (0.3), the 2 mm disc nearly all of it."""
    head = build_tiny_head(out_channels=1)
    ys, xs = torch.meshgrid(torch.arange(12.0), torch.arange(16.0),
                            indexing='ij')
    # a Gaussian of sigma 1.5 heatmap pixels around (7, 5)
    logits = (-((xs - 7)**2 + (ys - 5)**2) / (2 * 1.5**2))[None, None]
    head.forward = lambda feats: logits.clone()
    # 0.25 mm per image pixel, 2 image pixels per input pixel and 2 input
    # pixels per heatmap pixel: 1 mm per heatmap pixel, 2 mm = 2 pixels
    sample = PoseDataSample(metainfo=dict(
        input_center=(32.0, 24.0), input_scale=(64.0, 48.0),
        spacing=(0.25, 0.25)))
    (pred, ) = head.predict(tiny_feats(batch=1), [sample])
    probs = softmax_2d(logits)[0, 0]
    expected = slow_within(probs, 7.0, 5.0, 2.0, 1.0, 1.0)
    assert abs(pred.keypoint_scores[0, 0] - expected) < 1e-6
    assert pred.keypoint_mode_prob[0, 0] < 0.1
    assert pred.keypoint_scores[0, 0] > 0.55
