# TemperatureScalingHook lives in mmchh.calibration.hook (registered there).
from mmchh.calibration.hook import TemperatureScalingHook
from .channels_last_hook import ChannelsLastHook
from .headline_log_processor import HeadlineLogProcessor

__all__ = ['ChannelsLastHook', 'HeadlineLogProcessor', 'TemperatureScalingHook']
