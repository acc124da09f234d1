from .calibration import CalibrationError, calibrate_model
from .hooks import *  # noqa: F401,F403

__all__ = ['CalibrationError', 'calibrate_model']
