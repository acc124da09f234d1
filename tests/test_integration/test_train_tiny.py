"""MMPose's TopdownPoseEstimator (ResNet-18) with our head and codec, trained
by a real MMEngine Runner on a tiny COCO-keypoint set written to disk."""
import copy
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner


def test_loss_falls(trained_tiny):
    losses = trained_tiny['losses']
    assert len(losses) == trained_tiny['cfg'].train_cfg.max_epochs * 4
    assert np.isfinite(losses).all()
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    # starts near log(16 * 16), the NLL of a uniform map
    assert first == pytest.approx(np.log(256), abs=0.3)
    assert last < first - 0.3, losses


def test_checkpoint_reloads_and_tests_like_last_validation(
        trained_tiny, tmp_path):
    assert osp.isfile(trained_tiny['checkpoint'])
    cfg = Config(copy.deepcopy(trained_tiny['cfg'].to_dict()))
    cfg.work_dir = str(tmp_path)
    cfg.load_from = trained_tiny['checkpoint']
    metrics = Runner.from_cfg(cfg).test()
    val = trained_tiny['val_metrics']
    assert set(metrics) == set(val) == {'EPE'}
    assert metrics['EPE'] == pytest.approx(val['EPE'], rel=1e-6)


def test_resume_restores_training_state(trained_tiny, tmp_path):
    cfg = Config(copy.deepcopy(trained_tiny['cfg'].to_dict()))
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_epochs += 1
    cfg.resume = True
    cfg.load_from = trained_tiny['checkpoint']
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.epoch == cfg.train_cfg.max_epochs
    assert osp.isfile(osp.join(str(tmp_path), f'epoch_{runner.epoch}.pth'))
