# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Measurement center and spread from landmarks drawn within their
conformal regions: the one computation behind both the measurement
interval fit at calibration (:mod:`mmchh.calibration.conformal.interval_calibration`)
and the intervals of a prediction (:mod:`mmchh.apis.region_measurements`).

Each landmark is drawn from its calibrated map restricted to the head's
conformal region at one level (the set holding the true landmark with
probability >= that level), renormalised; each measurement's draws give a
center (median) and a spread (MAD x 1.4826).
"""
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

from mmchh.codecs.utils import conformal_region_masks
from .measurement_uncertainty import (sample_ceph_measurements,
                                      sample_center_spread)

__all__ = ['region_draw_seed', 'region_measurement_center_spread']


def region_draw_seed(seed: int, index: int) -> np.random.Generator:
    """The generator image ``index`` draws from: ``default_rng([seed,
    index, 1])`` (the same at calibration and at prediction)."""
    return np.random.default_rng([int(seed), int(index), 1])


def region_measurement_center_spread(
        maps: np.ndarray,
        usable: np.ndarray,
        threshold: torch.Tensor,
        score: str,
        num_samples: int,
        rng: np.random.Generator,
        heatmap_to_image: Optional[Callable[[np.ndarray], np.ndarray]],
        spacing=None,
        within_pixel: bool = False) -> Dict[str, Tuple[float, float]]:
    """Center and spread of the eight measurements of one image.

    Args:
        maps (np.ndarray): (19, H, W) calibrated probability maps.
        usable (np.ndarray): (19,) bool, landmarks with a valid, finite map;
            the others get an empty region (their measurements NaN).
        threshold (Tensor): (19,) the regions' score thresholds at the
            level drawn within.
        score (str): The head's conformal score name.
        num_samples (int): Draws per landmark.
        rng (np.random.Generator): See :func:`region_draw_seed`.
        heatmap_to_image (callable, optional): Heatmap -> image pixels.
        spacing: mm per pixel (x, y), or None.
        within_pixel (bool): Draw points inside the drawn pixels (see
            :func:`~.measurement_uncertainty.sample_heatmap_positions`).

    Returns:
        dict[str, tuple[float, float]]: ``name -> (center, spread)``; NaN
        for a measurement needing an unusable landmark or an empty region.
    """
    maps = np.asarray(maps)
    usable = np.asarray(usable, bool)
    # the maps' own dtype: the masks are those of the regions' outlines
    maps = np.where(usable[:, None, None], maps, 0).astype(maps.dtype)
    masks = conformal_region_masks(
        torch.as_tensor(maps), threshold.detach().cpu(), score).numpy()
    masks &= usable[:, None, None]  # an unusable landmark: empty region
    samples = sample_ceph_measurements(
        maps, num_samples, seed=rng, heatmap_to_image=heatmap_to_image,
        spacing=spacing, masks=masks, within_pixel=within_pixel)
    return sample_center_spread(samples)
