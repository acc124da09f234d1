# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Measurement center and spread from landmarks drawn within their
conformal regions: the one computation behind both the measurement
interval fit at calibration (:mod:`mmchh.calibration.conformal.interval_calibration`)
and the intervals of a prediction (:mod:`mmchh.apis.region_measurements`).

Each landmark is drawn from its calibrated map restricted to the head's
conformal region at one level (the set holding the true landmark with
probability >= that level), renormalised; with a fitted jitter each draw
is moved by the landmark's ``N(0, J_k)`` (the error its map does not show,
:mod:`mmchh.calibration.conformal.landmark_jitter`); each measurement's
draws give a center (median) and a spread (MAD x 1.4826).
"""
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

from mmchh.codecs.utils import add_position_jitter, conformal_region_masks
from .cephalometric import ceph_measurements
from .measurement_uncertainty import (sample_center_spread,
                                      sample_region_positions)

__all__ = [
    'positions_center_spread', 'region_draw_positions', 'region_draw_seed',
    'region_measurement_center_spread'
]


def region_draw_seed(seed: int, index: int) -> np.random.Generator:
    """The generator image ``index`` draws from: ``default_rng([seed,
    index, 1])`` (the same at calibration and at prediction)."""
    return np.random.default_rng([int(seed), int(index), 1])


def region_draw_positions(maps: np.ndarray,
                          usable: np.ndarray,
                          threshold: torch.Tensor,
                          score: str,
                          num_samples: int,
                          rng: np.random.Generator,
                          within_pixel: bool = False) -> np.ndarray:
    """Each landmark drawn from its calibrated map within its region.

    Args:
        maps (np.ndarray): (K, H, W) calibrated probability maps.
        usable (np.ndarray): (K,) bool, landmarks with a valid, finite map;
            the others get an empty region (NaN draws).
        threshold (Tensor): (K,) the regions' score thresholds at the
            level drawn within.
        score (str): The head's conformal score name.
        num_samples (int): Draws per landmark.
        rng (np.random.Generator): See :func:`region_draw_seed`.
        within_pixel (bool): Draw points inside the drawn pixels (see
            :func:`~.measurement_uncertainty.sample_heatmap_positions`).

    Returns:
        np.ndarray: (N, K, 2) float64 heatmap-pixel positions; NaN for a
        landmark that is not usable or whose region holds no mass.
    """
    maps = np.asarray(maps)
    usable = np.asarray(usable, bool)
    # the maps' own dtype: the masks are those of the regions' outlines
    maps = np.where(usable[:, None, None], maps, 0).astype(maps.dtype)
    masks = conformal_region_masks(
        torch.as_tensor(maps), threshold.detach().cpu(), score).numpy()
    masks &= usable[:, None, None]  # an unusable landmark: empty region
    return sample_region_positions(maps, num_samples, rng, masks,
                                   within_pixel=within_pixel)


def positions_center_spread(
        positions: np.ndarray,
        heatmap_to_image: Optional[Callable[[np.ndarray], np.ndarray]],
        spacing=None) -> Dict[str, Tuple[float, float]]:
    """The eight measurements' center and spread from landmark draws.

    Args:
        positions (np.ndarray): (N, 19, 2) heatmap-pixel draws.
        heatmap_to_image (callable, optional): Heatmap -> image pixels.
        spacing: mm per pixel (x, y), or None.

    Returns:
        dict[str, tuple[float, float]]: ``name -> (center, spread)``
        (:func:`~.measurement_uncertainty.sample_center_spread`).
    """
    pos = np.asarray(positions, np.float64)
    if heatmap_to_image is not None:
        pos = np.asarray(heatmap_to_image(pos), dtype=np.float64)
    return sample_center_spread(ceph_measurements(pos, spacing))


def region_measurement_center_spread(
        maps: np.ndarray,
        usable: np.ndarray,
        threshold: torch.Tensor,
        score: str,
        num_samples: int,
        rng: np.random.Generator,
        heatmap_to_image: Optional[Callable[[np.ndarray], np.ndarray]],
        spacing=None,
        within_pixel: bool = False,
        jitter: Optional[np.ndarray] = None
) -> Dict[str, Tuple[float, float]]:
    """Center and spread of the eight measurements of one image.

    Args:
        maps, usable, threshold, score, num_samples, rng, within_pixel: As
            for :func:`region_draw_positions`.
        heatmap_to_image (callable, optional): Heatmap -> image pixels.
        spacing: mm per pixel (x, y), or None.
        jitter (np.ndarray, optional): (19, 2, 2) heatmap-pixel^2
            covariances added to the draws
            (:func:`~mmchh.codecs.utils.add_position_jitter`, from
            ``rng`` after the positions); None: none.

    Returns:
        dict[str, tuple[float, float]]: ``name -> (center, spread)``; NaN
        for a measurement needing an unusable landmark or an empty region.

    Note:
        Shapes: maps (19, H, W) -> draws (N, 19, 2) -> per measurement (N,).
    """
    pos = region_draw_positions(maps, usable, threshold, score, num_samples,
                                rng, within_pixel=within_pixel)
    if jitter is not None:
        pos = add_position_jitter(pos, jitter, rng)
    return positions_center_spread(pos, heatmap_to_image, spacing)
