# TemperatureScalingHook lives in mmchh.calibration.hook (registered there).
from mmchh.calibration.hook import TemperatureScalingHook
from .headline_log_processor import HeadlineLogProcessor

__all__ = ['HeadlineLogProcessor', 'TemperatureScalingHook']
