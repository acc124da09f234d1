# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Strict reading of the values annotation files give: numbers and JSON.

Python's own parsers are lenient where a landmark file must not be:
``float()`` reads ``'1_5'`` as 15, ``' inf'``, ``'nan'`` and
``'infinity'`` as numbers and Unicode digits as decimals; ``json`` lets the
last of two equal keys win and reads ``NaN``, ``Infinity`` and ``1e400``
(infinite) as numbers; ``True`` is an ``int``. The readers take numbers
only through this module:

- text (a CSV cell, a size given as a JSON string): a plain decimal
  spelling only, ``[+-]digits[.digits][e[+-]digits]`` in ASCII (``.5`` and
  ``5.`` included), surrounding spaces or tabs allowed, and finite
  (:func:`decimal_value`);
- a JSON coordinate: a JSON number (not a string, not ``true``/``false``),
  finite (:func:`json_number`); a coordinate written as a string
  (``"12.5"``) is refused: labelme and COCO writers write numbers, and a
  string says the file was made by something else;
- a JSON image size: a positive whole number, as a JSON number (``640`` or
  ``640.0``) or a decimal string (``"640"``) (:func:`json_size`);
- a JSON document: duplicate keys in one object are refused
  (:func:`load_json`).
"""
import json
import math
import re
from typing import Any, Optional

__all__ = ['decimal_value', 'json_number', 'json_size', 'load_json']

_DECIMAL = re.compile(r'[ \t]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)'
                      r'([eE][+-]?[0-9]+)?[ \t]*')


def decimal_value(text: Any) -> Optional[float]:
    """The finite value of a plain decimal spelling, else None.

    Args:
        text: A cell's text (anything else gives None).

    Returns:
        float or None: None for ``'1_5'``, ``'0x1'``, ``'nan'``, ``'inf'``,
        ``'1e400'`` (overflows), ``''``, ``'true'``, non-ASCII digits, ...
    """
    if not isinstance(text, str) or not _DECIMAL.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def json_number(value: Any) -> Optional[float]:
    """A JSON number's finite value as float, else None (bool, string,
    null, NaN, an infinity or an int too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def json_size(value: Any) -> Optional[int]:
    """A positive whole number given as a JSON number or a decimal string
    (``640``, ``640.0``, ``"640"``), else None (``640.5``, ``"abc"``,
    ``0``, ``true``)."""
    number = (decimal_value(value)
              if isinstance(value, str) else json_number(value))
    if number is None or number < 1 or number != int(number):
        return None
    return int(number)


def _refuse_duplicates(pairs):
    """``object_pairs_hook`` of :func:`load_json`."""
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f'key {key!r} given twice in one object')
        obj[key] = value
    return obj


def load_json(data: bytes) -> Any:
    """Parses a JSON document (UTF-8, a BOM allowed), refusing duplicate
    keys.

    Raises:
        UnicodeDecodeError: not UTF-8.
        ValueError: not JSON, or a key given twice in one object.
    """
    return json.loads(data.decode('utf-8-sig'),
                      object_pairs_hook=_refuse_duplicates)
