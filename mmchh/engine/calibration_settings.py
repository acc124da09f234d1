# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The old path of :mod:`mmchh.calibration.settings` (``tools/calibrate.py``
and user code import it from here)."""
from mmchh.calibration.settings import (CalibrationError,
                                        check_calibration_settings,
                                        error_unit)

__all__ = ['CalibrationError', 'check_calibration_settings', 'error_unit']
