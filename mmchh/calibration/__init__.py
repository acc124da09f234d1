# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Calibration: everything fitted after training, with every weight frozen.

One room, one question per module:

- Which temperature is kept? :mod:`mmchh.calibration.temperature.select`
  (per-landmark, pooled or T = 1, by cross-validated NLL on unseen
  calibration images); the fits it chooses between are in
  :mod:`~mmchh.calibration.temperature.fit`, over the summaries of
  :mod:`~mmchh.calibration.temperature.logit_summary`.
- Which flag threshold? :mod:`mmchh.calibration.flagging` (the ERE
  threshold at the target TPR, its bootstrap interval and basis).
- Which regions? :mod:`mmchh.calibration.conformal.fitting` (the
  split-conformal thresholds and disc radii); the measurement intervals
  built on them in :mod:`~mmchh.calibration.conformal.measurement_intervals`
  (the fit) and :mod:`~mmchh.calibration.conformal.interval_calibration`
  (the scale stored with the calibration).
- How far is each landmark's draw widened?
  :mod:`mmchh.calibration.conformal.landmark_jitter` (the 2 x 2 error its
  map does not show).
- Which plausibility threshold? :mod:`mmchh.calibration.configuration`.

The settings are checked before anything is streamed
(:mod:`~mmchh.calibration.settings`, :class:`CalibrationError`);
:func:`calibrate_model` (:mod:`~mmchh.calibration.calibrate`) runs the steps
in order and :class:`TemperatureScalingHook` (:mod:`~mmchh.calibration.hook`)
runs it after training. What the head keeps at predict time (the buffers
and the list of them) lives below, in
:mod:`mmchh.models.heads.calibration_state`, so models need not import
this room. :mod:`mmchh.engine` re-exports the public names.
"""
from .calibrate import calibrate_model
from .conformal import MeasurementIntervalFit, fit_measurement_intervals
from .hook import TemperatureScalingHook
from .settings import CalibrationError, check_calibration_settings
from .temperature import (LogitSummary, fit_shared_temperature,
                          fit_temperatures, nll_from_summary,
                          summarize_logits)

__all__ = [
    'CalibrationError', 'LogitSummary', 'MeasurementIntervalFit',
    'TemperatureScalingHook', 'calibrate_model', 'check_calibration_settings',
    'fit_measurement_intervals', 'fit_shared_temperature', 'fit_temperatures',
    'nll_from_summary', 'summarize_logits'
]
