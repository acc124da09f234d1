# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What a head's ERE flag threshold was fitted on, and whether it is used.

The threshold is fitted on the calibration split
(:mod:`mmchh.calibration.flagging`); on a handful of images it is
noise (a 9-image set split by default fitted "ERE > 102 mm" on one
image). So it
carries its basis -- its 95 % bootstrap interval over the calibration
images, the number of images and of erroneous landmarks it came from --
and below :data:`MIN_FLAG_IMAGES` images or :data:`MIN_FLAG_ERRONEOUS`
erroneous landmarks it is not used to flag (the head keeps no threshold,
the basis says why). The minimums are argued in docs/method.md
("Flagging").
"""
import math
from typing import Any, Dict, Optional

from torch import nn

__all__ = [
    'MIN_FLAG_ERRONEOUS', 'MIN_FLAG_IMAGES', 'describe_flag_status',
    'flag_basis_shortfall', 'flag_legend', 'flag_status', 'head_number',
    'image_flag_status'
]

#: Fewest calibration images a used threshold is fitted on: with 1 image
#: the bootstrap over images has one resample (no interval), with 2 only 3
#: distinct ones; from 3 on (10 distinct) the interval says something.
MIN_FLAG_IMAGES = 3
#: Fewest erroneous calibration landmarks: the default threshold (TPR 0.5)
#: is about their median ERE, and no distribution-free 95 % interval of a
#: median exists from fewer than 6 values (2 * 0.5**5 > 0.05).
MIN_FLAG_ERRONEOUS = 6


def flag_basis_shortfall(num_images: int, num_erroneous: int,
                         min_images: int = MIN_FLAG_IMAGES,
                         min_erroneous: int = MIN_FLAG_ERRONEOUS
                         ) -> Optional[str]:
    """Why a threshold fitted on this much is not used; None when it is.

    Args:
        num_images (int): Calibration images the threshold came from.
        num_erroneous (int): Erroneous landmarks among them.
        min_images (int): :data:`MIN_FLAG_IMAGES` unless changed.
        min_erroneous (int): :data:`MIN_FLAG_ERRONEOUS` unless changed.

    Returns:
        str | None: One line naming the counts and the minimums.
    """
    short = []
    if num_images < min_images:
        short.append(f'{num_images} calibration image(s) (minimum '
                     f'{min_images})')
    if num_erroneous < min_erroneous:
        short.append(f'{num_erroneous} erroneous landmark(s) (minimum '
                     f'{min_erroneous})')
    if not short:
        return None
    return ('flag threshold not used: fitted on ' + ' and '.join(short) +
            ', too few to fit it (docs/method.md, Flagging)')


def head_number(head: nn.Module, name: str) -> Optional[float]:
    """The head's scalar ``name`` as a float; None when absent or not
    finite (NaN = unset, as every calibration buffer)."""
    value = getattr(head, name, None)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def flag_status(head: nn.Module) -> Dict[str, Any]:
    """The flag threshold of ``head`` with what it was fitted on.

    Args:
        head (nn.Module): A head with the calibration state of
            :class:`~mmchh.models.heads.calibration_state.
            CalibrationStateMixin` (any other head: ``status`` ``'none'``).

    Returns:
        dict: ``status``: ``'used'`` (a threshold flags), ``'not_used'``
        (one was fitted on too little: no flags, ``reason`` says why) or
        ``'none'`` (no threshold fitted); ``reason`` (str, ``''`` when
        used with a recorded basis); ``threshold``, ``unit``, ``low``,
        ``high`` (its 95 % bootstrap interval over calibration images),
        ``num_images``, ``num_erroneous`` (None when not recorded: a
        checkpoint calibrated before they were).
    """
    threshold = head_number(head, 'flag_threshold')
    num_images = head_number(head, 'flag_num_images')
    num_erroneous = head_number(head, 'flag_num_erroneous')
    out = dict(
        threshold=threshold,
        unit=getattr(head, 'flag_threshold_unit', None)
        if threshold is not None else None,
        low=head_number(head, 'flag_threshold_low'),
        high=head_number(head, 'flag_threshold_high'),
        num_images=None if num_images is None else int(num_images),
        num_erroneous=None if num_erroneous is None else int(num_erroneous))
    if threshold is not None:
        out['status'] = 'used'
        out['reason'] = '' if num_images is not None else (
            'calibrated before the threshold recorded its basis: how many '
            'images it came from is unknown; re-run tools/calibrate.py')
    elif num_images is not None:
        out['status'] = 'not_used'
        out['reason'] = flag_basis_shortfall(
            out['num_images'], out['num_erroneous'] or 0) or (
            'flag threshold not used (too little calibration data)')
    else:
        out['status'] = 'none'
        out['reason'] = 'no flag threshold fitted (uncalibrated model)'
    return out


def describe_flag_status(status: Dict[str, Any]) -> str:
    """``status`` (:func:`flag_status`) as one line for logs and legends,
    e.g. ``'flag ERE > 2.31 mm [1.9, 2.8] (4 images, 12 erroneous)'``."""
    if status['status'] != 'used':
        return status['reason']
    text = f'flag ERE > {status["threshold"]:.3g} {status["unit"]}'
    if status['low'] is not None and status['high'] is not None:
        text += f' [{status["low"]:.3g}, {status["high"]:.3g}]'
    if status['num_images'] is not None:
        text += (f' ({status["num_images"]} images, '
                 f'{status["num_erroneous"]} erroneous)')
    else:
        text += ' (basis not recorded)'
    return text


def flag_legend(status: Dict[str, Any]) -> str:
    """``status`` (:func:`flag_status`) in a few words for an overlay's
    legend, e.g. ``'flag: ERE > 1.42 mm [1.1, 1.9], 4 images'`` or
    ``'flags off: 2 calibration images (min 3)'``."""
    if status['status'] == 'used':
        text = f'flag: ERE > {status["threshold"]:.3g} {status["unit"]}'
        if status['low'] is not None and status['high'] is not None:
            text += f' [{status["low"]:.2g}, {status["high"]:.2g}]'
        if status['num_images'] is None:
            return text + ', basis not recorded'
        return text + f', {status["num_images"]} images'
    if status['status'] == 'none':
        return 'flags off: no threshold fitted'
    images, erroneous = status['num_images'], status['num_erroneous'] or 0
    short = []
    if images is not None and images < MIN_FLAG_IMAGES:
        short.append(f'{images} calibration images (min {MIN_FLAG_IMAGES})')
    if erroneous < MIN_FLAG_ERRONEOUS:
        short.append(f'{erroneous} erroneous landmarks (min '
                     f'{MIN_FLAG_ERRONEOUS})')
    return 'flags off: ' + (', '.join(short) or 'too little calibration data')


def image_flag_status(status: Dict[str, Any],
                      has_spacing: bool) -> Dict[str, Any]:
    """The flag status of one image: ``status`` (:func:`flag_status`) with
    ``applied`` (whether its landmarks were flagged) and, when not, the
    ``reason`` -- a threshold in mm needs the image's spacing.

    Args:
        status (dict): The model's :func:`flag_status`.
        has_spacing (bool): The image has a spacing (mm per pixel).

    Returns:
        dict: A copy of ``status`` with ``applied`` and its ``reason``.
    """
    out = dict(status)
    out['applied'] = status['status'] == 'used' and (
        has_spacing or status['unit'] != 'mm')
    if status['status'] == 'used' and not out['applied']:
        why = ('no spacing for this image: its ERE in mm is unknown, so '
               'the mm threshold is not applied')
        out['reason'] = '; '.join(r for r in (status['reason'], why) if r)
    return out
