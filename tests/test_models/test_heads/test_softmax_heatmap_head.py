import numpy as np
import pytest
import torch
from mmengine.runner import load_checkpoint, save_checkpoint
from mmengine.structures import InstanceData
from mmpose.structures import PoseDataSample

import mmchh  # noqa: F401
from mmchh.codecs.utils import expected_radial_error, softmax_2d
from mmchh.testing.tiny_head import build_tiny_head as build_head
from mmchh.testing.tiny_head import tiny_feats as feats


def samples(batch=2, flip_indices=(0, 2, 1)):
    out = []
    for _ in range(batch):
        s = PoseDataSample(metainfo=dict(flip_indices=list(flip_indices)))
        s.gt_instance_labels = InstanceData(
            heatmap_indices=torch.tensor([[0, 5, 191]]),
            keypoint_weights=torch.tensor([[1.0, 1.0, 0.0]]))
        out.append(s)
    return out


def test_forward_and_predict_shapes():
    head = build_head()
    x = feats()
    logits = head(x)
    assert logits.shape == (2, 3, 12, 16)
    preds, fields = head.predict(x, samples(), dict(output_heatmaps=True))
    assert len(preds) == 2
    for p, f in zip(preds, fields):
        assert p.keypoints.shape == (1, 3, 2)
        assert p.keypoint_scores.shape == (1, 3)
        assert p.keypoint_ere.shape == (1, 3)
        assert f.heatmaps.shape == (3, 12, 16)
        torch.testing.assert_close(f.heatmaps.sum((-2, -1)), torch.ones(3))
    # keypoint_mode_prob is the probability at the mode (keypoint_scores,
    # the mass within a radius: test_keypoint_scores.py), ERE in input
    # pixels (x2)
    probs = softmax_2d(logits)
    np.testing.assert_allclose(
        preds[0].keypoint_mode_prob[0],
        probs[0].flatten(-2).max(-1).values.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        preds[0].keypoint_ere[0],
        expected_radial_error(probs[0], pixel_size=2.0).detach().numpy(),
        rtol=1e-5)


def test_temperature_positive_and_validated():
    head = build_head()
    torch.testing.assert_close(head.temperature, torch.ones(3))
    head.set_temperature(torch.tensor([0.5, 2.0, 3.0]))
    torch.testing.assert_close(head.temperature, torch.tensor([0.5, 2, 3.]))
    for bad in (0.0, -1.0, float('nan')):
        with pytest.raises(ValueError, match='temperatures'):
            head.set_temperature(bad)
    # a buffer: not a parameter the training optimizer would update
    assert 'log_temperature' not in dict(head.named_parameters())


def test_temperature_survives_checkpoint(tmp_path):
    head = build_head()
    head.set_temperature(torch.tensor([0.25, 1.5, 4.0]))
    # a calibration travels only bound to its weights (an unsealed one is
    # loaded as uncalibrated, see tests/test_reliability)
    head.seal_calibration()
    path = str(tmp_path / 'head.pth')
    save_checkpoint(head.state_dict(), path)
    fresh = build_head()
    load_checkpoint(fresh, path, map_location='cpu', strict=True)
    torch.testing.assert_close(fresh.temperature, head.temperature)
    # and it changes the predictions exactly as on the original
    a = head.predict(feats(), samples())
    b = fresh.predict(feats(), samples())
    head.load_state_dict(fresh.state_dict())
    np.testing.assert_allclose(a[0].keypoint_scores, b[0].keypoint_scores)


def test_measurement_jitter_is_stored_validated_and_sealed(tmp_path):
    from mmchh.calibration.conformal import MeasurementIntervalFit
    head = build_head()  # K = 3
    assert torch.isnan(head.measurement_jitter).all()
    jitter = np.array([[[2.0, 0.5], [0.5, 1.0]], [[0, 0], [0, 0.25]],
                       [[0, 0], [0, 0]]])
    head.set_measurement_interval(1.5, 0.95, 0.9, jitter)
    np.testing.assert_allclose(head.measurement_jitter.numpy(), jitter)
    fit, why = MeasurementIntervalFit.from_head(head)
    assert why == '' and np.allclose(fit.jitter_array, jitter)
    for bad, message in ((jitter[:2], 'K = 3'),
                         (-jitter, 'semi-definite')):
        with pytest.raises(ValueError, match=message):
            head.set_measurement_interval(1.5, 0.95, 0.9, bad)
    head.seal_calibration()
    path = str(tmp_path / 'head.pth')
    save_checkpoint(head.state_dict(), path)
    fresh = build_head()
    load_checkpoint(fresh, path, map_location='cpu', strict=True)
    np.testing.assert_allclose(fresh.measurement_jitter.numpy(), jitter)
    # refitted without a jitter: none stored, the maps' own draws
    head.set_measurement_interval(1.5, 0.95, 0.9)
    assert torch.isnan(head.measurement_jitter).all()
    assert MeasurementIntervalFit.from_head(head)[0].jitter is None


def test_a_sealed_identity_calibration_stays_calibrated():
    # the do-no-harm fit may keep T = 1 and fit nothing else: sealed, it is
    # a calibration, and it travels as one
    head = build_head()
    assert not head.is_calibrated
    head.seal_calibration()
    assert head.is_calibrated and not head.has_calibration_state
    fresh = build_head()
    fresh.load_state_dict(head.state_dict(), strict=True)
    assert fresh.is_calibrated
    assert fresh.calibration_fingerprint_hex == \
        head.calibration_fingerprint_hex
    # a temperature edited under that seal is not the sealed calibration
    edited = head.state_dict()
    edited['log_temperature'] = torch.tensor([0.0, 0.3, 0.0])
    with pytest.warns(UserWarning, match='calibration values were edited'):
        fresh.load_state_dict(edited, strict=True)
    assert not fresh.is_calibrated and fresh.temperature.eq(1).all()


def test_a_weights_only_seal_of_an_older_mmchh_is_kept_with_a_warning():
    head = build_head()
    head.set_temperature(torch.tensor([0.5, 2.0, 1.5]))
    weights_hex = head.seal_calibration()
    old = head.state_dict()  # as written before seals bound the values
    old['calibration_fingerprint'] = torch.frombuffer(
        bytearray.fromhex(weights_hex), dtype=torch.uint8)
    fresh = build_head()
    with pytest.warns(UserWarning, match='sealed by an older mmchh'):
        fresh.load_state_dict(old, strict=True)
    torch.testing.assert_close(fresh.temperature, head.temperature)
    assert fresh.is_calibrated


def test_temperature_moves_scores_and_ere_not_mode():
    head = build_head()
    # controlled network output: logits falling with the distance from a
    # per-landmark centre plus noise, so flatter maps must spread further
    g = torch.Generator().manual_seed(3)
    ys, xs = torch.meshgrid(torch.arange(12.), torch.arange(16.),
                            indexing='ij')
    centres = [(3, 4), (10, 2), (8, 8)]
    logits = torch.stack([
        -((xs - cx)**2 + (ys - cy)**2).sqrt() for cx, cy in centres
    ])[None].repeat(2, 1, 1, 1) + 0.05 * torch.randn(2, 3, 12, 16,
                                                    generator=g)
    head.forward = lambda feats: logits
    results = {}
    for t in (0.5, 1.0, 2.0):
        head.set_temperature(t)
        results[t] = head.predict(feats(), samples())
    for i in range(2):
        for t in (0.5, 2.0):
            np.testing.assert_array_equal(results[t][i].keypoints,
                                          results[1.0][i].keypoints)
        # input pixel (x + 0.5) / 2 - 0.5 is heatmap pixel x (scale 2)
        np.testing.assert_array_equal(
            (results[1.0][i].keypoints[0] + 0.5) / 2 - 0.5,
            np.array(centres, dtype=np.float32))
        s = [results[t][i].keypoint_scores for t in (0.5, 1.0, 2.0)]
        e = [results[t][i].keypoint_ere for t in (0.5, 1.0, 2.0)]
        # hotter (larger T) -> flatter maps: lower mode probability, more ERE
        assert (s[0] > s[1]).all() and (s[1] > s[2]).all()
        assert (e[0] < e[1]).all() and (e[1] < e[2]).all()


def test_flip_test_averages_probabilities():
    head = build_head()
    x, x_flip = feats(1), feats(2)
    preds, fields = head.predict([x, x_flip], samples(),
                                 dict(flip_test=True, output_heatmaps=True))
    p = softmax_2d(head(x))
    p_flip = softmax_2d(head(x_flip)).flip(-1)[:, [0, 2, 1]]
    torch.testing.assert_close(fields[0].heatmaps, ((p + p_flip) / 2)[0])
    torch.testing.assert_close(fields[0].heatmaps.sum((-2, -1)),
                               torch.ones(3))
    # MMPose's stock test_cfg asks for shift_heatmap: ignored, with a warning
    import mmchh.models.heads.softmax_heatmap_head as mod
    mod._SHIFT_WARNED.clear()
    with pytest.warns(UserWarning, match='shift_heatmap'):
        _, shifted = head.predict(
            [x, x_flip], samples(),
            dict(flip_test=True, shift_heatmap=True, output_heatmaps=True))
    torch.testing.assert_close(shifted[0].heatmaps, fields[0].heatmaps)


def test_loss_and_device_side_accuracy():
    head = build_head()
    x = feats()
    losses = head.loss(x, samples())
    assert set(losses) == {'loss_kpt', 'acc_pose'}
    assert losses['loss_kpt'].requires_grad
    # mean NLL over the counted landmarks (0 and 1) of both samples
    log_p = torch.log_softmax(head(x).flatten(-2), -1)
    expected = -(log_p[:, 0, 0] + log_p[:, 1, 5]).sum() / 4
    torch.testing.assert_close(losses['loss_kpt'], expected)
    # constant maps: every mode is pixel 0, so landmark 0 (target 0) hits,
    # landmark 1 (target 5) misses, landmark 2 has weight 0 and is ignored
    with torch.no_grad():
        head.final_layer.weight.zero_()
        head.final_layer.bias.zero_()
    assert head.loss(x, samples())['acc_pose'].item() == pytest.approx(0.5)
    assert 'acc_pose' not in head.loss(x, samples(),
                                       dict(compute_acc=False))


def samples_with_gt(batch=2, spacing=(0.1, 0.2), grid=(16, 12, 32, 24)):
    """Samples as the test pipeline makes them: gt in original-image
    coordinates, an input crop of the original, a spacing, and the gt
    encoded on the model's grid by GenerateTarget (``gt_instance_labels``)."""
    out = []
    rng = np.random.default_rng(0)
    for _ in range(batch):
        s = PoseDataSample(
            metainfo=dict(
                input_center=np.array([40.0, 30.0]),
                input_scale=np.array([64.0, 48.0]),  # original px shown
                input_size=(32, 24),
                spacing=np.array(spacing)))
        # integer heatmap cells -> original coordinates (4 original px per
        # heatmap px: 2 from the codec, 2 from input_scale / input_size)
        cells = np.stack([rng.integers(0, 16, 3), rng.integers(0, 12, 3)], 1)
        kpts = cells * 4.0 + np.array([40.0 - 32, 30.0 - 24])
        s.gt_instances = InstanceData(
            keypoints=kpts[None].astype(np.float32),
            keypoints_visible=np.ones((1, 3), np.float32))
        s.gt_instance_labels = InstanceData(
            heatmap_indices=torch.as_tensor(cells[None, :, 1] * 16 +
                                            cells[None, :, 0]),
            keypoint_weights=torch.ones(1, 3),
            heatmap_grid=torch.tensor([grid]))
        s.set_field(cells, 'cells', field_type='metainfo')
        out.append(s)
    return out


@pytest.mark.parametrize('spacing', [(0.1, 0.2), (0.15, 0.15)])
def test_predict_calibration_scalars_against_references(spacing):
    """Anisotropic pixels walk the maps in mm; square ones rescale the
    input-pixel ERE -- both must equal the reference."""
    head = build_head()
    head.set_temperature(torch.tensor([0.7, 1.0, 1.6]))
    x = feats(5)
    ss = samples_with_gt(spacing=spacing)
    preds = head.predict(x, ss)
    logits = head(x).detach().double()
    t = head.temperature.double()
    for i, (p, s) in enumerate(zip(preds, ss)):
        cells = s.metainfo['cells']
        index = cells[:, 1] * 16 + cells[:, 0]
        np.testing.assert_array_equal(p.keypoint_target_weight[0], 1)
        for k in range(3):
            z = logits[i, k].reshape(-1) / t[k]
            ref_nll = float(torch.logsumexp(z, 0) - z[index[k]])
            assert p.keypoint_nll[0, k] == pytest.approx(ref_nll, rel=1e-5)
            assert p.keypoint_mode_hit[0, k] == (int(z.argmax()) == index[k])
        # ERE in mm: heatmap px -> 4 original px -> spacing mm
        probs = softmax_2d(logits[i:i + 1].float(), head.temperature)
        ref = expected_radial_error(
            probs[0], pixel_size=(4 * spacing[0], 4 * spacing[1]))
        np.testing.assert_allclose(p.keypoint_ere_mm[0], ref.numpy(),
                                   rtol=1e-5)
        assert 'keypoint_flagged' not in p
    head.set_flag_threshold(float(np.median(preds[0].keypoint_ere_mm)))
    flagged = head.predict(x, ss)[0]
    np.testing.assert_array_equal(
        flagged.keypoint_flagged[0],
        flagged.keypoint_ere_mm[0] > head.flag_threshold.item())
    with pytest.raises(ValueError, match='flag threshold'):
        head.set_flag_threshold(-1)


def test_uncalibrated_state_dict_loads_with_unit_temperature():
    head = build_head()
    state = {
        k: v
        for k, v in head.state_dict().items()
        if k not in ('log_temperature', 'flag_threshold')
    }
    fresh = build_head()
    fresh.set_temperature(3.0)
    fresh.load_state_dict(state, strict=True)
    torch.testing.assert_close(fresh.temperature, torch.ones(3))
    assert torch.isnan(fresh.flag_threshold) and not fresh.is_calibrated


def test_predict_without_encoded_ground_truth_scores_nothing():
    """Inference samples (no gt_instance_labels) and samples with only the
    original-image ground truth get no NLL: the head never maps the ground
    truth itself."""
    head = build_head()
    ss = samples_with_gt()
    for s in ss:
        del s.gt_instance_labels
    preds = head.predict(feats(5), ss)
    assert 'keypoint_nll' not in preds[0]
    assert 'keypoint_ere_mm' in preds[0]


@pytest.mark.parametrize('case', ['other_grid', 'annotator_targets'])
def test_predict_refuses_ground_truth_it_cannot_score(case):
    from mmchh.utils.errors import InputError
    head = build_head()
    if case == 'other_grid':
        ss = samples_with_gt(grid=(8, 6, 32, 24))
        match = 'ground-truth targets were encoded for a 8x6 heatmap'
    else:
        ss = samples_with_gt()
        for s in ss:
            s.gt_instance_labels.heatmap_indices = \
                s.gt_instance_labels.heatmap_indices[..., None].repeat(
                    1, 1, 2)
        match = 'one-hot'
    with pytest.raises(InputError, match=match):
        head.predict(feats(5), ss)


def test_predict_outputs_logits_on_request():
    head = build_head()
    x = feats(5)
    preds, fields = head.predict(x, samples_with_gt(),
                                 dict(output_logits=True))
    torch.testing.assert_close(
        torch.stack([f.logits for f in fields]), head(x))
    assert 'heatmaps' not in fields[0]
    with pytest.raises(ValueError, match='output_logits'):
        head.predict([x, x], samples_with_gt(),
                     dict(flip_test=True, output_logits=True))
