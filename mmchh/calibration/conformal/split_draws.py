# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The measurement interval fit of a predicted calibration split.

What the prediction side hands over, per calibration image
(:class:`ImageDraws`: from the calibration pass of
:func:`~mmchh.calibration.calibrate_model` and from
:func:`~mmchh.apis.measure.fit_split_intervals` for ``tools/measure.py
--calib``): the landmarks' draws within their conformal regions, the true
landmarks and measurements. What is fitted here, in order:

1. each landmark's jitter (:mod:`.landmark_jitter`), on all images, when
   enough of them hold the landmark;
2. each image's eight normalised residuals
   (:func:`~mmchh.evaluation.functional.interval_scores`), its draws
   widened by the jitter fitted *without* it
   (:func:`~.landmark_jitter.cross_fitted_jitter`);
3. one scale, pooled over the scores
   (:func:`~.measurement_intervals.fit_measurement_intervals`).
"""
import copy
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmchh.codecs.utils import add_position_jitter
from mmchh.datasets.ceph_meta import CEPH_LABEL_NAMES
from mmchh.evaluation.functional.cephalometric import ceph_measurements
from mmchh.evaluation.functional.measurement_uncertainty import \
    interval_scores
from mmchh.evaluation.functional.region_draws import (positions_center_spread,
                                                      region_draw_positions)
from .landmark_jitter import (MIN_JITTER_IMAGES, cross_fitted_jitter,
                              draw_residuals, fit_landmark_jitter)
from .measurement_intervals import (MeasurementIntervalFit,
                                    fit_measurement_intervals)

__all__ = [
    'ImageDraws', 'draw_center_spread', 'fit_intervals_from_draws',
    'fit_split_jitter', 'image_draws'
]


@dataclass
class ImageDraws:
    """One calibration image's landmark draws and truth.

    Attributes:
        positions (np.ndarray): (N, K, 2) float32 draws within the
            conformal regions, heatmap pixels; NaN for a landmark without
            a region.
        rng (np.random.Generator): The image's generator, after the
            positions were drawn (the jitter's normals come next, as they
            do at prediction).
        heatmap_to_image (callable): Heatmap -> image pixels.
        spacing (np.ndarray | None): (2,) mm per image pixel.
        truth_heatmap (np.ndarray): (K, 2) true landmarks in heatmap
            pixels; NaN where not annotated.
        truth (dict): Measurement name -> true value (NaN: none).
    """
    positions: np.ndarray
    rng: np.random.Generator
    heatmap_to_image: Callable[[np.ndarray], np.ndarray]
    spacing: Optional[np.ndarray]
    truth_heatmap: np.ndarray
    truth: Dict[str, float]


def image_draws(maps: np.ndarray, usable: np.ndarray, threshold, score: str,
                num_samples: int, rng: np.random.Generator, frame,
                spacing: Optional[np.ndarray],
                points: np.ndarray) -> ImageDraws:
    """One calibration image's :class:`ImageDraws`.

    Args:
        maps, usable, threshold, score, num_samples, rng: As for
            :func:`~mmchh.evaluation.functional.region_draws.region_draw_positions`
            (``rng``: the image's ``region_draw_seed``).
        frame (HeatmapFrame): The image's frames.
        spacing (np.ndarray | None): (2,) mm per image pixel.
        points (np.ndarray): (19, 2) true landmarks, image pixels; NaN
            where not annotated.

    Note:
        Shapes: maps (19, H, W) -> positions (N, 19, 2) float32.
    """
    positions = region_draw_positions(maps, usable, threshold, score,
                                      num_samples, rng)
    points = np.asarray(points, np.float64)
    truth = ceph_measurements(points, spacing)
    return ImageDraws(
        positions=positions.astype(np.float32), rng=rng,
        heatmap_to_image=frame.heatmap_to_image, spacing=spacing,
        truth_heatmap=np.asarray(frame.image_to_heatmap(points), np.float64),
        truth={name: float(truth[name]) for name in CEPH_LABEL_NAMES})


def fit_split_jitter(images: Sequence[ImageDraws],
                     min_jitter_images: int = MIN_JITTER_IMAGES
                     ) -> Tuple[Optional[np.ndarray],
                                List[Optional[np.ndarray]]]:
    """The landmarks' jitter fitted on a calibration split, and each image's
    fitted without it.

    Returns:
        tuple: ``(jitter, per_image)``: (K, 2, 2) on every image and a list
        of n (K, 2, 2) (:func:`~.landmark_jitter.cross_fitted_jitter`);
        ``(None, [None] * n)`` with ``n <= min_jitter_images``.
    """
    n = len(images)
    if n <= min_jitter_images:
        return None, [None] * n
    stats = [draw_residuals(im.positions, im.truth_heatmap) for im in images]
    residuals = np.stack([s[0] for s in stats])
    covariances = np.stack([s[1] for s in stats])
    return (fit_landmark_jitter(residuals, covariances, min_jitter_images),
            cross_fitted_jitter(residuals, covariances,
                                min_images=min_jitter_images))


def draw_center_spread(image: ImageDraws, jitter: Optional[np.ndarray]
                       ) -> Dict[str, Tuple[float, float]]:
    """An image's eight measurement centers and spreads from its draws,
    widened by ``jitter`` (None: the maps' own draws).

    The jitter's normals come from a copy of the image's generator, so the
    same draws and jitter always give the same numbers.
    """
    pos = image.positions if jitter is None else add_position_jitter(
        image.positions, jitter, copy.deepcopy(image.rng))
    return positions_center_spread(pos, image.heatmap_to_image,
                                   image.spacing)


def fit_intervals_from_draws(images: Sequence[ImageDraws],
                             level: float = 0.95,
                             region_level: float = 0.9,
                             min_jitter_images: int = MIN_JITTER_IMAGES,
                             **info) -> MeasurementIntervalFit:
    """Fits the jitter and the interval scale on a calibration split.

    Args:
        images (Sequence[ImageDraws]): The calibration images.
        level (float): Coverage level ``1 - alpha``.
        region_level (float): The conformal region level of the draws
            (recorded).
        min_jitter_images (int): Fewest images a landmark's jitter is
            fitted on; each image's score uses a fit without it, so the
            jitter is fitted only with more than this many images (else
            none: ``jitter`` None, the maps' own draws).
        **info: ``calib_file``, ``weights_fingerprint``, ``num_samples``,
            ``seed`` (recorded).

    Returns:
        MeasurementIntervalFit: The scale of the scores, with ``jitter``
        (fitted on every image) and ``jitter_images``.

    Raises:
        InputError: When no score is usable (nothing to fit on).

    Note:
        Shapes: each image's positions (N, K, 2) -> residuals (n, K, 2),
        covariances (n, K, 2, 2) -> jitter (K, 2, 2); scores per name (n,).
    """
    n = len(images)
    jitter, per_image = fit_split_jitter(images, min_jitter_images)
    scores = {name: np.full(n, np.nan) for name in CEPH_LABEL_NAMES}
    for i, im in enumerate(images):
        stats = draw_center_spread(im, per_image[i])
        for name in CEPH_LABEL_NAMES:
            center, spread = stats[name]
            scores[name][i] = interval_scores(center, spread,
                                              im.truth[name])
    return fit_measurement_intervals(
        scores, level=level, region_level=region_level,
        jitter=None if jitter is None else jitter.tolist(),
        jitter_images=n if jitter is not None else 0, **info)
