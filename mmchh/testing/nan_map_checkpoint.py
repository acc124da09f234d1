# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""A checkpoint that loads but predicts only non-finite maps."""
import torch

__all__ = ['write_nan_map_checkpoint']


def write_nan_map_checkpoint(source: str, destination: str) -> str:
    """Writes ``source`` with every BatchNorm running variance set to -1.

    The weights stay finite, so the checkpoint passes the load-time
    finiteness check, but the square root of a negative variance makes
    every heatmap NaN: the "every landmark invalid" case of the tools.

    Returns:
        str: ``destination``.
    """
    ckpt = torch.load(source, map_location='cpu', weights_only=True)
    for key, value in ckpt['state_dict'].items():
        if key.endswith('running_var'):
            value.fill_(-1.0)
    torch.save(ckpt, destination)
    return destination
