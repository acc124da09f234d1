# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Mixed-precision training on the CPU: bf16 autocast around the forward.

MMEngine's ``AmpOptimWrapper`` asserts a GPU (its ``GradScaler`` is
CUDA's). bfloat16 has float32's exponent range, so the CPU needs no loss
scaling: this wrapper is MMEngine's plain ``OptimWrapper`` whose
``optim_context`` (the context ``BaseModel.train_step`` runs the forward
and the loss in) also enters ``torch.autocast('cpu', dtype=bfloat16)``.
Parameters, gradients, optimizer state and checkpoints stay float32; the
loss is float32 (``SoftmaxNLLLoss`` disables autocast).
``tools/train.py --amp`` selects it on a CPU (``AmpOptimWrapper`` on CUDA).
"""
from contextlib import contextmanager
from typing import Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from ..amp import amp_summary

__all__ = ['CpuAmpOptimWrapper']


@OPTIM_WRAPPERS.register_module()
class CpuAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` with CPU autocast in its ``optim_context``.

    Args:
        dtype (str | torch.dtype): The autocast dtype, ``'bfloat16'``
            (the default; CPU autocast also takes ``'float16'``).
        **kwargs: As :class:`mmengine.optim.OptimWrapper` (``optimizer``,
            ``accumulative_counts``, ``clip_grad``).

    Note:
        Under the context, convolutions and matrix products of the model's
        (B, C, H, W) activations run in ``dtype``; the head's (B, K, H, W)
        logits are promoted to float32 before the softmax, and the loss is
        float32, so ``update_params`` backpropagates a float32 scalar into
        float32 parameters.
    """

    def __init__(self,
                 dtype: Union[str, torch.dtype] = 'bfloat16',
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            if dtype not in ('bfloat16', 'float16'):
                raise ValueError('CpuAmpOptimWrapper: dtype must be '
                                 f"'bfloat16' or 'float16'; got {dtype!r}")
            dtype = getattr(torch, dtype)
        self.cast_dtype = dtype
        print_log(f'CpuAmpOptimWrapper: {amp_summary("cpu")}; dtype '
                  f'{str(dtype).replace("torch.", "")}, parameters and '
                  'checkpoints float32', logger='current')

    @contextmanager
    def optim_context(self, model: nn.Module):
        """MMEngine's context (gradient accumulation) with CPU autocast."""
        with super().optim_context(model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield
