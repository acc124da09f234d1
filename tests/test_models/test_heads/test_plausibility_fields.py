"""The configuration model in SoftmaxHeatmapHead: its buffers and setter,
the plausibility fields predict adds, and the seal over them."""
import warnings

import numpy as np
import pytest
import torch
from mmpose.structures import PoseDataSample

import mmchh  # noqa: F401
from mmchh.codecs.utils.configuration_model import (fit_configuration_model,
                                                    plausibility_scores)
from mmchh.testing.tiny_head import build_tiny_head
from mmchh.testing.tiny_head import tiny_feats as feats

K = 5
# the tiny head's 16x12 heatmaps of a 32x24 input
CENTER, SCALE = np.array([50.0, 40.0]), np.array([80.0, 60.0])


def build_head():
    torch.manual_seed(0)
    return build_tiny_head(out_channels=K)


def samples(spacing=(0.1, 0.1), batch=2):
    out = []
    for i in range(batch):
        meta = dict(img_path=f'img{i}.png', input_center=CENTER,
                    input_scale=SCALE, input_size=(32, 24))
        if spacing is not None and (i == 0 or spacing != 'first'):
            meta['spacing'] = np.array([0.1, 0.1] if spacing == 'first'
                                       else spacing)
        out.append(PoseDataSample(metainfo=meta))
    return out


def image_points(pred, spacing):
    """The head's input-pixel keypoints in the image (mm with spacing)."""
    xy = np.asarray(pred.keypoints, np.float64)[0]
    xy = xy / [32, 24] * SCALE + CENTER - 0.5 * SCALE
    return xy if spacing is None else xy * spacing


def model_near(points, seed=0):
    """A configuration model fitted on 12 noisy copies of ``points``."""
    rng = np.random.default_rng(seed)
    return fit_configuration_model(
        points + rng.normal(0, 0.05 * np.ptp(points), (12, K, 2)))


@pytest.fixture
def head_and_model():
    head = build_head()
    pred = head.predict(feats(), samples())[0]
    assert 'keypoint_plausibility' not in pred
    assert 'keypoint_ere_flagged' not in pred
    return head, model_near(image_points(pred, 0.1))


@pytest.mark.parametrize('spacing', [(0.1, 0.1), None, 'first'])
def test_fields_are_the_scores_of_the_image_configuration(head_and_model,
                                                          spacing):
    head, model = head_and_model
    head.set_configuration_model(model)
    assert head.configuration_model is not None
    assert head.plausibility_threshold is None
    preds = head.predict(feats(), samples(spacing))
    for i, pred in enumerate(preds):
        has = spacing is not None and (i == 0 or spacing != 'first')
        points = image_points(pred, 0.1 if has else None)
        sigma, dist = plausibility_scores(points, head.configuration_model)
        np.testing.assert_allclose(pred.keypoint_plausibility[0], sigma,
                                   rtol=1e-5)
        assert pred.keypoint_plausibility.shape == (1, K)
        # mm only when every sample of the batch has a spacing
        if spacing == (0.1, 0.1):
            np.testing.assert_allclose(pred.keypoint_plausibility_mm[0],
                                       dist, rtol=1e-5)
        else:
            assert 'keypoint_plausibility_mm' not in pred
        # no threshold: nothing implausible, the flag untouched
        assert 'keypoint_implausible' not in pred
        assert 'keypoint_flagged' not in pred


def test_threshold_flags_ere_or_implausible(head_and_model):
    head, model = head_and_model
    x = feats()
    ere = head.predict(x, samples())[0].keypoint_ere_mm[0]
    head.set_flag_threshold(float(np.median(ere)), 'mm')
    head.set_configuration_model(model)
    sigma = head.predict(x, samples())[0].keypoint_plausibility[0]
    head.set_configuration_model(model, float(np.median(sigma)), 0.1, 60)
    assert head.plausibility_threshold == pytest.approx(np.median(sigma))
    pred = head.predict(x, samples())[0]
    implausible = pred.keypoint_plausibility[0] > head.plausibility_threshold
    np.testing.assert_array_equal(pred.keypoint_implausible[0], implausible)
    np.testing.assert_array_equal(pred.keypoint_ere_flagged[0],
                                  ere > head.flag_threshold.item())
    np.testing.assert_array_equal(
        pred.keypoint_flagged[0], pred.keypoint_ere_flagged[0] | implausible)
    assert implausible.any() and not implausible.all()
    # switched off in the config: the ERE flag alone, no scores
    pred = head.predict(x, samples(), test_cfg=dict(plausibility=False))[0]
    assert 'keypoint_plausibility' not in pred
    np.testing.assert_array_equal(pred.keypoint_flagged[0],
                                  pred.keypoint_ere_flagged[0])


def test_without_ere_threshold_invalid_maps_stay_flagged(head_and_model):
    head, model = head_and_model
    head.set_configuration_model(model, 1e6)  # nothing implausible
    logits = head.forward(feats()).detach()
    logits[0, 1] = float('nan')
    head.forward = lambda x: logits.clone()
    pred = head.predict(feats(), samples())[0]
    assert np.isnan(pred.keypoint_plausibility[0, 1])
    assert np.isfinite(np.delete(pred.keypoint_plausibility[0], 1)).all()
    assert not pred.keypoint_implausible[0].any()
    np.testing.assert_array_equal(pred.keypoint_flagged[0],
                                  np.arange(K) == 1)
    assert 'keypoint_ere_flagged' not in pred


def test_setter_checks_and_clears(head_and_model):
    head, model = head_and_model
    with pytest.raises(ValueError, match='shape'):
        head.set_configuration_model(model_near(np.random.rand(K + 1, 2)))
    with pytest.raises(ValueError, match='needs a model'):
        head.set_configuration_model(None, 2.0)
    with pytest.raises(ValueError, match='alpha'):
        head.set_configuration_model(model, 2.0, 1.5)
    with pytest.raises(ValueError, match='threshold'):
        head.set_configuration_model(model, float('inf'))
    head.set_configuration_model(model, 3.0, 0.02, 49)
    stored = head.configuration_model
    np.testing.assert_allclose(stored.mean, model.mean, rtol=1e-6)
    np.testing.assert_allclose(stored.cov, model.cov, rtol=1e-6)
    np.testing.assert_array_equal(stored.num_shapes, model.num_shapes)
    assert head.has_calibration_state
    head.set_configuration_model(None)
    assert head.configuration_model is None
    assert not head.has_calibration_state


def test_seal_covers_the_configuration_model(head_and_model):
    head, model = head_and_model
    head.set_temperature(1.5)
    head.set_configuration_model(model, 3.0, 0.02, 49)
    head.seal_calibration()
    state = {k: v.clone() for k, v in head.state_dict().items()}

    fresh = build_head()
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        fresh.load_state_dict(state)
    assert fresh.configuration_model is not None
    assert fresh.plausibility_threshold == 3.0

    for name in ('configuration_cov', 'configuration_threshold'):
        tampered = {k: v.clone() for k, v in state.items()}
        tampered[name].view(-1)[0] += 0.5
        fresh = build_head()
        with pytest.warns(UserWarning, match='values were edited'):
            fresh.load_state_dict(tampered)
        assert fresh.configuration_model is None
        assert not fresh.is_calibrated


def test_sealed_before_the_configuration_buffers_existed():
    """A checkpoint written before the configuration_* buffers keeps its
    seal: they load unset, the rest stays calibrated."""
    head = build_head()
    head.set_temperature(1.5)
    head.seal_calibration()
    state = {k: v for k, v in head.state_dict().items()
             if not k.startswith('configuration_')}
    fresh = build_head()
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        fresh.load_state_dict(state)
    assert fresh.is_calibrated and fresh.configuration_model is None
    torch.testing.assert_close(fresh.temperature, head.temperature)
