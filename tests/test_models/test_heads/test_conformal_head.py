"""Conformal regions in SoftmaxHeatmapHead: its predict fields against a
slow reference, invalid maps, and the conformal buffers as calibration state
(checkpoint round trip, fingerprint, stale and training resets)."""
import numpy as np
import pytest
import torch
from test_softmax_heatmap_head import build_head, feats, samples_with_gt

from mmchh.codecs.utils import softmax_2d
from mmchh.models.heads.calibration_buffers import calibration_weights_fingerprint

LEVELS = (0.5, 0.9)
# original-image px^2 per heatmap pixel of samples_with_gt: 4 x 4
PIXEL_AREA = 16.0


def conformal_state(score, num_maps=3):
    """Fitted-looking buffers for two levels of three landmarks."""
    if score == 'mass':
        threshold = torch.tensor([[0.3, 0.5, 0.7], [0.8, 0.9, 0.95]])
    else:  # -p: pixels with p >= 1.5 / (H W), then >= 0.5 / (H W)
        threshold = -torch.tensor([[1.5], [0.5]]).expand(2, num_maps) / 192
    return dict(
        conformal_level=torch.tensor(LEVELS),
        conformal_threshold=threshold.clone(),
        conformal_pooled_threshold=threshold.mean(-1),
        conformal_disc_radius=torch.tensor([[3.0, 4.0, 5.0],
                                            [6.0, 7.0, 8.0]]),
        conformal_pooled_disc_radius=torch.tensor([4.0, 7.0]))


def slow_region(prob, threshold, score):
    """Pixel-by-pixel region of one (H, W) map: the set of pixels whose
    score (``-p`` or the mass strictly more probable) is <= threshold."""
    flat = prob.flatten().double().tolist()
    inside = []
    for p in flat:
        s = -p if score == 'density' else sum(q for q in flat if q > p)
        inside.append(s <= float(threshold))
    return np.array(inside)


@pytest.mark.parametrize('spacing', [(0.1, 0.2), None],
                         ids=['mm', 'pixels'])
@pytest.mark.parametrize('score', ['mass', 'density'])
def test_region_fields_against_slow_reference(score, spacing):
    head = build_head(conformal_levels=LEVELS, conformal_score=score)
    state = conformal_state(score)
    head.set_conformal_state(state)
    ss = samples_with_gt()
    if spacing is None:
        for s in ss:
            del s.spacing
    else:
        for s in ss:
            s.set_metainfo(dict(spacing=np.array(spacing)))
    x = feats(3)
    with torch.no_grad():
        probs = softmax_2d(head(x))
        preds = head.predict(x, ss)
    for b, (pred, sample) in enumerate(zip(preds, ss)):
        assert pred.keypoint_region_area.shape == (1, 3, 2)
        assert pred.keypoint_in_region.shape == (1, 3, 2)
        np.testing.assert_array_equal(pred.keypoint_region_level[0],
                                      np.float32(LEVELS))
        np.testing.assert_array_equal(
            pred.keypoint_disc_radius[0],
            state['conformal_disc_radius'].T.numpy())
        index = sample.gt_instance_labels.heatmap_indices[0]
        for k in range(3):
            for level in range(2):
                region = slow_region(probs[b, k],
                                     state['conformal_threshold'][level, k],
                                     score)
                area = region.sum() * PIXEL_AREA
                assert pred.keypoint_region_area[0, k, level] == \
                    pytest.approx(area)
                assert pred.keypoint_in_region[0, k, level] == \
                    region[int(index[k])]
                if spacing is not None:
                    assert pred.keypoint_region_area_mm2[0, k, level] == \
                        pytest.approx(area * spacing[0] * spacing[1])
        if spacing is None:
            assert 'keypoint_region_area_mm2' not in pred
    # the levels make different regions: the larger level, the larger area
    area = np.stack([p.keypoint_region_area[0] for p in preds])
    assert (area[..., 1] >= area[..., 0]).all() and \
        (area[..., 1] > area[..., 0]).any()


def test_no_conformal_state_no_region_fields():
    head = build_head()
    assert not head.has_conformal_regions
    pred = head.predict(feats(3), samples_with_gt())[0]
    assert not [k for k in pred.keys() if 'region' in k or 'disc' in k]


def test_without_ground_truth_areas_only():
    head = build_head(conformal_levels=LEVELS)
    head.set_conformal_state(conformal_state('mass'))
    ss = samples_with_gt()
    for s in ss:
        del s.gt_instance_labels
    pred = head.predict(feats(3), ss)[0]
    assert pred.keypoint_region_area.shape == (1, 3, 2)
    assert 'keypoint_in_region' not in pred


def test_invalid_maps_have_no_region():
    head = build_head(conformal_levels=LEVELS)
    head.set_conformal_state(conformal_state('mass'))
    x = feats(3)
    x[0][0, 0, 0, 0] = float('nan')  # every map of sample 0 is invalid
    preds = head.predict(x, samples_with_gt())
    assert np.isnan(preds[0].keypoint_region_area).all()
    assert np.isnan(preds[0].keypoint_region_area_mm2).all()
    assert not preds[0].keypoint_in_region.any()
    assert np.isfinite(preds[1].keypoint_region_area).all()


@pytest.mark.parametrize('bad, match', [
    (dict(conformal_threshold=torch.zeros(1, 3)), 'shape'),
    (dict(conformal_level=torch.tensor([0.5, float('nan')])), 'finite'),
    (dict(conformal_disc_radius=None), 'lacks'),
], ids=['shape', 'nan', 'missing'])
def test_set_conformal_state_refuses_bad_buffers(bad, match):
    head = build_head(conformal_levels=LEVELS)
    state = dict(conformal_state('mass'), **bad)
    state = {k: v for k, v in state.items() if v is not None}
    with pytest.raises(ValueError, match=match):
        head.set_conformal_state(state)
    assert not head.has_conformal_regions


@pytest.mark.parametrize('kwargs, match', [
    (dict(conformal_levels=(0.9, 1.0)), 'conformal_levels'),
    (dict(conformal_levels=()), 'conformal_levels'),
    (dict(conformal_score='box'), 'conformal_score'),
], ids=['level_one', 'no_level', 'score'])
def test_head_refuses_bad_conformal_args(kwargs, match):
    with pytest.raises(Exception, match=match):
        build_head(**kwargs)


def test_conformal_state_checkpoint_round_trip():
    head = build_head(conformal_levels=LEVELS)
    head.set_conformal_state(conformal_state('mass'))
    fingerprint = head.seal_calibration()
    # the conformal buffers are calibration state, not weights: the
    # fingerprint is that of the weights without them
    without = {
        k: v
        for k, v in head.state_dict().items()
        if not k.startswith('conformal_')
    }
    assert fingerprint == calibration_weights_fingerprint(without)
    fresh = build_head(conformal_levels=LEVELS)
    fresh.load_state_dict(head.state_dict())
    for name, value in conformal_state('mass').items():
        torch.testing.assert_close(getattr(fresh, name), value)
    assert fresh.has_conformal_regions

    # weights changed after calibration: the conformal state goes with it
    stale = {k: v.clone() for k, v in head.state_dict().items()}
    stale['final_layer.bias'] += 1
    with pytest.warns(UserWarning, match='stale calibration'):
        fresh.load_state_dict(stale)
    assert not fresh.has_conformal_regions
    assert torch.isnan(fresh.conformal_disc_radius).all()


def test_old_checkpoint_without_conformal_buffers_loads_unset():
    head = build_head(conformal_levels=LEVELS)
    state = {
        k: v
        for k, v in head.state_dict().items()
        if not k.startswith('conformal_')
    }
    fresh = build_head(conformal_levels=LEVELS)
    fresh.set_conformal_state(conformal_state('mass'))
    fresh.load_state_dict(state, strict=True)
    assert not fresh.has_conformal_regions
    assert torch.isnan(fresh.conformal_level).all()


def test_training_resets_conformal_state():
    head = build_head(conformal_levels=LEVELS)
    head.set_conformal_state(conformal_state('mass'))
    head.train()
    head.loss(feats(3), samples_with_gt())
    assert not head.has_conformal_regions
