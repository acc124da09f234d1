"""ERE in original-image pixels and flags whose unit is part of the
calibration state (mm or image px), on SoftmaxHeatmapHead."""
import numpy as np
import pytest
import torch
from mmengine.runner import save_checkpoint
from mmengine.structures import InstanceData
from mmpose.structures import PoseDataSample

import mmchh  # noqa: F401
# the tiny head: 16x12 heatmaps of a 32x24 input, 2 input px per heatmap px
from mmchh.testing.tiny_head import build_tiny_head as build_head
from mmchh.testing.tiny_head import tiny_feats as feats
from mmchh.utils.checkpoint import checkpoint_state_dict, load_checkpoint_file
from mmchh.utils.errors import InputError



def make_samples(input_scale=(80.0, 36.0), spacing=None, truth=True,
                 batch=2):
    """Test-pipeline samples: a crop of ``input_scale`` image pixels
    resized to the 32x24 input; optionally a spacing and the ground truth
    encoded on the grid."""
    out = []
    for i in range(batch):
        meta = dict(
            img_path=f'img{i}.png',
            input_center=np.array([50.0, 40.0]),
            input_scale=np.asarray(input_scale, np.float64),
            input_size=(32, 24))
        if spacing is not None:
            meta['spacing'] = np.asarray(spacing, np.float64)
        s = PoseDataSample(metainfo=meta)
        if truth:
            s.gt_instance_labels = InstanceData(
                heatmap_indices=torch.tensor([[0, 17, 100]]),
                keypoint_weights=torch.ones(1, 3))
        out.append(s)
    return out


def slow_ere(prob, pixel_size, threshold=0.05):
    """ERE of one (H, W) float64 map, pixel by pixel: mass below
    ``threshold`` of the peak dropped, the rest renormalised, expected
    distance to the (first) mode in units of ``pixel_size`` (x, y)."""
    h, w = prob.shape
    peak = prob.max()
    v0, u0 = divmod(int(np.argmax(prob)), w)
    total, weighted = 0.0, 0.0
    for v in range(h):
        for u in range(w):
            p = prob[v, u]
            if p < threshold * peak:
                continue
            d = np.hypot((u - u0) * pixel_size[0], (v - v0) * pixel_size[1])
            total += p
            weighted += p * d
    return weighted / total


@pytest.mark.parametrize('input_scale', [(80.0, 60.0), (80.0, 36.0)])
def test_ere_px_against_slow_reference(input_scale):
    """Square image pixels after the affine (80/32 = 60/24) rescale the
    input-pixel ERE; non-square ones (80/32 != 36/24) walk the maps; both
    equal the float64 loop over the pixels."""
    head = build_head()
    head.set_temperature(torch.tensor([0.6, 1.0, 2.5]))
    x = feats(3)
    preds = head.predict(x, make_samples(input_scale))
    logits = head(x).detach().double()
    t = head.temperature.double()
    # image px per heatmap px: 2 input px, times input_scale / input_size
    size = (2 * input_scale[0] / 32, 2 * input_scale[1] / 24)
    for i, p in enumerate(preds):
        for k in range(3):
            z = logits[i, k] / t[k]
            prob = torch.softmax(z.reshape(-1), 0).reshape(z.shape).numpy()
            assert p.keypoint_ere_px[0, k] == pytest.approx(
                slow_ere(prob, size), rel=1e-5)
        assert 'keypoint_ere_mm' not in p and 'keypoint_flagged' not in p


def test_ere_px_by_hand():
    """3/4 of the mass on the mode, 1/4 one heatmap pixel to its right and
    nothing else counts: ERE = 1/4 of one heatmap pixel = 1/4 * 2 input px
    * 80/32 image px = 1.25 px (0.125 mm at 0.1 mm per pixel)."""
    head = build_head()
    logits = torch.full((1, 3, 12, 16), -1e4)
    logits[..., 0, 0] = np.log(3.0)
    logits[..., 0, 1] = 0.0
    head.forward = lambda feats: logits
    pred = head.predict(feats(batch=1),
                        make_samples((80.0, 60.0), spacing=(0.1, 0.1),
                                     batch=1))[0]
    np.testing.assert_allclose(pred.keypoint_ere[0], 0.5, rtol=1e-6)
    np.testing.assert_allclose(pred.keypoint_ere_px[0], 1.25, rtol=1e-6)
    np.testing.assert_allclose(pred.keypoint_ere_mm[0], 0.125, rtol=1e-6)


def test_px_threshold_flags_with_and_without_spacing():
    head = build_head()
    x = feats(1)
    ere_px = head.predict(x, make_samples())[0].keypoint_ere_px[0]
    head.set_flag_threshold(float(np.median(ere_px)), 'px')
    assert head.flag_threshold_unit == 'px'
    for spacing in (None, (0.5, 0.5)):
        for truth in (True, False):
            pred = head.predict(x, make_samples(spacing=spacing,
                                                truth=truth))[0]
            np.testing.assert_array_equal(
                pred.keypoint_flagged[0],
                pred.keypoint_ere_px[0] > head.flag_threshold.item())
    assert pred.keypoint_flagged[0].any() and not \
        pred.keypoint_flagged[0].all()


def test_mm_threshold_without_spacing():
    """Evaluation or calibration (ground truth encoded) must not lose its
    flags silently; inference gets no flags (the API says why)."""
    head = build_head()
    head.set_flag_threshold(1.0)  # mm, as every older checkpoint
    assert head.flag_threshold_unit == 'mm'
    x = feats(1)
    flagged = head.predict(x, make_samples(spacing=(0.2, 0.2)))[0]
    np.testing.assert_array_equal(flagged.keypoint_flagged[0],
                                  flagged.keypoint_ere_mm[0] > 1.0)
    with pytest.raises(InputError, match=r'in mm .*img0\.png.*"spacing"'):
        head.predict(x, make_samples(spacing=None))
    pred = head.predict(x, make_samples(spacing=None, truth=False))[0]
    assert 'keypoint_flagged' not in pred and 'keypoint_ere_px' in pred
    with pytest.raises(ValueError, match="'mm' or 'px'"):
        head.set_flag_threshold(1.0, 'inch')


def test_flag_threshold_unit_round_trip_through_checkpoint(tmp_path):
    head = build_head()
    head.set_flag_threshold(7.5, 'px')
    head.seal_calibration()
    path = str(tmp_path / 'px.pth')
    save_checkpoint(head.state_dict(), path)
    state = checkpoint_state_dict(load_checkpoint_file(path), path)
    assert state['flag_threshold_in_mm'].dtype == torch.bool
    fresh = build_head()
    fresh.load_state_dict(state, strict=True)
    assert fresh.flag_threshold_unit == 'px'
    assert fresh.flag_threshold.item() == 7.5
    # a checkpoint written before the unit was stored keeps its mm meaning
    head.set_flag_threshold(2.0, 'mm')
    old = {k: v for k, v in head.state_dict().items()
           if k != 'flag_threshold_in_mm'}
    head.seal_calibration(old)
    old['calibration_fingerprint'] = head.calibration_fingerprint.clone()
    fresh.load_state_dict(old, strict=True)
    assert fresh.flag_threshold_unit == 'mm'
    # the unit is calibration state: reset with the rest
    fresh.set_flag_threshold(3.0, 'px')
    fresh.reset_calibration()
    assert fresh.flag_threshold_unit is None
    assert bool(fresh.flag_threshold_in_mm)
