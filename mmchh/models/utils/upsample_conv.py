# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""A 3 x 3 convolution of a x2 nearest upsampling, computed without the
upsampling.

A U-Net decoder block upsamples its input x2 (nearest) and convolves it
3 x 3 (padding 1). On the upsampled grid every input pixel appears 2 x 2
times, so the output pixel of phase ``(p, q)`` (row ``2i + p``, column
``2j + q``) sees only 2 x 2 distinct input pixels: its 3 x 3 taps fall
onto input rows ``{i - 1, i}`` for ``p = 0`` (tap rows ``{-1}`` and
``{0, +1}``) and ``{i, i + 1}`` for ``p = 1`` (``{-1, 0}`` and ``{+1}``),
and the same for columns. Summing the weights that fall onto one input
pixel gives one 2 x 2 kernel per phase; placed in a 3 x 3 kernel at the
rows and columns that phase reads, the four of them convolve the
low-resolution input (padding 1: zero padding of the upsampled grid is
zero padding of the input) into 4 x the output channels, and a pixel
shuffle interleaves the phases. The result is exactly the convolution of
the upsampled input; the upsampled tensor is never made, in the forward
or in the backward (only the low-resolution input is saved for it). The
weights stay the 3 x 3 parameter of the layer (the phase kernels are
summed from it in every forward, so gradients reach it as usual).
"""
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['upsample_conv3x3_phase_kernels', 'nearest_upsample_conv3x3']

# which 3 x 3 tap rows (or columns) land on the two input rows (columns)
# a phase reads: phase 0 reads rows i - 1, i; phase 1 rows i, i + 1
_PHASE_TAPS = (((0, ), (1, 2)), ((0, 1), (2, )))


def upsample_conv3x3_phase_kernels(weight: Tensor) -> Tensor:
    """The phase kernels of a 3 x 3 kernel on a x2 nearest grid.

    Args:
        weight (Tensor): The 3 x 3 convolution weight.

    Returns:
        Tensor: For output channel ``o`` and phase ``(p, q)``, at channel
        ``4 * o + 2 * p + q`` (``F.pixel_shuffle``'s order): the phase's
        2 x 2 kernel at rows ``p, p + 1`` and columns ``q, q + 1`` of a
        3 x 3 kernel, zeros elsewhere.

    Note:
        - weight: (O, I, 3, 3)
        - returns: (4 * O, I, 3, 3)
    """
    if weight.dim() != 4 or tuple(weight.shape[-2:]) != (3, 3):
        raise ValueError('upsample_conv3x3_phase_kernels needs a (O, I, 3, 3) '
                         f'weight, got {tuple(weight.shape)}')
    out_channels, in_channels = weight.shape[:2]
    # rows summed per phase: (O, I, 2 phases, 2 input rows, 3)
    rows = torch.stack([
        torch.stack([weight[:, :, list(taps), :].sum(2) for taps in phase],
                    2) for phase in _PHASE_TAPS
    ], 2)
    kernels = weight.new_zeros(out_channels, 2, 2, in_channels, 3, 3)
    for q, phase in enumerate(_PHASE_TAPS):
        # columns summed for phase q: (O, I, 2 phases p, 2 rows, 2 columns)
        cols = torch.stack([rows[..., list(taps)].sum(-1) for taps in phase],
                           -1)
        for p in range(2):
            kernels[:, p, q, :, p:p + 2, q:q + 2] = cols[:, :, p]
    return kernels.view(4 * out_channels, in_channels, 3, 3)


def nearest_upsample_conv3x3(x: Tensor, weight: Tensor) -> Tensor:
    """``conv2d(interpolate(x, scale_factor=2, mode='nearest'), weight,
    padding=1)`` without the upsampled tensor (no bias, stride 1).

    Args:
        x (Tensor): The low-resolution input.
        weight (Tensor): The 3 x 3 convolution weight.

    Returns:
        Tensor: The convolution on the x2 grid.

    Note:
        - x: (N, I, H, W)
        - weight: (O, I, 3, 3)
        - returns: (N, O, 2H, 2W)
    """
    return F.pixel_shuffle(
        F.conv2d(x, upsample_conv3x3_phase_kernels(weight), padding=1), 2)
