# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""A tiny :class:`~mmchh.models.heads.SoftmaxHeatmapHead` and its input.

The tests of the head, of its calibration state and of the fields it adds
build the same small head: 8 feature channels at 8x6, one 4x4
deconvolution up to the 16x12 heatmaps of a 32x24 input (2 input pixels
per heatmap pixel, so a unit mix-up shows).
"""
import torch
from mmpose.registry import MODELS

__all__ = ['TINY_CODEC', 'build_tiny_head', 'tiny_feats']

#: The tiny head's codec: 16x12 heatmaps of a 32x24 input.
TINY_CODEC = dict(type='SoftmaxHeatmap', input_size=(32, 24),
                  heatmap_size=(16, 12))


def build_tiny_head(out_channels: int = 3, **overrides):
    """The tiny head, its weights initialised, in eval mode.

    Args:
        out_channels (int): Landmarks K. Default 3.
        **overrides: Config keys replacing the tiny head's (e.g.
            ``deconv_out_channels=None`` for 16x12 features).

    Returns:
        SoftmaxHeatmapHead: The head.
    """
    cfg = dict(type='SoftmaxHeatmapHead',
               in_channels=8,
               out_channels=out_channels,
               deconv_out_channels=(8, ),
               deconv_kernel_sizes=(4, ),
               decoder=TINY_CODEC)
    cfg.update(overrides)
    head = MODELS.build(cfg)
    head.init_weights()
    return head.eval()


def tiny_feats(seed: int = 0, batch: int = 2) -> tuple:
    """Seeded features for the tiny head: ``((batch, 8, 6, 8), )``."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 8, 6, 8, generator=g), )
