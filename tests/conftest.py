"""Shared fixtures: a tiny COCO-keypoint dataset written to disk and a real
MMEngine Runner that trains MMPose's ResNet-18 with our head on it."""
import os.path as osp

import pytest

from mmchh.testing import tiny_runner_cfg


@pytest.fixture(scope='session')
def trained_tiny(tmp_path_factory):
    """Trains the tiny model once per session with a real Runner.

    Returns:
        dict: ``cfg`` (Config), ``work_dir``, ``losses`` (per-iteration loss
        values), ``val_metrics`` (metrics of the last validation) and
        ``checkpoint`` (path of the last epoch's checkpoint).
    """
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    import mmchh  # noqa: F401

    root = str(tmp_path_factory.mktemp('tiny_data'))
    work_dir = str(tmp_path_factory.mktemp('tiny_work'))
    cfg = Config(tiny_runner_cfg(root, work_dir))

    class Recorder(Hook):
        def __init__(self):
            self.losses, self.val_metrics = [], None

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            self.losses.append(float(outputs['loss'].detach()))

        def after_val_epoch(self, runner, metrics=None):
            self.val_metrics = dict(metrics)

    recorder = Recorder()
    runner = Runner.from_cfg(cfg)
    runner.register_hook(recorder)
    runner.train()
    checkpoint = osp.join(work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    return dict(
        cfg=cfg,
        work_dir=work_dir,
        losses=recorder.losses,
        val_metrics=recorder.val_metrics,
        checkpoint=checkpoint)
