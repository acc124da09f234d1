# Calibration lives in mmchh.calibration; its public names stay importable
# from here, as before.
from mmchh.calibration import (CalibrationError, LogitSummary,
                               MeasurementIntervalFit, calibrate_model,
                               fit_measurement_intervals,
                               fit_shared_temperature, fit_temperatures,
                               nll_from_summary, summarize_logits)
from .amp import amp_dtype, amp_summary, autocast, native_bf16_flags
from .hooks import *  # noqa: F401,F403
from .optim_wrappers import CpuAmpOptimWrapper
from .schedulers import FractionMultiStepLR, fraction_milestones

__all__ = [
    'CalibrationError', 'CpuAmpOptimWrapper', 'FractionMultiStepLR', 'LogitSummary',
    'MeasurementIntervalFit', 'calibrate_model', 'fit_measurement_intervals',
    'fit_shared_temperature', 'fit_temperatures', 'fraction_milestones',
    'nll_from_summary', 'summarize_logits', 'amp_dtype', 'amp_summary',
    'autocast', 'native_bf16_flags'
]
