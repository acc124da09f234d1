# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""A plausibility-constrained decode: the most probable heatmap position
inside the region the other landmarks allow.

A landmark flagged implausible has a map whose mode lies far from where the
other landmarks place it (:mod:`~.configuration_model`). Its map may still
hold mass near that place (a weaker, right peak beside a confident wrong
one). The constrained decode multiplies the map by the configuration's
Gaussian for that landmark (:func:`~.configuration_model.expected_positions`:
centre and covariance in image pixels, or mm with a spacing) and takes the
mode of the product::

    argmax_uv  log p(uv) + log N(uv; centre_uv, cov_uv)

The Gaussian is given in the points' units and lives on the heatmap grid
only after the sample's frame maps it there. Every step of
:class:`~.frame.HeatmapFrame` (heatmap -> input -> image -> mm) is a
per-axis affine ``x = slope * uv + offset``, so the Gaussian maps exactly:
``centre_uv = (centre - offset) / slope`` and ``cov_uv[i, j] = cov[i, j] /
(slope[i] * slope[j])`` (:func:`prior_on_heatmap`).

The result is a second answer beside the unconstrained mode, never a
replacement: the map's own mode stays the prediction.

Note:
    - probs: (N, H, W) probability maps (one per landmark decoded)
    - centre: (N, 2) ``(x, y)``; cov: (N, 2, 2); on the heatmap grid after
      :func:`prior_on_heatmap`
    - log prior: (N, H, W) float64
    - decoded positions: (N, 2) heatmap pixels (integers are pixel
      centres), NaN where nothing could be decoded
"""
from typing import Tuple

import numpy as np
import torch
from torch import Tensor

from .frame import HeatmapFrame
from .heatmap_grid import refine_subpixel

__all__ = [
    'heatmap_affine', 'prior_on_heatmap', 'gaussian_log_prior',
    'constrained_mode'
]


def heatmap_affine(frame: HeatmapFrame,
                   in_mm: bool) -> Tuple[np.ndarray, np.ndarray]:
    """The per-axis affine from heatmap pixels to image pixels (or mm).

    Args:
        frame (HeatmapFrame): The sample's frame, with its box (and
            ``spacing`` for mm).
        in_mm (bool): mm (``image_to_mm``) rather than image pixels.

    Returns:
        tuple: ``slope`` (2,) and ``offset`` (2,) float64 with
        ``point = slope * uv + offset``.
    """
    slope = frame.heatmap_pixel_mm() if in_mm else \
        frame.heatmap_pixel_image()
    # the frame's own formulas at the origin: the offset as every other
    # conversion computes it
    offset = frame.heatmap_to_image(np.zeros(2))
    if in_mm:
        offset = frame.image_to_mm(offset)
    return np.asarray(slope, np.float64), np.asarray(offset, np.float64)


def prior_on_heatmap(center: np.ndarray, cov: np.ndarray,
                     frame: HeatmapFrame,
                     in_mm: bool) -> Tuple[np.ndarray, np.ndarray]:
    """A Gaussian in image pixels (or mm) as the same Gaussian in heatmap
    pixels.

    Args:
        center (np.ndarray): (..., 2) in image pixels (mm with ``in_mm``).
        cov (np.ndarray): (..., 2, 2) in the same unit, squared.
        frame (HeatmapFrame): The sample's frame.
        in_mm (bool): The unit of ``center`` and ``cov``.

    Returns:
        tuple: ``center`` (..., 2) and ``cov`` (..., 2, 2) float64 in
        heatmap pixels.
    """
    slope, offset = heatmap_affine(frame, in_mm)
    center = (np.asarray(center, np.float64) - offset) / slope
    cov = np.asarray(cov, np.float64) / (slope[:, None] * slope[None, :])
    return center, cov


def _float64(value, device) -> Tensor:
    """``value`` as a float64 tensor on ``device`` (arrays copied: a
    read-only view, e.g. from ``np.broadcast_to``, is fine)."""
    if isinstance(value, Tensor):
        return value.to(device=device, dtype=torch.float64)
    return torch.tensor(np.array(value, np.float64), device=device)


def gaussian_log_prior(center, cov, height: int, width: int,
                       device=None) -> Tensor:
    """The log density of a 2-D Gaussian at every pixel centre of a grid.

    Args:
        center (array | Tensor): (N, 2) ``(x, y)`` heatmap pixels.
        cov (array | Tensor): (N, 2, 2) heatmap pixels squared, symmetric
            positive definite.
        height, width (int): The grid.
        device: Where the result lives (default: the CPU).

    Returns:
        Tensor: (N, H, W) float64; ``-inf`` nowhere for a finite Gaussian,
        NaN everywhere for one with a NaN parameter.
    """
    center, cov = (_float64(v, device) for v in (center, cov))
    det = cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] * cov[:, 1, 0]
    # the 2x2 inverse written out: (N,) entries broadcast over the grid
    inv_xx, inv_yy = cov[:, 1, 1] / det, cov[:, 0, 0] / det
    inv_xy = -0.5 * (cov[:, 0, 1] + cov[:, 1, 0]) / det
    ys = torch.arange(height, dtype=torch.float64, device=device)
    xs = torch.arange(width, dtype=torch.float64, device=device)
    dx = xs[None, None, :] - center[:, 0, None, None]
    dy = ys[None, :, None] - center[:, 1, None, None]
    quad = (inv_xx[:, None, None] * dx**2 + inv_yy[:, None, None] * dy**2 +
            2 * inv_xy[:, None, None] * dx * dy)
    return -0.5 * quad - (np.log(2 * np.pi) + 0.5 * torch.log(det))[
        :, None, None]


def constrained_mode(probs: Tensor, log_prior: Tensor,
                     subpixel_radius: int = 0) -> Tensor:
    """The mode of ``probs`` times the prior, on the heatmap grid.

    Args:
        probs (Tensor): (N, H, W) probability maps (non-negative).
        log_prior (Tensor): (N, H, W) the prior's log density
            (:func:`gaussian_log_prior`).
        subpixel_radius (int): 0: the pixel; r >= 1: refined as the
            decoder refines its mode (:func:`refine_subpixel` over the
            product, normalised at its maximum), so that the two answers
            are comparable.

    Returns:
        Tensor: (N, 2) float64 ``(x, y)`` heatmap pixels; NaN where the
        product has no finite maximum (a map with a NaN, a NaN prior, or
        no mass anywhere).
    """
    num, height, width = probs.shape
    with torch.no_grad():
        # float64: the prior far from its centre reaches -1e5 and more,
        # where float32 would lose the map's own log-probabilities
        score = torch.log(probs.to(torch.float64)) + log_prior.to(
            probs.device, torch.float64)
        flat = score.reshape(num, -1)
        best, index = flat.max(dim=1)
        coords = torch.stack((index % width, index // width),
                             dim=-1).to(torch.float64)
        if subpixel_radius:
            weights = torch.exp(score - best[:, None, None])
            coords = refine_subpixel(
                torch.nan_to_num(weights, nan=0.0), coords,
                subpixel_radius).to(torch.float64)
        ok = torch.isfinite(best)
        return torch.where(ok[:, None], coords,
                           torch.full_like(coords, float('nan')))
