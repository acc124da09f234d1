# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The tiny model, untrained: a config file and a checkpoint in a second.

For tests that compare two ways of running the same weights (MMPose's
entry points against ``predict_landmarks``): they need a real model and
checkpoint, not a trained one. Seeded, so its predictions are the same on
every run.
"""
import os.path as osp
from typing import Tuple

import torch

from .tiny_marks import tiny_runner_cfg

__all__ = ['write_untrained_tiny_model']


def write_untrained_tiny_model(root: str,
                               load_step: str = 'LoadFullRangeImage',
                               seed: int = 0) -> Tuple[str, str]:
    """Writes :func:`~mmchh.testing.tiny_runner_cfg`'s model with 1/8 of
    its channels, randomly initialised, as ``root/tiny_cfg.py`` and
    ``root/tiny.pth``.

    The config is completed as MMPose's inferencers need it
    (``data_mode``, ``dataset_type``, a ``visualizer``); its test pipeline
    loads with ``load_step`` (grey, one channel: the model is grey).

    Args:
        root (str): An empty folder (the tiny dataset is written under it).
        load_step (str): The test pipeline's first step.
        seed (int): Seed of the weights.

    Returns:
        tuple: (config path, checkpoint path)
    """
    from mmengine.config import Config
    from mmpose.apis import init_model

    # the config's custom_imports registers mmchh's modules for init_model
    cfg = tiny_runner_cfg(osp.join(root, 'data'), osp.join(root, 'work'))
    for loader in ('val_dataloader', 'test_dataloader'):
        pipeline = [dict(step) for step in cfg[loader]['dataset']['pipeline']]
        pipeline[0] = dict(type=load_step, color_type='grayscale')
        cfg[loader]['dataset']['pipeline'] = pipeline
    # 1/8 of the channels: a load (with its finiteness check) takes
    # milliseconds, and the predictions still depend on the pixels
    cfg['model']['backbone'].update(stem_channels=8, base_channels=8)
    cfg['model']['head'].update(in_channels=64,
                                deconv_out_channels=(16, 16, 16))
    cfg.update(data_mode='topdown',
               dataset_type='CocoDataset',
               visualizer=dict(type='PoseLocalVisualizer',
                               name='tiny_visualizer'))
    cfg_path = osp.join(root, 'tiny_cfg.py')
    Config(cfg).dump(cfg_path)
    torch.manual_seed(seed)
    model = init_model(cfg_path, checkpoint=None, device='cpu')
    ckpt_path = osp.join(root, 'tiny.pth')
    torch.save(
        dict(state_dict=model.state_dict(),
             meta=dict(dataset_meta=model.dataset_meta)), ckpt_path)
    return cfg_path, ckpt_path
