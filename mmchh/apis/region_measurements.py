# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Measurement draws from within each landmark's conformal region.

The calibrated maps keep a thin tail over the whole image; drawing from
the full maps turns each landmark into "anywhere" and the measurement
intervals into most of the possible range. Here every landmark is drawn
from its calibrated map restricted to the head's conformal region at one
level (the set that holds the true landmark with probability >= that
level) and renormalised, then moved by the landmark's fitted jitter (the
error its map does not show); each measurement's draws then give a center
(the median) and a spread (MAD x 1.4826), the two numbers a fitted scale
turns into an interval
(:mod:`mmchh.calibration.conformal.measurement_intervals`).
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
from torch import nn

from mmchh.calibration.conformal.split_draws import ImageDraws, image_draws
from mmchh.evaluation.functional.region_draws import (
    region_draw_seed, region_measurement_center_spread)
from mmchh.utils.errors import InputError

__all__ = ['RegionDraws', 'region_center_spread', 'region_image_draws']


@dataclass(frozen=True, eq=False)
class RegionDraws:
    """Which regions the landmarks are drawn within, and how many draws.

    Attributes:
        level_index (int): Index of the level in the head's
            ``conformal_level``.
        level (float): That level.
        num_samples (int): Draws per landmark.
        seed (int): Image ``j`` draws from ``default_rng([seed, j, 1])``.
        jitter (np.ndarray | None): (K, 2, 2) covariance (heatmap
            pixels^2) each landmark's draws are widened by (a fit's
            ``jitter_array``); None: the maps' own draws.
    """
    level_index: int
    level: float
    num_samples: int = 1000
    seed: int = 0
    jitter: Optional[np.ndarray] = None

    @classmethod
    def of_model(cls,
                 model: nn.Module,
                 region_level: Optional[float] = None,
                 num_samples: int = 1000,
                 seed: int = 0,
                 jitter: Optional[np.ndarray] = None) -> 'RegionDraws':
        """The draws of ``model``'s regions at ``region_level``.

        Args:
            model (nn.Module): A model whose calibration fitted conformal
                regions (``model.head.has_conformal_regions``).
            region_level (float, optional): One of the head's levels;
                default its highest.
            num_samples, seed, jitter: See the attributes.

        Raises:
            InputError: If the model has no regions, or not at that level.
        """
        head = model.head
        if not bool(getattr(head, 'has_conformal_regions', False)):
            raise InputError(
                'the model has no fitted conformal regions (its calibration '
                'fitted none: too few calibration images, or an old '
                'checkpoint); measurement intervals are drawn within them. '
                'Recalibrate with tools/calibrate.py')
        levels = [round(float(v), 6)
                  for v in head.conformal_level.tolist()]
        if region_level is None:
            index = int(np.argmax(levels))
        else:
            near = [i for i, v in enumerate(levels)
                    if abs(v - float(region_level)) < 1e-9]
            if not near:
                raise InputError(
                    f'region level {region_level} is not one the model\'s '
                    f'conformal regions were fitted at ({levels})')
            index = near[0]
        return cls(index, levels[index], int(num_samples), int(seed), jitter)


def region_center_spread(result, head: nn.Module, draws: RegionDraws,
                         index: int, within_pixel: bool = False
                         ) -> Dict[str, Tuple[float, float]]:
    """Center and spread of the eight measurements of one image, drawn
    within the landmarks' conformal regions.

    Args:
        result (LandmarkResult): Predicted with ``return_heatmaps=True``
            (its maps, frame, spacing and landmarks' ``valid``).
        head (nn.Module): The model's head (its regions' thresholds).
        draws (RegionDraws): Level, draws, seed, jitter.
        index (int): The image's index (seeds its draws).
        within_pixel (bool): Draw points inside the drawn pixels (see
            :func:`~mmchh.evaluation.functional.sample_heatmap_positions`).

    Returns:
        dict[str, tuple[float, float]]: ``name -> (center, spread)``
        (:func:`~mmchh.evaluation.functional.sample_center_spread`); NaN
        for a measurement that needs an invalid landmark or one whose
        region holds no mass.

    Note:
        Shapes: ``result.heatmaps`` (19, H, W); the head's
        ``conformal_threshold`` (L, 19); masks (19, H, W).
    """
    maps, usable = _usable_maps(result)
    return region_measurement_center_spread(
        maps, usable, head.conformal_threshold[draws.level_index],
        head.conformal_score, draws.num_samples,
        region_draw_seed(draws.seed, index), result.heatmap_to_image,
        result.spacing, within_pixel=within_pixel, jitter=draws.jitter)


def region_image_draws(result, head: nn.Module, draws: RegionDraws,
                       index: int, points: np.ndarray) -> ImageDraws:
    """One calibration image's landmark draws and truth, for fitting the
    jitter and the scale
    (:func:`~mmchh.calibration.conformal.split_draws.fit_intervals_from_draws`).

    Args:
        result (LandmarkResult): As for :func:`region_center_spread`.
        head, draws, index: As for :func:`region_center_spread` (the
            draws' jitter is not used: it is being fitted).
        points (np.ndarray): (19, 2) true landmarks, image pixels; NaN
            where not annotated.
    """
    maps, usable = _usable_maps(result)
    return image_draws(maps, usable, head.conformal_threshold[
        draws.level_index], head.conformal_score, draws.num_samples,
                       region_draw_seed(draws.seed, index), result.frame,
                       None if result.spacing is None else np.asarray(
                           result.spacing, np.float64), points)


def _usable_maps(result) -> Tuple[np.ndarray, np.ndarray]:
    """A result's (19, H, W) maps and (19,) landmarks with a valid, finite
    map."""
    if result.heatmaps is None:
        raise RuntimeError('region draws need the heatmaps: predict with '
                           'return_heatmaps=True')
    maps = np.asarray(result.heatmaps)
    usable = np.isfinite(maps).all(axis=(1, 2)) & np.array(
        [bool(lm['valid']) for lm in result.landmarks])
    return maps, usable
