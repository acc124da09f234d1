# TemperatureScalingHook lives in mmchh.calibration.hook (registered there).
from mmchh.calibration.hook import TemperatureScalingHook

__all__ = ['TemperatureScalingHook']
