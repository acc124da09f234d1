from .calibration import CalibrationError, calibrate_model
from .hooks import *  # noqa: F401,F403
from .logit_summary import LogitSummary, nll_from_summary, summarize_logits
from .temperature_fitting import fit_shared_temperature, fit_temperatures

__all__ = [
    'CalibrationError', 'LogitSummary', 'calibrate_model',
    'fit_shared_temperature', 'fit_temperatures', 'nll_from_summary',
    'summarize_logits'
]
