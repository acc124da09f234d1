from .calibration import CalibrationError, calibrate_model
from .hooks import *  # noqa: F401,F403
from .logit_summary import LogitSummary, nll_from_summary, summarize_logits
from .measurement_interval_fitting import (MeasurementIntervalFit,
                                           fit_measurement_intervals)
from .temperature_fitting import fit_shared_temperature, fit_temperatures

__all__ = [
    'CalibrationError', 'LogitSummary', 'MeasurementIntervalFit',
    'calibrate_model', 'fit_measurement_intervals', 'fit_shared_temperature',
    'fit_temperatures', 'nll_from_summary', 'summarize_logits'
]
