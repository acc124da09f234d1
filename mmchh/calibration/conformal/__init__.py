# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Conformal fitting: the regions' thresholds and disc radii (``fitting``),
the measurement intervals' fit (``measurement_intervals``), each
landmark's jitter (``landmark_jitter``: the error its map does not show),
both fitted on a calibration split's landmark draws (``split_draws``) at
calibration (``interval_calibration``) or for ``tools/measure.py``."""
from .fitting import ConformalFit, ConformalFitError, fit_conformal
from .measurement_intervals import (MeasurementIntervalFit,
                                    fit_measurement_intervals)
from .split_draws import fit_intervals_from_draws

__all__ = [
    'ConformalFit', 'ConformalFitError', 'MeasurementIntervalFit',
    'fit_conformal', 'fit_intervals_from_draws', 'fit_measurement_intervals'
]
