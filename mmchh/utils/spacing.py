# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Pixel spacing: mm per image pixel along x and y, parsed in one place.

A spacing reaches mmchh from a converter's ``--spacing``, a dataset
record, an image header, a sample's metainfo, the inference API's
``spacing`` argument or a metric's option. Every one of them goes through
:meth:`Spacing.parse` (or :func:`spacing_array` for one spacing per
leading index), so the same value is accepted or refused everywhere, and
refused with the same words.

The rule: one number (used for both axes) or ``(x, y)``; Python numbers,
sequences, numpy arrays and scalars alike; every value finite and > 0. A
bool, text, ``None`` (where a spacing is required), a wrong number of
values and anything that is not a number are refused with the layer's own
:class:`~mmchh.utils.errors.InputError` subclass (default
:class:`SpacingError`), whose message names the field or file given as
``where``. Values are kept as float64.
"""
import math
import numbers
from dataclasses import dataclass
from typing import Any, Optional, Tuple, Type

import numpy as np

from .errors import InputError

__all__ = ['Spacing', 'SpacingError', 'spacing_array']

#: What every refusal says a spacing must be.
_EXPECTED = ('one or two positive finite numbers (mm per pixel: one for '
             'both axes, or x and y)')


class SpacingError(InputError):
    """A spacing that is not one or two positive finite numbers; the
    message names where it was given."""


def _refuse(value: Any, where: str, why: str,
            error: Type[InputError]) -> InputError:
    return error(f'{where} must be {_EXPECTED}; got {value!r} ({why})')


def _is_text(v: Any) -> bool:
    return isinstance(v, (str, bytes, np.str_, np.bytes_))


def _is_bool(v: Any) -> bool:
    return isinstance(v, (bool, np.bool_))


def _items(value: Any):
    """The leaves of nested lists and tuples (an array is one leaf: its
    dtype says what it holds)."""
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _items(v)
    else:
        yield value


def _numbers(value: Any, where: str,
             error: Type[InputError]) -> np.ndarray:
    """``value`` as a float64 array of numbers (any shape), or the layer's
    error saying why it is not one.

    numpy would turn ``True`` into 1.0 and ``'0.1'`` into 0.1; a spacing
    given as either is a mistake upstream (a flag, an unparsed cell), so
    both are refused here rather than read as a size.
    """
    if value is None:
        raise _refuse(value, where, 'no value', error)
    if _is_bool(value):
        raise _refuse(value, where, 'a bool, not a number', error)
    if _is_text(value):
        raise _refuse(value, where, 'text, not a number', error)
    # numpy would turn [True, 0.1] into [1.0, 0.1]: look at the items
    for v in _items(value):
        if _is_bool(v):
            raise _refuse(value, where, 'a bool among the values', error)
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as e:  # ragged nesting
        raise _refuse(value, where, f'not an array of numbers: {e}',
                      error) from None
    if raw.dtype.kind == 'b':
        raise _refuse(value, where, 'bools, not numbers', error)
    if raw.dtype.kind in 'USa':
        raise _refuse(value, where, 'text, not numbers', error)
    if raw.dtype.kind == 'c':
        raise _refuse(value, where, 'complex numbers', error)
    if raw.dtype.kind == 'O':
        for v in raw.reshape(-1):
            if v is None or _is_bool(v) or _is_text(v) or not isinstance(
                    v, numbers.Real):
                raise _refuse(value, where,
                              f'{type(v).__name__} {v!r} is not a number',
                              error)
    elif raw.dtype.kind not in 'iuf':
        raise _refuse(value, where, f'values of type {raw.dtype}', error)
    try:
        return raw.astype(np.float64)
    except (TypeError, ValueError, OverflowError) as e:
        raise _refuse(value, where, f'not float64 numbers: {e}',
                      error) from None


def _check_values(arr: np.ndarray, value: Any, where: str,
                  error: Type[InputError]) -> None:
    if not np.isfinite(arr).all():
        raise _refuse(value, where, 'not finite', error)
    if not (arr > 0).all():
        raise _refuse(value, where, 'not > 0', error)


@dataclass(frozen=True)
class Spacing:
    """mm per image pixel along x and y, and where it came from.

    Build it with :meth:`parse` (or :meth:`parse_optional`): the
    constructor itself checks the values too, so no ``Spacing`` holds a
    non-finite or non-positive size.

    Attributes:
        x (float): mm per pixel along x (columns), float64.
        y (float): mm per pixel along y (rows), float64.
        source (str): Where it came from, as the caller records it (e.g.
            ``'header'``, ``'argument'``, ``'file'``, a DICOM key,
            ``'--spacing'``); kept as given.
    """
    x: float
    y: float
    source: str = 'given'

    def __post_init__(self) -> None:
        for name in ('x', 'y'):
            value = getattr(self, name)
            if _is_bool(value) or not isinstance(value, numbers.Real):
                raise SpacingError(f'Spacing.{name} must be a number; got '
                                   f'{value!r}')
            value = float(value)
            if not (math.isfinite(value) and value > 0):
                raise SpacingError(f'Spacing.{name} must be a positive '
                                   f'finite number; got {value!r}')
            # frozen: the float64 value is set through object.__setattr__
            object.__setattr__(self, name, value)
        if not isinstance(self.source, str):
            raise SpacingError(f'Spacing.source must be a string; got '
                               f'{self.source!r}')

    @classmethod
    def parse(cls,
              value: Any,
              where: str = 'spacing',
              source: str = 'given',
              error: Type[InputError] = SpacingError) -> 'Spacing':
        """A spacing from one number or ``(x, y)``.

        Args:
            value: A number (both axes), or two numbers ``(x, y)``: a
                sequence, a numpy array of one or two elements (at most
                1-D) or a numpy scalar. A :class:`Spacing` is returned
                as it is.
            where (str): The field, option or file the value came from;
                every refusal starts with it (e.g. ``'--spacing'``,
                ``'train.json (image 001.png): "spacing"'``).
            source (str): Recorded as :attr:`source`.
            error (type): The :class:`~mmchh.utils.errors.InputError`
                subclass to raise: the caller's layer's own (e.g. the
                converters' ``ConversionError``).

        Returns:
            Spacing: float64 ``x`` and ``y``.

        Raises:
            InputError: ``error``, naming ``where``, the value and why:
                None, a bool, text, not numbers, not one or two values,
                not finite, or not > 0.
        """
        if isinstance(value, Spacing):
            return value
        arr = _numbers(value, where, error)
        if arr.ndim > 1 or arr.size not in (1, 2):
            shape = '' if arr.ndim <= 1 else f' in shape {arr.shape}'
            raise _refuse(value, where, f'{arr.size} values{shape}', error)
        _check_values(arr, value, where, error)
        arr = np.broadcast_to(arr.reshape(-1), (2, ))
        return cls(float(arr[0]), float(arr[1]), source)

    @classmethod
    def parse_optional(cls,
                       value: Any,
                       where: str = 'spacing',
                       source: str = 'given',
                       error: Type[InputError] = SpacingError
                       ) -> Optional['Spacing']:
        """None for None (no spacing known), else :meth:`parse`."""
        if value is None:
            return None
        return cls.parse(value, where, source, error)

    @classmethod
    def from_header(cls, values: Any, source: str) -> Optional['Spacing']:
        """An image header's (x, y), or None when it is not usable.

        A header's spacing is the file's own field, not the user's input:
        one that is missing, malformed or not positive means the image has
        no known spacing (the user can then give one), not an error. DICOM
        stores its decimals as text (``DS``), so each value is read with
        ``float``.

        Args:
            values: Exactly two values ``(x, y)`` (the caller orders
                DICOM's row/column pair).
            source (str): Recorded as :attr:`source` (e.g. the DICOM key).

        Returns:
            Spacing | None: The spacing, or None when ``values`` are not two
            positive finite numbers.
        """
        try:
            x, y = (float(v) for v in values)
        except (TypeError, ValueError):
            return None
        if all(math.isfinite(v) and v > 0 for v in (x, y)):
            return cls(x, y, source)
        return None

    @property
    def xy(self) -> Tuple[float, float]:
        """``(x, y)`` as two Python floats."""
        return self.x, self.y

    def array(self,
              dtype: Any = np.float64,
              where: str = 'spacing',
              error: Type[InputError] = SpacingError) -> np.ndarray:
        """``(x, y)`` as a (2,) array of ``dtype``.

        Args:
            dtype: The array's type; float64 by default. float32 is what
                samples' metainfo has always carried, so a pipeline that
                stores it keeps its numbers.
            where (str): Named when ``dtype`` cannot hold the values.
            error (type): The error to raise then.

        Raises:
            InputError: ``error`` when a value is not positive and finite
                in ``dtype`` (it overflows or underflows it).
        """
        with np.errstate(over='ignore', under='ignore'):
            arr = np.asarray(self.xy, dtype=dtype)
        if not (np.isfinite(arr).all() and (arr > 0).all()):
            raise _refuse(self.xy, where,
                          f'out of the range of {np.dtype(dtype).name}',
                          error)
        return arr


def spacing_array(value: Any,
                  where: str = 'spacing',
                  error: Type[InputError] = SpacingError) -> np.ndarray:
    """One spacing, or one per leading index, as a float64 (..., 2) array.

    For array code that takes a spacing per image (e.g. measurements over
    a batch): the rule of :meth:`Spacing.parse` on every entry, the last
    axis holding one number (both axes) or ``(x, y)``.

    Args:
        value: A number, ``(x, y)``, or an array of shape (..., 1) or
            (..., 2).
        where (str): Named in the error.
        error (type): The :class:`~mmchh.utils.errors.InputError` subclass
            to raise.

    Returns:
        np.ndarray: (2,) for a number, else (..., 2); float64.

    Raises:
        InputError: ``error``, naming ``where``, for values that are not
            numbers, a last axis other than 1 or 2, or values not finite
            and > 0.
    """
    if isinstance(value, Spacing):
        return value.array()
    arr = _numbers(value, where, error)
    if arr.ndim == 0:
        arr = np.stack([arr, arr])
    elif arr.shape[-1] == 1:
        arr = np.repeat(arr, 2, axis=-1)
    if arr.shape[-1] != 2:
        raise _refuse(value, where,
                      f'last axis of {arr.shape[-1]}, not 1 or 2', error)
    _check_values(arr, value, where, error)
    return arr
