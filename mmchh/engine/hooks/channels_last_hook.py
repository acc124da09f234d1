# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Training in the channels_last memory format (``tools/train.py
--channels-last``).

oneDNN's CPU convolutions run faster on NHWC tensors: the paper's float32
training step took 0.76x the time with channels_last weights and input
(docs/benchmarks.md, ``benchmarks/run.py``'s paired rows). Converting the
model's 4-D weights once is enough: a convolution with a channels_last
weight gives a channels_last output, which the next layers keep. The
values are those of the contiguous model (the same sums, in another
order: float tolerance).
"""
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

__all__ = ['ChannelsLastHook']


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Puts the model's 4-D parameters and buffers in channels_last before
    the run.

    Note:
        Each (O, I, kh, kw) convolution weight keeps its shape and values
        with NHWC strides; the Parameter objects stay the same, so an
        optimizer built before or after holds them.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)
        model.to(memory_format=torch.channels_last)
