from .temperature_scaling_hook import TemperatureScalingHook

__all__ = ['TemperatureScalingHook']
