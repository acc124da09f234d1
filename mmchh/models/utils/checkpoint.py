# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Activation checkpointing (MMPose's ``with_cp``) that leaves BN alone.

``torch.utils.checkpoint`` re-runs the checkpointed forward during
backward. A BatchNorm layer in train mode updates its running statistics
on every forward, so the recompute would update ``running_mean`` /
``running_var`` (and ``num_batches_tracked``) a second time per step: with
momentum 0.1 they take two momentum steps per training step (effectively
momentum 0.19) and count every batch twice. MMPose's
``ResNet(with_cp=True)``, whose blocks call the reentrant ``checkpoint``,
has this effect. Here the recompute runs under
:func:`frozen_running_stats`: the norm layers normalise with the batch
statistics exactly as in the first forward and their buffers are put back
afterwards, so a step with checkpointing changes the same buffers by the
same amounts and gives the same gradients as one without.
"""
import contextlib
from typing import Callable, Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


@contextlib.contextmanager
def frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """The running statistics of ``module``'s norm layers are restored when
    the context closes: whatever ran inside leaves them as they were.

    The layers still normalise with the batch statistics in train mode and
    save the same tensors for backward as in an ordinary forward (which
    ``torch.utils.checkpoint`` checks); only the update of the buffers is
    undone.

    Args:
        module (nn.Module): The module whose norm layers (any module with
            ``track_running_stats`` and ``running_mean``: BN, SyncBN,
            tracked InstanceNorm) are frozen.
    """
    saved = [(buf, buf.clone()) for m in module.modules()
             if getattr(m, 'track_running_stats', False)
             for buf in (m.running_mean, m.running_var,
                         getattr(m, 'num_batches_tracked', None))
             if buf is not None]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


def checkpoint_train(module: nn.Module, fn: Callable, *args):
    """``fn(*args)`` checkpointed when ``module`` trains with grad enabled.

    Non-reentrant ``torch.utils.checkpoint``: only ``args`` are kept for
    backward; ``fn``'s intermediate tensors are recomputed there, under
    :func:`frozen_running_stats` so that ``module``'s norm layers update
    their running statistics once per step. In eval mode or under
    ``torch.no_grad()`` ``fn`` simply runs.

    Args:
        module (nn.Module): The module ``fn`` runs (its norm layers are the
            ones frozen during the recompute).
        fn (Callable): The forward to checkpoint, often ``module`` itself.
        *args: Its inputs (tensors or None).

    Returns:
        Whatever ``fn(*args)`` returns.
    """
    if not (module.training and torch.is_grad_enabled()):
        return fn(*args)
    return checkpoint(
        fn,
        *args,
        use_reentrant=False,
        context_fn=lambda: (contextlib.nullcontext(),
                            frozen_running_stats(module)))
