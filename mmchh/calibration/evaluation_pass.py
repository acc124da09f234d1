# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What every calibration fit does around its pass over the calibration
split: the model's ``test_cfg`` changed for the pass only, and a value fitted
on the main process handed to every rank."""
import contextlib

import torch
from mmengine.dist import broadcast, get_world_size

__all__ = ['changed_test_cfg', 'broadcast_from_main']


@contextlib.contextmanager
def changed_test_cfg(model, **changes):
    """``model.test_cfg`` with ``changes`` for the duration (restored even
    when the pass raises)."""
    original = model.test_cfg
    model.test_cfg = dict(original or {}, **changes)
    try:
        yield
    finally:
        model.test_cfg = original


def broadcast_from_main(tensor: torch.Tensor, device) -> torch.Tensor:
    """``tensor`` (filled on the main process) on every rank, on
    ``device``."""
    tensor = tensor.to(device)
    if get_world_size() > 1:
        broadcast(tensor, src=0)
    return tensor
