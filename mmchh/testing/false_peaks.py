# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Confident false peaks put into probability maps on purpose, and the
head's predictions of given maps.

The configuration flag exists for the failure ERE cannot see: a map that
is sharp in the wrong place. A trained model makes it rarely, so the
plausibility test and ``benchmarks/plausibility.py`` make it: a landmark's
own map, translated tens of mm away, takes most of the mass
(:func:`inject_false_peak`); the mode moves there, and with the right peak
left below ERE's cut-off (5 % of the maximum) the ERE stays the landmark's
own. :func:`predict_from_log_probs` then runs the head's whole ``predict``
on such maps, exactly as on a network's.

Everything is in log space: a sharp map underflows to exact zeros far from
its peak, and a zero probability would be an infinite logit (an invalid
map to the head).

Note:
    - log_probs: (H, W) one map, or (B, K, H, W) a batch, natural log of
      probabilities summing to 1 over (H, W)
    - shift: ``(dx, dy)`` whole heatmap pixels
"""
import math
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from mmchh.codecs.utils import log_softmax_2d

__all__ = [
    'shift_log_map', 'inject_false_peak', 'draw_false_peak_shift',
    'gaussian_log_maps', 'predict_from_log_probs'
]


def shift_log_map(log_prob: Tensor, shift: Sequence[int]) -> Tensor:
    """``log_prob`` (H, W) translated by ``shift`` = (dx, dy) pixels; the
    pixels it uncovers take the map's minimum (its far tail)."""
    dx, dy = (int(s) for s in shift)
    height, width = log_prob.shape
    out = torch.full_like(log_prob, float(log_prob.min()))
    src_y = slice(max(0, -dy), min(height, height - dy))
    src_x = slice(max(0, -dx), min(width, width - dx))
    dst_y = slice(max(0, dy), min(height, height + dy))
    dst_x = slice(max(0, dx), min(width, width + dx))
    out[dst_y, dst_x] = log_prob[src_y, src_x]
    return out


def inject_false_peak(log_prob: Tensor, shift: Sequence[int],
                      mass: float) -> Tensor:
    """A map with a confident false peak: ``(1 - mass) p + mass p(. -
    shift)``, renormalised.

    Args:
        log_prob (Tensor): (H, W) a log probability map.
        shift (Sequence[int]): ``(dx, dy)`` where the false peak sits
            relative to the map (a translated copy: as sharp as the
            landmark's own peak).
        mass (float): The false peak's share of the mass, in (0, 1).

    Returns:
        Tensor: (H, W) the new log probability map.
    """
    if not 0 < mass < 1:
        raise ValueError(f'mass must be in (0, 1); got {mass}')
    mixed = torch.logaddexp(
        math.log1p(-mass) + log_prob,
        math.log(mass) + shift_log_map(log_prob, shift))
    return log_softmax_2d(mixed[None])[0]


def draw_false_peak_shift(rng: np.random.Generator, mode: Sequence[float],
                          grid_size: Sequence[int],
                          pixel_mm: Sequence[float],
                          low_mm: float, high_mm: float,
                          margin: int = 2,
                          tries: int = 1000) -> Optional[Tuple[int, int]]:
    """A shift that puts a false peak ``low_mm`` to ``high_mm`` away from
    ``mode``, inside the grid.

    Args:
        rng (np.random.Generator): The draws.
        mode (Sequence[float]): ``(x, y)`` the landmark's mode, heatmap
            pixels.
        grid_size (Sequence[int]): ``(W, H)``.
        pixel_mm (Sequence[float]): mm per heatmap pixel ``(x, y)``.
        low_mm, high_mm (float): The distance's range.
        margin (int): Pixels the moved mode keeps from the border.
        tries (int): Draws before giving up.

    Returns:
        tuple[int, int] | None: ``(dx, dy)``; None when no draw fits.
    """
    mode = np.asarray(mode, np.float64)
    size = np.asarray(grid_size, np.float64)
    pixel = np.asarray(pixel_mm, np.float64)
    for _ in range(tries):
        angle = rng.uniform(0, 2 * np.pi)
        dist = rng.uniform(low_mm, high_mm)
        shift = np.round(dist * np.array([np.cos(angle), np.sin(angle)]) /
                         pixel).astype(int)
        moved = mode + shift
        if low_mm <= float(np.hypot(*(shift * pixel))) <= high_mm and (
                moved >= margin).all() and (moved <= size - 1 - margin).all():
            return int(shift[0]), int(shift[1])
    return None


def gaussian_log_maps(centers: np.ndarray, height: int, width: int,
                      sigma: float) -> Tensor:
    """Isotropic Gaussian maps, one per centre, as log probabilities.

    Args:
        centers (np.ndarray): (..., 2) ``(x, y)`` heatmap pixels.
        height, width (int): The grid.
        sigma (float): The maps' width, heatmap pixels.

    Returns:
        Tensor: (..., H, W) float32, each summing to 1 over (H, W).
    """
    centers = torch.as_tensor(np.asarray(centers, np.float64))
    ys = torch.arange(height, dtype=torch.float64)
    xs = torch.arange(width, dtype=torch.float64)
    d2 = (xs - centers[..., 0, None, None])**2 + \
        (ys[:, None] - centers[..., 1, None, None])**2
    return log_softmax_2d(-0.5 * d2 / sigma**2).float()


def predict_from_log_probs(head, log_probs: Tensor, batch_data_samples,
                           test_cfg: Optional[dict] = None):
    """The head's ``predict`` on given maps instead of its network's.

    The head's ``forward`` is replaced for the call by one returning
    ``log_probs * T`` (its temperatures), so that the scaled logits are
    ``log_probs`` and the maps it decodes, scores and flags are exactly
    ``softmax(log_probs)``.

    Args:
        head: A ``SoftmaxHeatmapHead``.
        log_probs (Tensor): (B, K, H, W) on the head's grid.
        batch_data_samples (list[PoseDataSample]): The batch (their frames;
            ground truth where scored).
        test_cfg (dict, optional): The head's ``test_cfg``; flip test is
            switched off (the maps are already the answer).

    Returns:
        list[InstanceData]: ``predict``'s per-sample fields.
    """
    temperature = head.temperature.to(log_probs)[:, None, None]
    logits = log_probs * temperature
    head.forward = lambda feats: logits.clone()
    try:
        return head.predict((), batch_data_samples,
                            dict(test_cfg or {}, flip_test=False))
    finally:
        del head.forward  # the class's own again
