# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Checks of a conversion's options, and the bad-input policy.

Options are checked before anything is read or written. Bad input stops
the conversion with an error naming the file (and line or label), unless
``skip_bad`` is set: then it is recorded with a warning and what was done
about it (the image skipped, or less: a shape ignored, a point made
invisible; :class:`BadInputPolicy`).
"""
import warnings
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from mmchh.utils.spacing import Spacing
from ..ceph_meta import ISBI_SPACING_MM
from .errors import BadImageError, ConversionError

__all__ = [
    'MAX_RESIZE_SIDE', 'BadInputPolicy', 'check_count', 'check_resize',
    'check_spacing', 'check_split_seed', 'check_test_fraction',
    'validate_options'
]

#: Largest ``resize`` side accepted (pixels).
MAX_RESIZE_SIDE = 16384


class BadInputPolicy:
    """What to do with bad input: stop, or record it and go on.

    Args:
        skip_bad (bool): Record bad input (and do what ``action`` says)
            instead of raising.

    Attributes:
        skipped (list[tuple[str, str]]): (path, why) of everything reported.
        faults (list[dict]): the same, structured: ``file``, ``label`` (the
            keypoint concerned, or None), ``problem`` and ``action`` (what
            was done about it).
    """

    def __init__(self, skip_bad: bool = False):
        self.skip_bad = skip_bad
        self.skipped: List[Tuple[str, str]] = []
        self.faults: List[dict] = []

    def report(self,
               path: str,
               message: str,
               label: Optional[str] = None,
               action: Optional[str] = None) -> None:
        """Reports bad input.

        Args:
            path (str): The file concerned.
            message (str): What is wrong (naming the file, and the label).
            label (str, optional): The keypoint concerned.
            action (str, optional): What is done about it when skipping;
                None: the image is skipped.

        Raises:
            BadImageError: unless ``skip_bad`` is set.
        """
        if not self.skip_bad:
            raise BadImageError(message)
        if action is None:
            warnings.warn(f'skipping {path}: {message}')
        else:
            warnings.warn(f'{message}: {action}')
        self.skipped.append((path, message))
        self.faults.append(
            dict(file=path,
                 label=label,
                 problem=message,
                 action=action or 'image skipped'))


def check_count(name: str, value) -> None:
    """An optional held-out count: None or an int >= 1."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConversionError(f'--{name} must be an integer; got {value!r}')
    if value < 1:
        need = dict(
            num_val='the validation loop and best-checkpoint selection of '
            'the configs (val_dataloader on val.json)',
            num_calib='temperature scaling (TemperatureScalingHook at the '
            'end of training, tools/calibrate.py on calib.json)')[name.replace(
                '-', '_')]
        raise ConversionError(
            f'--{name} {value}: {need} need at least 1 held-out image (an '
            'empty split cannot be loaded); give --' + name + ' >= 1')


def check_resize(resize) -> Optional[Tuple[int, int]]:
    """None, or (W, H): two integers in ``[1, MAX_RESIZE_SIDE]``.

    Raises:
        ConversionError: naming the option and the value given.
    """
    if resize is None:
        return None
    vals = list(resize) if isinstance(resize,
                                      (list, tuple, np.ndarray)) else None
    if vals is None or len(vals) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool)
            for v in vals) or not all(1 <= v <= MAX_RESIZE_SIDE
                                      for v in vals):
        raise ConversionError(
            f'--resize must be two integers W H in 1..{MAX_RESIZE_SIDE}'
            f'; got {resize!r}')
    return int(vals[0]), int(vals[1])


def check_spacing(spacing: Union[float, Sequence[float]]) -> np.ndarray:
    """One or two positive finite mm/pixel values, as (x, y).

    The rule is :meth:`~mmchh.utils.spacing.Spacing.parse`'s, raised as
    the converters' own error.

    Returns:
        np.ndarray: (2, ) float64.

    Raises:
        ConversionError: naming the option and the value given.
    """
    return Spacing.parse(spacing, '--spacing', source='--spacing',
                         error=ConversionError).array()


def check_split_seed(split_seed) -> None:
    """A non-negative integer.

    Raises:
        ConversionError: naming the option and the value given.
    """
    if isinstance(split_seed,
                  bool) or not isinstance(split_seed,
                                          (int, np.integer)) or split_seed < 0:
        raise ConversionError('--split-seed must be a non-negative integer; '
                              f'got {split_seed!r}')


def check_test_fraction(fraction) -> None:
    """A number in [0, 1]: the share of images held out for testing (1:
    every image, a test-only conversion).

    Raises:
        ConversionError: naming the option and the value given.
    """
    if isinstance(fraction, bool) or not isinstance(
            fraction, (int, float, np.integer, np.floating)) or not (
                0 <= fraction <= 1):
        raise ConversionError('--test-fraction must be a number in [0, 1]; '
                              f'got {fraction!r}')


def validate_options(
        resize=None,
        spacing: Union[float, Sequence[float]] = ISBI_SPACING_MM,
        num_val: Optional[int] = None,
        num_calib: Optional[int] = None,
        split_seed: int = 0) -> Tuple[Optional[Tuple[int, int]], np.ndarray]:
    """Checks the conversion options before anything is read or written.

    Args:
        resize: None or (W, H), two integers in ``[1, MAX_RESIZE_SIDE]``.
        spacing: One or two positive finite mm/pixel values.
        num_val, num_calib: None (default) or an integer >= 1.
        split_seed: A non-negative integer.

    Returns:
        tuple: (resize as a tuple of ints or None, spacing as (2,) float64).

    Raises:
        ConversionError: naming the option and the value given.
    """
    resize = check_resize(resize)
    spacing_xy = check_spacing(spacing)
    check_count('num-val', num_val)
    check_count('num-calib', num_calib)
    check_split_seed(split_seed)
    return resize, spacing_xy
