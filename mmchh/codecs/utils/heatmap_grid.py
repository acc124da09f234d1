# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Where heatmap pixels lie in the model input, and sub-pixel decoding.

The grid convention (one place, used by the codec, the head, the API and
the tools, mostly through :class:`~mmchh.codecs.utils.HeatmapFrame`):

    A heatmap of ``W x H`` pixels covers the model input of
    ``W * sx x H * sy`` pixels, ``(sx, sy) = input_size / heatmap_size``.
    Heatmap pixel ``u`` is the block of input pixels it covers: the input
    interval ``[u * sx - 0.5, (u + 1) * sx - 0.5)`` (input pixel centres are
    at integers, so input pixel ``x`` spans ``[x - 0.5, x + 0.5)``). Its
    centre is ``(u + 0.5) * sx - 0.5``.

Why this one: every point of the input image falls in exactly one heatmap
pixel (no landmark near the right or bottom border is lost at low
resolution, as happens when pixel ``u`` is centred at ``u * sx``), decoding a
pixel to its centre is unbiased, and a horizontally flipped input maps pixel
``u`` exactly onto pixel ``W - 1 - u`` — so flip test needs no
``shift_heatmap`` correction. At full resolution (``s = 1``) it is the plain
pixel grid.
"""
from typing import Sequence, Union

import numpy as np
import torch
from torch import Tensor

__all__ = [
    'grid_scale', 'heatmap_cell', 'heatmap_to_input', 'input_to_heatmap',
    'refine_subpixel'
]

Scale = Union[float, Sequence[float], np.ndarray, Tensor]


def grid_scale(input_size: Sequence[int],
               heatmap_size: Sequence[int]) -> np.ndarray:
    """Input pixels per heatmap pixel, ``input_size / heatmap_size``.

    Args:
        input_size (Sequence[int]): Model input size ``(w, h)``.
        heatmap_size (Sequence[int]): Heatmap size ``(W, H)``.

    Returns:
        np.ndarray: ``(sx, sy)``, shape (2,), float32.

    Note:
        Divided in float32, as MMPose's codecs compute their
        ``scale_factor``. The codec, :class:`HeatmapFrame` and the head all
        read this one value, so a ratio that float32 cannot hold exactly
        (e.g. 1935 / 484) is still the same number everywhere.
    """
    return (np.asarray(input_size, dtype=np.float32) /
            np.asarray(heatmap_size, dtype=np.float32))


def input_to_heatmap(xy, scale: Scale):
    """Input-pixel coordinates → continuous heatmap-pixel coordinates.

    Args:
        xy (np.ndarray | Tensor): Points in shape (..., 2), input pixels.
        scale: ``(sx, sy)`` input pixels per heatmap pixel, or one number.

    Returns:
        Same type as ``xy``: ``(xy + 0.5) / scale - 0.5``; integer values
        are heatmap pixel centres.
    """
    if isinstance(xy, Tensor):
        s = torch.as_tensor(scale, dtype=xy.dtype, device=xy.device)
    else:
        xy = np.asarray(xy, dtype=np.float64)
        s = np.asarray(scale, dtype=np.float64)
    return (xy + 0.5) / s - 0.5


def heatmap_to_input(uv, scale: Scale):
    """Heatmap-pixel coordinates → input-pixel coordinates.

    The inverse of :func:`input_to_heatmap`: ``(uv + 0.5) * scale - 0.5``.
    Integer ``uv`` (a pixel) maps to the centre of the input block it covers.

    Args:
        uv (np.ndarray | Tensor): Points in shape (..., 2), heatmap pixels.
        scale: ``(sx, sy)`` input pixels per heatmap pixel, or one number.
    """
    if isinstance(uv, Tensor):
        s = torch.as_tensor(scale, dtype=uv.dtype, device=uv.device)
    else:
        uv = np.asarray(uv, dtype=np.float64)
        s = np.asarray(scale, dtype=np.float64)
    return (uv + 0.5) * s - 0.5


def heatmap_cell(xy: np.ndarray, scale: Scale) -> np.ndarray:
    """The heatmap pixel holding each input point (the encoding rule).

    Args:
        xy (np.ndarray): Points in shape (..., 2), input pixels.
        scale: ``(sx, sy)`` input pixels per heatmap pixel.

    Returns:
        np.ndarray: ``floor((xy + 0.5) / scale)`` as float64 (..., 2); a
        point exactly on a border between two pixels goes to the higher one.
        Callers check the result against the map size.
    """
    xy = np.asarray(xy, dtype=np.float64)
    return np.floor((xy + 0.5) / np.asarray(scale, dtype=np.float64))


def refine_subpixel(probs: Tensor, coords: Tensor, radius: int = 1) -> Tensor:
    """Probability-weighted mean position in a window around each mode.

    A heatmap pixel is a bin of ``s x s`` input pixels; the mode alone
    quantises the position to the bin centre (mean error ``~0.38 s`` for a
    uniform position inside the bin). The probabilities of the neighbouring
    pixels say where in the bin the landmark most likely is: their weighted
    mean over a ``(2r+1) x (2r+1)`` window recovers part of that. Only the
    reported position changes — the probabilities (and so NLL, calibration
    and ERE, which is measured from the mode pixel) are left untouched.

    Args:
        probs (Tensor): Probability maps in shape (..., H, W).
        coords (Tensor): Integer mode positions ``(x, y)`` in heatmap pixels,
            shape (..., 2), e.g. from :func:`heatmap_mode`.
        radius (int): Window half-size r >= 1. Pixels outside the map are
            ignored.

    Returns:
        Tensor: Refined ``(x, y)`` in heatmap pixels, shape (..., 2),
        float32 (float64 for float64 maps). A map whose window holds no mass
        keeps its mode.
    """
    if int(radius) != radius or radius < 1:
        raise ValueError(f'radius must be an integer >= 1; got {radius}')
    radius = int(radius)
    lead, (h, w) = probs.shape[:-2], probs.shape[-2:]
    dtype = torch.promote_types(probs.dtype, torch.float32)
    flat = probs.reshape(-1, h * w)
    c = coords.reshape(-1, 2).round().long().to(probs.device)
    offsets = torch.arange(-radius, radius + 1, device=probs.device)
    dy, dx = torch.meshgrid(offsets, offsets, indexing='ij')
    xs = c[:, 0, None] + dx.reshape(1, -1)  # (N, P)
    ys = c[:, 1, None] + dy.reshape(1, -1)
    inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    index = ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)
    vals = flat.gather(1, index).to(dtype) * inside.to(dtype)
    mass = vals.sum(dim=1)
    mean = torch.stack(
        ((vals * xs.to(dtype)).sum(dim=1), (vals * ys.to(dtype)).sum(dim=1)),
        dim=-1) / mass.clamp_min(torch.finfo(dtype).tiny)[:, None]
    out = torch.where((mass > 0)[:, None], mean, c.to(dtype))
    return out.reshape(*lead, 2)
