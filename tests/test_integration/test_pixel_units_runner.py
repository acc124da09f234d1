"""Pixel-unit uncertainty metrics on a COCO-style config in a real Runner.

The OneHand10K overlay (MMPose's config + the softmax head, its val/test
pipelines encoding the ground truth and ``UncertaintyMetric`` next to PCK,
AUC and EPE) shrunk by cfg-options to a tiny COCO-style set without pixel
spacing: trained one epoch, calibrated (flag threshold in image pixels),
tested. Everything goes through MMEngine as a user's run would.
"""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.runner import Runner
from mmpose.apis import init_model

import mmchh  # noqa: F401
from mmchh.engine import calibrate_model
from mmchh.utils.checkpoint import checkpoint_state_dict, load_checkpoint_file
from mmchh.utils.run_config import load_run_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'hand_2d_keypoint', 'topdown_softmax',
                  'onehand10k', 'td-sm_res50_8xb32-210e_onehand10k-256x256.py')
NAMES = ('tip', 'knuckle', 'wrist')
SIZE = (64, 64)  # model input (w, h); heatmap 16x16


def write_coco_tree(root, num_images=4, shape=(48, 64), seed=0):
    """Grey 64x48 (w x h) images with three bright marks inside a box
    smaller than the image, their COCO json and a metainfo file."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    h, w = shape
    images, anns = [], []
    for i in range(num_images):
        img = rng.integers(0, 40, (h, w, 3), dtype=np.uint8)
        pts = np.stack([rng.integers(14, 50, 3), rng.integers(10, 38, 3)], 1)
        for k, (x, y) in enumerate(pts):
            cv2.circle(img, (int(x), int(y)), 3, (255 - 60 * k, ) * 3, -1)
        name = f'{i:03d}.png'
        cv2.imwrite(osp.join(root, 'images', name), img)
        images.append(dict(id=i + 1, file_name=name, width=w, height=h))
        kpts = np.concatenate([pts, np.full((3, 1), 2)], 1)
        anns.append(
            dict(id=i + 1, image_id=i + 1, category_id=1, iscrowd=0,
                 keypoints=kpts.reshape(-1).astype(float).tolist(),
                 num_keypoints=3, bbox=[10, 6, 44, 36], area=44 * 36))
    with open(osp.join(root, 'hands.json'), 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=[
            dict(id=1, name='hand', keypoints=list(NAMES), skeleton=[])
        ]), f)
    info = {
        i: dict(name=n, id=i, color=[255, 0, 0], type='', swap='')
        for i, n in enumerate(NAMES)
    }
    with open(osp.join(root, 'meta.py'), 'w') as f:
        f.write('dataset_info = ' + repr(dict(
            dataset_name='tiny_hands', paper_info=dict(), keypoint_info=info,
            skeleton_info=dict(), joint_weights=[1.0] * 3,
            sigmas=[0.025] * 3)) + '\n')


def shrink_options(root):
    """cfg-options that shrink the OneHand10K overlay to the tiny set: a
    ResNet-18 at 64x64, one epoch of two batches, no pretrained weights."""
    codec = dict(input_size=SIZE, heatmap_size=(16, 16))
    opts = {
        'model.backbone.depth': 18,
        'model.backbone.init_cfg': None,
        'model.head.in_channels': 512,
        'model.head.out_channels': 3,
        'model.head.deconv_out_channels': (16, 16, 16),
        'model.head.decoder.input_size': SIZE,
        'model.head.decoder.heatmap_size': (16, 16),
        # maps that differ from landmark to landmark from the start (the
        # base's std 0.001 gives flat maps until trained for longer), and
        # no warm-up: two steps are the whole schedule
        'model.head.init_cfg': dict(
            type='Normal', layer=['Conv2d', 'ConvTranspose2d'], std=0.05),
        'param_scheduler': [],
        'optim_wrapper.optimizer.lr': 1e-3,
        'train_cfg.max_epochs': 1,
        'train_cfg.val_interval': 2,  # validated below, by hand
        'train_dataloader.dataset.pipeline.4.input_size': SIZE,
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.save_best': None,
        'visualizer.name': 'vis_pixel_units',
        'randomness.seed': 0,
        'log_level': 'WARNING',
    }
    for key, value in codec.items():
        opts[f'train_dataloader.dataset.pipeline.5.encoder.{key}'] = value
    for loader in ('train', 'val', 'test'):
        prefix = f'{loader}_dataloader.'
        opts.update({
            prefix + 'batch_size': 2,
            prefix + 'num_workers': 0,
            prefix + 'persistent_workers': False,
            prefix + 'dataset.type': 'CocoDataset',
            prefix + 'dataset.data_root': root,
            prefix + 'dataset.ann_file': 'hands.json',
            prefix + 'dataset.data_prefix': dict(img='images/'),
            prefix + 'dataset.metainfo': dict(
                from_file=osp.join(root, 'meta.py')),
        })
        if loader != 'train':
            opts[prefix + 'dataset.pipeline.2.input_size'] = SIZE
            for key, value in codec.items():
                opts[f'{prefix}dataset.pipeline.3.encoder.{key}'] = value
    return opts


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tiny_hands'))
    work = str(tmp_path_factory.mktemp('pixel_units_work'))
    write_coco_tree(root)
    cfg = load_run_config(CONFIG, shrink_options(root), work)
    runner = Runner.from_cfg(cfg)
    runner.train()
    uncalibrated = runner.val_loop.run()
    # the calibration split: the val loader (a test would hold images out)
    report = calibrate_model(runner, cfg.val_dataloader)
    metrics = runner.test()
    return dict(runner=runner, work=work, report=report, metrics=metrics,
                uncalibrated=uncalibrated)


def test_overlay_reports_uncertainty_in_image_pixels(run):
    metrics = run['metrics']
    # the inherited MMPose metrics are still there
    assert {'PCK', 'AUC', 'EPE'} <= set(metrics)
    for key in ('unc/NLL', 'unc/ECE', 'unc/pearson', 'unc/MERE',
                'unc/conformal/coverage', 'unc/conformal/area_px2'):
        assert np.isfinite(metrics[key]), key
    metric = [m for m in run['runner'].test_evaluator.metrics
              if type(m).__name__ == 'UncertaintyMetric'][0]
    assert metric.last_details['unit'] == 'px'
    erroneous = metric.last_arrays['error'] > metric.erroneous_px
    # the ROC needs both kinds of landmark; with them the AUC is a number
    assert np.isfinite(metrics['unc/AUC']) == (
        erroneous.any() and not erroneous.all())
    # calibrated: a flag threshold in pixels, so the Good/Erroneous table
    assert metrics['unc/overall/count'] == 12
    assert (metrics['unc/good/count'] + metrics['unc/erroneous/count']
            == 12)
    # before calibration: the same metrics, without flags or regions
    assert np.isfinite(run['uncalibrated']['unc/NLL'])
    assert 'unc/overall/count' not in run['uncalibrated']
    assert 'unc/conformal/coverage' not in run['uncalibrated']


def test_calibration_fits_the_threshold_in_image_pixels(run):
    flagging = run['report']['flagging']
    assert flagging['unit'] == 'px' and 'threshold_mm' not in flagging
    assert flagging['threshold_px'] == flagging['threshold']
    assert flagging['erroneous_px'] == 10.0
    head = run['runner'].model.head
    assert head.flag_threshold_unit == 'px'
    assert head.flag_threshold.item() == pytest.approx(flagging['threshold'])
    # the calibrated checkpoint carries the unit, bound to the weights
    path = osp.join(run['work'], 'calibrated.pth')
    ckpt = load_checkpoint_file(path)
    state = checkpoint_state_dict(ckpt, path)
    assert not bool(state['head.flag_threshold_in_mm'])
    assert ckpt['meta']['calibration']['flagging']['unit'] == 'px'
    fresh = init_model(run['runner'].cfg, device='cpu')
    fresh.load_state_dict(state)
    assert fresh.head.flag_threshold_unit == 'px'
    assert torch.equal(fresh.head.flag_threshold, head.flag_threshold.cpu())
