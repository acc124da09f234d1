from .calibration import CalibrationError, calibrate_model
from .hooks import *  # noqa: F401,F403
from .logit_summary import LogitSummary, nll_from_summary, summarize_logits
from .measurement_interval_fitting import (MeasurementIntervalFit,
                                           fit_measurement_intervals)
from .schedulers import FractionMultiStepLR, fraction_milestones
from .temperature_fitting import fit_shared_temperature, fit_temperatures

__all__ = [
    'CalibrationError', 'FractionMultiStepLR', 'LogitSummary',
    'MeasurementIntervalFit', 'calibrate_model', 'fit_measurement_intervals',
    'fit_shared_temperature', 'fit_temperatures', 'fraction_milestones',
    'nll_from_summary', 'summarize_logits'
]
