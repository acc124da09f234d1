# Calibration lives in mmchh.calibration; its public names stay importable
# from here, as before.
from mmchh.calibration import (CalibrationError, LogitSummary,
                               MeasurementIntervalFit, calibrate_model,
                               fit_measurement_intervals,
                               fit_shared_temperature, fit_temperatures,
                               nll_from_summary, summarize_logits)
from .hooks import *  # noqa: F401,F403
from .schedulers import FractionMultiStepLR, fraction_milestones

__all__ = [
    'CalibrationError', 'FractionMultiStepLR', 'LogitSummary',
    'MeasurementIntervalFit', 'calibrate_model', 'fit_measurement_intervals',
    'fit_shared_temperature', 'fit_temperatures', 'fraction_milestones',
    'nll_from_summary', 'summarize_logits'
]
