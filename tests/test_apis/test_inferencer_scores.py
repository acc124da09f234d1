"""MMPose's inferencers with their default kpt_thr (0.3) on trained tiny
models: keypoint_scores (the probability within a radius of the
prediction) are above the threshold for the landmarks a trained model
finds, so MMPose's visualiser draws them; XrayInferencer's predictions
carry ERE with its unit, the flag and the mode probability, equal to
predict_landmarks'."""
import json
import os.path as osp
import warnings

import numpy as np
import pytest

import mmchh  # noqa: F401
from mmchh.utils.errors import InputError


def test_mmpose_inferencer_draws_the_landmarks_above_kpt_thr(
        trained_tiny, tmp_path):
    """MMPose's own inferencer and visualiser on the trained tiny model:
    the landmarks drawn are exactly those whose keypoint_scores pass
    kpt_thr, at MMPose's default (0.3) and at a threshold between the
    model's scores."""
    from mmpose.apis import MMPoseInferencer
    cfg = str(tmp_path / 'tiny.py')
    tiny = trained_tiny['cfg'].copy()
    # what MMPose's inferencer needs of a config (as in
    # mmchh.testing.untrained_tiny_model)
    tiny.update(data_mode='topdown', dataset_type='CocoDataset',
                visualizer=dict(type='PoseLocalVisualizer',
                                name=f'vis_{tmp_path.name}'))
    tiny.dump(cfg)
    image = osp.join(trained_tiny['cfg'].train_dataloader.dataset.data_root,
                     'images', '000.png')
    inferencer = MMPoseInferencer(pose2d=cfg,
                                  pose2d_weights=trained_tiny['checkpoint'],
                                  device='cpu',
                                  det_model='whole_image')
    (bare, ) = list(inferencer(image, return_vis=True, kpt_thr=1.01))
    (pred, ) = bare['predictions'][0]
    scores = np.asarray(pred['keypoint_scores'])
    assert ((scores > 0) & (scores <= 1)).all()
    middle = float(np.sort(scores)[:2].mean())
    for thr in (None, middle):
        kwargs = {} if thr is None else dict(kpt_thr=thr)
        (drawn, ) = list(inferencer(image, return_vis=True, **kwargs))
        kept = scores > (0.3 if thr is None else thr)
        vis, plain = drawn['visualization'][0], bare['visualization'][0]
        for (x, y), keep in zip(
                np.round(pred['keypoints']).astype(int), kept):
            window = (slice(max(y - 1, 0), y + 2),
                      slice(max(x - 1, 0), x + 2))
            assert (vis[window] != plain[window]).any() == keep, (x, y, thr)
    assert 0 < (scores > middle).sum() < len(scores)


@pytest.fixture(scope='module')
def demo_image(calibrated_small_demo):
    with open(osp.join(calibrated_small_demo['data'], 'train.json')) as f:
        first = json.load(f)['images'][0]
    return (osp.join(calibrated_small_demo['data'], first['file_name']),
            tuple(first['spacing']))


@pytest.fixture(scope='module')
def xray_inferencer(calibrated_small_demo):
    from mmchh.apis import XrayInferencer
    return XrayInferencer(calibrated_small_demo['cfg'],
                          calibrated_small_demo['ckpt'],
                          device='cpu',
                          det_model='whole_image')


def test_xray_inferencer_carries_ere_and_flags(calibrated_small_demo,
                                               demo_image, xray_inferencer):
    from mmchh.apis import init_landmark_model, predict_landmarks
    path, spacing = demo_image
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        model = init_landmark_model(calibrated_small_demo['cfg'],
                                    calibrated_small_demo['ckpt'])
        (ours, ) = predict_landmarks(model, [path], spacing=spacing)
    (with_mm, ) = list(xray_inferencer(path, spacing=spacing))
    (pred, ) = with_mm['predictions'][0]
    assert pred['keypoint_ere_unit'] == 'mm'
    assert pred['keypoint_score_meaning'] == (
        'probability that the landmark lies within 2 mm of the prediction')
    marks = ours.landmarks
    np.testing.assert_allclose(pred['keypoint_ere'],
                               [m['ere_mm'] for m in marks], rtol=1e-5)
    assert pred['keypoint_flagged'] == [m['flagged'] for m in marks]
    np.testing.assert_allclose(pred['keypoint_mode_prob'],
                               [m['probability'] for m in marks], rtol=1e-5)
    assert pred['keypoint_valid'] == [True] * len(marks)
    scores = np.asarray(pred['keypoint_scores'])
    assert ((scores > 0) & (scores <= 1)).all()
    # a radius wider than a pixel holds more than the mode pixel
    assert (scores >= np.asarray(pred['keypoint_mode_prob'])).all()


def test_xray_inferencer_without_spacing_names_px_and_no_flag(
        demo_image, xray_inferencer, tmp_path):
    path, spacing = demo_image
    (result, ) = list(xray_inferencer(path, pred_out_dir=str(tmp_path)))
    (pred, ) = result['predictions'][0]
    assert pred['keypoint_ere_unit'] == 'px'
    # the demo's threshold is in mm: this image cannot be flagged
    assert pred['keypoint_flagged'] is None
    assert 'spacing' in pred['flag_unavailable']
    assert '5% of the box' in pred['keypoint_score_meaning']
    # ERE in image pixels times the spacing is the ERE in mm above
    (with_mm, ) = list(xray_inferencer(path, spacing=spacing))
    np.testing.assert_allclose(
        np.asarray(pred['keypoint_ere']) * np.mean(spacing),
        with_mm['predictions'][0][0]['keypoint_ere'], rtol=1e-4)
    # the file MMPose writes holds the same keys
    name = osp.splitext(osp.basename(path))[0] + '.json'
    with open(tmp_path / name) as f:
        assert json.load(f)[0]['keypoint_ere'] == pred['keypoint_ere']


def test_xray_inferencer_spacing_is_checked(demo_image, xray_inferencer):
    path, _ = demo_image
    with pytest.raises(InputError, match='XrayInferencer: spacing'):
        list(xray_inferencer(path, spacing=-1))
