# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Conformal fitting: the regions' thresholds and disc radii (``fitting``),
the measurement intervals' fit (``measurement_intervals``) and its scale
fitted at calibration (``interval_calibration``)."""
from .fitting import ConformalFit, ConformalFitError, fit_conformal
from .measurement_intervals import (MeasurementIntervalFit,
                                    fit_measurement_intervals)

__all__ = [
    'ConformalFit', 'ConformalFitError', 'MeasurementIntervalFit',
    'fit_conformal', 'fit_measurement_intervals'
]
