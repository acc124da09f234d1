# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Reading landmarks from a CSV file in long format.

One row per point, with a header naming the columns (any order, extra
columns ignored)::

    image,keypoint,x,y[,annotator]
    001.png,sella,812.25,933.5,senior

``image`` is a file name (or path) whose stem pairs the row with an image
in the images folder; without an ``annotator`` column (or with an empty
cell) the annotator is ``csv``. Coordinate convention: ``x``, ``y`` are
image pixels (x to the right, y down) kept exactly as written (no
rounding, no shift), read as pixel centres at integers.

Faults (reported with the file, line and label): a keypoint that is not
one of the names, an empty image cell, a coordinate that is not a finite
number (the row is ignored).
"""
import csv
import math
import os.path as osp
from typing import Dict, Sequence

from .errors import ConversionError
from .records import Marks, split_image_name
from .validation import BadInputPolicy

__all__ = ['CSV_ANNOTATOR', 'CSV_COLUMNS', 'read_csv_marks']

#: The annotator of rows without one.
CSV_ANNOTATOR = 'csv'
#: The columns every CSV file must have.
CSV_COLUMNS = ('image', 'keypoint', 'x', 'y')


def _finite(text: str):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_csv_marks(path: str, keypoints: Sequence[str],
                   policy: BadInputPolicy) -> Dict[str, Dict[str, Marks]]:
    """Reads a long-format landmark CSV (see the module docstring).

    Returns:
        dict: image stem -> annotator -> :class:`~.records.Marks`.

    Raises:
        ConversionError: the file cannot be read or lacks a column.
        BadImageError: for the first faulty row, unless ``policy`` skips.
    """
    found: Dict[str, Dict[str, Marks]] = {}
    try:
        with open(path, newline='', encoding='utf-8-sig') as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in CSV_COLUMNS if c not in columns]
            if missing:
                raise ConversionError(
                    f'{path}: missing column(s) {", ".join(missing)}; the '
                    f'header must name {",".join(CSV_COLUMNS)}[,annotator]')
            reader.fieldnames = columns
            for row in reader:
                _read_row(path, reader.line_num, row, keypoints, found, policy)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConversionError(f'{path}: cannot read CSV file ({e})') from e
    return found


def _read_row(path: str, line: int, row: dict, keypoints: Sequence[str],
              found: Dict[str, Dict[str,
                                    Marks]], policy: BadInputPolicy) -> None:
    """Adds one row's point, or reports why it is not one."""
    where = f'{path}:{line}'
    label = (row.get('keypoint') or '').strip()
    image = (row.get('image') or '').strip()
    x, y = _finite(row.get('x')), _finite(row.get('y'))
    problem = None
    if label not in keypoints:
        problem = (f'unknown keypoint {label!r} (not one of '
                   f'{", ".join(keypoints)})')
    elif not image:
        problem = 'empty image cell'
    elif x is None or y is None:
        problem = (f'x, y must be finite numbers, got {row.get("x")!r}, '
                   f'{row.get("y")!r}')
    if problem is not None:
        policy.report(path,
                      f'{where}: {problem}',
                      label=label,
                      action='row ignored')
        return
    annotator = (row.get('annotator') or '').strip() or CSV_ANNOTATOR
    stem = split_image_name(osp.basename(image.replace('\\', '/')))[0]
    marks = found.setdefault(stem, {}).setdefault(annotator, Marks(path))
    marks.add(label, x, y, f'line {line}')
