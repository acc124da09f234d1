# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Reading landmarks from a CSV file in long format.

One row per point, with a header naming the columns (any order)::

    image,keypoint,x,y[,annotator][,group]
    001.png,sella,812.25,933.5,senior,patient_17

``image`` is a file name (or path) whose stem pairs the row with an image
in the images folder; without an ``annotator`` column (or with an empty
cell) the annotator is ``csv``. ``group`` (optional) names the patient (or
other unit) the image belongs to, so that one patient's images stay in one
split (:attr:`~.records.Marks.group`); an empty cell gives no group, and
every row of an image that gives one must give the same. Coordinate
convention: ``x``, ``y`` are image pixels (x to the right, y down) kept
exactly as written (no rounding, no shift), read as pixel centres at
integers; only plain decimal spellings are numbers
(:func:`~.strict_values.decimal_value`: ``812.25``, ``-1``, ``8e2``; not
``1_5``, ``0x1``, ``nan``, ``inf``, ``1e400``).

The header is checked before any row (:class:`~.errors.ConversionError`
naming the file and the column): each of ``image``, ``keypoint``, ``x``,
``y`` present, no column named twice (``csv.DictReader`` would let the last
win), no other column (a column we do not read, e.g. ``visible`` or
``z``, might change what a row means; remove it or write a copy without
it).

Faults (reported with the file, line and label; the row is ignored): a
row whose number of cells differs from the header's, a keypoint that is
not one of the names, an empty image cell, a coordinate that is not a
finite plain decimal. An image given two groups is reported with the lines
and both groups (every annotator's points of that image are then unused).
"""
import csv
import os.path as osp
from typing import Dict, List, Optional, Sequence, Set, Tuple

from .errors import ConversionError
from .records import Marks, split_image_name
from .strict_values import decimal_value
from .validation import BadInputPolicy

__all__ = ['CSV_ANNOTATOR', 'CSV_COLUMNS', 'CSV_OPTIONAL_COLUMNS',
           'read_csv_marks']

#: The annotator of rows without one.
CSV_ANNOTATOR = 'csv'
#: The columns every CSV file must have.
CSV_COLUMNS = ('image', 'keypoint', 'x', 'y')
#: The columns a CSV file may have besides those.
CSV_OPTIONAL_COLUMNS = ('annotator', 'group')


def _check_header(path: str, columns: List[str]) -> None:
    """Refuses a missing, repeated or unknown column."""
    layout = (f'the header must name {",".join(CSV_COLUMNS)}'
              f'[,{"][,".join(CSV_OPTIONAL_COLUMNS)}], each once')
    missing = [c for c in CSV_COLUMNS if c not in columns]
    if missing:
        raise ConversionError(
            f'{path}: missing column(s) {", ".join(missing)}; {layout}')
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ConversionError(
            f'{path}: column(s) {", ".join(map(repr, repeated))} named more '
            f'than once in the header; {layout}')
    unknown = [
        c for c in columns if c not in CSV_COLUMNS + CSV_OPTIONAL_COLUMNS
    ]
    if unknown:
        raise ConversionError(
            f'{path}: unknown column(s) {", ".join(map(repr, unknown))} '
            f'(not read, and they might change what a row means); {layout}')


def read_csv_marks(path: str, keypoints: Sequence[str],
                   policy: BadInputPolicy) -> Dict[str, Dict[str, Marks]]:
    """Reads a long-format landmark CSV (see the module docstring).

    Returns:
        dict: image stem -> annotator -> :class:`~.records.Marks` (with the
        image's ``group`` when the file gives one).

    Raises:
        ConversionError: the file cannot be read, or its header is bad.
        BadImageError: for the first faulty row, unless ``policy`` skips.
    """
    found: Dict[str, Dict[str, Marks]] = {}
    groups: Dict[str, Tuple[str, int]] = {}  # stem -> (group, its line)
    conflicted: Set[str] = set()
    try:
        with open(path, newline='', encoding='utf-8-sig') as f:
            reader = csv.reader(f)
            columns = [c.strip() for c in next(reader, [])]
            _check_header(path, columns)
            for cells in reader:
                if not cells:  # a blank line
                    continue
                if len(cells) != len(columns):
                    policy.report(path,
                                  f'{path}:{reader.line_num}: {len(cells)} '
                                  f'cells but the header names '
                                  f'{len(columns)} columns',
                                  action='row ignored')
                    continue
                stem = _read_row(path, reader.line_num,
                                 dict(zip(columns, cells)), keypoints, found,
                                 policy)
                if stem is not None:
                    _read_group(path, reader.line_num, stem,
                                cells[columns.index('group')].strip()
                                if 'group' in columns else '', groups,
                                conflicted, policy)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConversionError(f'{path}: cannot read CSV file ({e})') from e
    for stem, by_annotator in found.items():
        for marks in by_annotator.values():
            marks.group = groups.get(stem, (None, ))[0]
            marks.rejected = stem in conflicted
    return found


def _read_group(path: str, line: int, stem: str, group: str,
                groups: Dict[str, Tuple[str, int]], conflicted: Set[str],
                policy: BadInputPolicy) -> None:
    """Records the image's group; a row contradicting an earlier one is
    reported (once per image, which is then left out)."""
    if not group:
        return
    first = groups.setdefault(stem, (group, line))
    if first[0] == group or stem in conflicted:
        return
    conflicted.add(stem)
    policy.report(path,
                  f'{path}:{first[1]} and {path}:{line}: image {stem} '
                  f'given two groups, {first[0]!r} and {group!r}',
                  action='image ignored: every annotator\'s points of it '
                  'unused')


def _read_row(path: str, line: int, row: dict, keypoints: Sequence[str],
              found: Dict[str, Dict[str, Marks]],
              policy: BadInputPolicy) -> Optional[str]:
    """Adds one row's point and returns its image stem, or reports why it
    is not one (None)."""
    where = f'{path}:{line}'
    label = row['keypoint'].strip()
    image = row['image'].strip()
    x, y = decimal_value(row['x']), decimal_value(row['y'])
    problem = None
    if label not in keypoints:
        problem = (f'unknown keypoint {label!r} (not one of '
                   f'{", ".join(keypoints)})')
    elif not image:
        problem = 'empty image cell'
    elif x is None or y is None:
        problem = ('x, y must be finite plain decimal numbers, got '
                   f'{row["x"]!r}, {row["y"]!r}')
    if problem is not None:
        policy.report(path,
                      f'{where}: {problem}',
                      label=label,
                      action='row ignored')
        return None
    annotator = row.get('annotator', '').strip() or CSV_ANNOTATOR
    stem = split_image_name(osp.basename(image.replace('\\', '/')))[0]
    marks = found.setdefault(stem, {}).setdefault(annotator, Marks(path))
    marks.add(label, x, y, f'line {line}')
    return stem
