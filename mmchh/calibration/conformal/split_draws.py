# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The measurement interval fit of a predicted calibration split.

What the prediction side hands over (``tools/measure.py --calib``, through
:func:`~mmchh.apis.measure.fit_split_intervals`): per measurement and image
the center and spread of the draws within the conformal regions and the
true value. What is fitted here: their normalised residuals
(:func:`~mmchh.evaluation.functional.interval_scores`), pooled into one
scale (:func:`~.measurement_intervals.fit_measurement_intervals`).
"""
from typing import Mapping

import numpy as np

from mmchh.evaluation.functional.measurement_uncertainty import \
    interval_scores
from .measurement_intervals import (MeasurementIntervalFit,
                                    fit_measurement_intervals)

__all__ = ['fit_intervals_from_draws']


def fit_intervals_from_draws(draws: Mapping[str, np.ndarray],
                             level: float = 0.95,
                             region_level: float = 0.9,
                             **info) -> MeasurementIntervalFit:
    """Fits the interval scale on a calibration split's draws.

    Args:
        draws (Mapping[str, np.ndarray]): Measurement name -> (N, 3)
            ``(center, spread, true value)`` of each calibration image; a
            NaN anywhere (no truth, no interval) leaves that image's score
            out.
        level (float): Coverage level ``1 - alpha``.
        region_level (float): The conformal region level of the draws
            (recorded).
        **info: ``calib_file``, ``weights_fingerprint``, ``num_samples``,
            ``seed`` (recorded).

    Returns:
        MeasurementIntervalFit: As
        :func:`~.measurement_intervals.fit_measurement_intervals` of the
        scores ``|true - center| / spread``.

    Raises:
        InputError: When no score is usable (nothing to fit on).

    Note:
        Shapes: each ``draws[name]`` (N, 3) float64, N calibration images.
    """
    scores = {
        name: interval_scores(*np.asarray(rows, np.float64).reshape(-1, 3).T)
        for name, rows in draws.items()
    }
    return fit_measurement_intervals(scores, level=level,
                                     region_level=region_level, **info)
