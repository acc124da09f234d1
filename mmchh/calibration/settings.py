# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The settings of a calibration, checked before any image is streamed.

:func:`~mmchh.calibration.calibrate.calibrate_model` (and so
``tools/calibrate.py`` and the ``TemperatureScalingHook``) check their
numbers here first: an erroneous radius of NaN, for one, would make every
landmark "good" and seal a flag threshold fitted on no erroneous landmark,
and a bad TPR or fold count would otherwise only be noticed after the whole
calibration split was streamed.
"""
import math
from numbers import Integral, Real
from typing import Optional

import numpy as np

from mmchh.utils.errors import InputError

__all__ = ['CalibrationError', 'check_calibration_settings', 'error_unit']


class CalibrationError(InputError):
    """The calibration split cannot be used (missing, empty, no targets),
    or a calibration setting is out of its range."""


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _require(ok: bool, name: str, allowed: str, value) -> None:
    if not ok:
        raise CalibrationError(f'calibration setting {name} must be '
                               f'{allowed}; got {value!r}')


def check_calibration_settings(erroneous_mm: float = 2.0,
                               erroneous_px: float = 10.0,
                               target_tpr: Optional[float] = 0.5,
                               prior_std: Optional[float] = 1.0,
                               cv_folds: int = 10,
                               num_bins: int = 2048,
                               plausibility_alpha: float = 0.02) -> None:
    """Refuses a calibration setting outside its range.

    Args:
        erroneous_mm, erroneous_px (float): Radial error that counts as
            erroneous: finite and > 0.
        target_tpr (float, optional): In (0, 1]; 0 or None skips the flag
            threshold.
        prior_std (float, optional): Finite and >= 0; None or 0 is plain
            maximum likelihood.
        cv_folds (int): An integer >= 2.
        num_bins (int): An integer >= 1.
        plausibility_alpha (float): In (0, 1): the share of correct
            calibration landmarks the plausibility threshold may flag.

    Raises:
        CalibrationError: naming the setting, its allowed range and the
            value given.
    """
    for name, value in (('erroneous_mm', erroneous_mm),
                        ('erroneous_px', erroneous_px)):
        _require(_is_number(value) and math.isfinite(value) and value > 0,
                 name, 'a finite number > 0', value)
    _require(
        target_tpr is None or _is_number(target_tpr) and
        (target_tpr == 0 or 0 < target_tpr <= 1), 'target_tpr',
        'in (0, 1] (0 or None: no flag threshold)', target_tpr)
    _require(
        prior_std is None or _is_number(prior_std) and
        math.isfinite(prior_std) and prior_std >= 0, 'prior_std',
        'a finite number >= 0 (0 or None: plain maximum likelihood)',
        prior_std)
    _require(isinstance(cv_folds, Integral) and cv_folds >= 2, 'cv_folds',
             'an integer >= 2', cv_folds)
    _require(isinstance(num_bins, Integral) and num_bins >= 1, 'num_bins',
             'an integer >= 1', num_bins)
    _require(_is_number(plausibility_alpha) and 0 < plausibility_alpha < 1,
             'plausibility_alpha', 'in (0, 1)', plausibility_alpha)


def error_unit(in_mm: np.ndarray) -> str:
    """The unit of the calibration split's radial errors: ``'mm'`` when
    every image has a spacing, ``'px'`` (original-image pixels) when none
    has; a :class:`CalibrationError` for a mix (what is erroneous would mix
    ``erroneous_mm`` and ``erroneous_px``).

    Args:
        in_mm (np.ndarray): (N,) bool, whether each image has a spacing.
    """
    if in_mm.all():
        return 'mm'
    if not in_mm.any():
        return 'px'
    raise CalibrationError(
        f'{int(in_mm.sum())} of {in_mm.size} calibration images have a '
        '"spacing" and the others do not; what counts as erroneous (for the '
        'flag and plausibility thresholds) would mix mm and image pixels. '
        'Give every image a spacing or none')
