# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Each image's pixel spacing at inference, and where it came from.

The order, per image:

1. the file's header (DICOM ``PixelSpacing``/``ImagerPixelSpacing``,
   MetaImage/NRRD/NIfTI spacing; read by
   :func:`mmchh.datasets.image_reader.read_image`): source ``'header'``;
2. a spacing the caller gives for the image: one ``--spacing`` for every
   image (source ``'argument'``) or its row of a ``--spacing-file`` CSV
   (source ``'file'``);
3. else none (source ``'none'``): ERE in pixels only, nothing flagged.

A given spacing that contradicts the header (more than
:data:`SPACING_RTOL` apart) is a warning naming both; the header's is used
unless the caller says the given one overrides it
(``spacing_overrides_header``), which is a warning too. Nothing is dropped
without a word.

A spacing file is a CSV with the header ``image,spacing_x,spacing_y`` (mm
per pixel); ``image`` is an input's file name (or its path as given); every
row must name an input, once; numbers are plain decimals, positive
(:func:`read_spacing_file`).
"""
import csv
import math
import os.path as osp
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmchh.utils.errors import InputError
from mmchh.utils.spacing import Spacing

__all__ = [
    'SPACING_SOURCES', 'SPACING_FILE_COLUMNS', 'SPACING_RTOL',
    'SpacingFileError', 'RunSpacing', 'parse_spacing', 'read_spacing_file',
    'resolve_spacing'
]

#: Where an image's spacing can come from, in the order they are tried
#: (``'argument'`` and ``'file'`` are the two kinds of a given spacing).
SPACING_SOURCES = ('header', 'argument', 'file', 'none')
#: The columns of a spacing file, in order.
SPACING_FILE_COLUMNS = ('image', 'spacing_x', 'spacing_y')
#: Relative difference above which a given spacing contradicts the header.
SPACING_RTOL = 1e-3

#: (x, y) mm per pixel, as results and run headers carry it.
SpacingXY = Tuple[float, float]


class SpacingFileError(InputError):
    """A spacing file that cannot be used: the message names the file, the
    line and the cell."""


def parse_spacing(spacing: Any, where: str = 'spacing',
                  source: str = 'argument') -> Optional[SpacingXY]:
    """mm per pixel (x, y) from None, a number or an (x, y) pair.

    Args:
        spacing: None (no spacing given), a number or ``(x, y)``.
        where (str): The argument, named when it is refused.
        source (str): What it is (``'argument'`` or ``'file'``).

    Returns:
        tuple | None: ``(x, y)`` float64, or None for None.

    Raises:
        SpacingError: (a ``ValueError``) naming ``where``, if it is not
            one or two positive finite numbers.
    """
    parsed = Spacing.parse_optional(spacing, where, source)
    return None if parsed is None else parsed.xy


def _contradicts(a: SpacingXY, b: SpacingXY) -> bool:
    return any(
        abs(x - y) > SPACING_RTOL * max(abs(x), abs(y)) for x, y in zip(a, b))


def resolve_spacing(header: Optional[SpacingXY],
                    given: Optional[SpacingXY],
                    given_source: str,
                    overrides_header: bool = False,
                    where: str = '<array>'
                    ) -> Tuple[Optional[SpacingXY], str]:
    """One image's spacing and its source (see the module docstring).

    Args:
        header (tuple, optional): (x, y) mm per pixel from the file's
            header, None when it has none.
        given (tuple, optional): (x, y) the caller gave for this image.
        given_source (str): ``'argument'`` or ``'file'``: what ``given``
            is.
        overrides_header (bool): Use ``given`` even when the header has a
            different spacing.
        where (str): The image, for the warnings.

    Returns:
        tuple: ((x, y) or None, its source: one of :data:`SPACING_SOURCES`).

    Warns:
        UserWarning: naming the image and both values, when ``given``
            contradicts ``header`` (and which one is used).
    """
    if given_source not in ('argument', 'file'):
        raise ValueError(f'given_source must be "argument" or "file"; got '
                         f'{given_source!r}')
    if header is None:
        return (given, given_source) if given is not None else (None, 'none')
    if given is not None and _contradicts(header, given):
        what = '--spacing' if given_source == 'argument' else \
            'the spacing file'
        if overrides_header:
            warnings.warn(
                f'{where}: spacing {list(given)} mm/px from {what} '
                f'overrides the header\'s {list(header)} mm/px (spacing '
                'overrides header)', UserWarning, stacklevel=3)
            return given, given_source
        warnings.warn(
            f'{where}: its header says {list(header)} mm/px but {what} '
            f'says {list(given)} mm/px; the header\'s is used (pass '
            '--spacing-overrides-header, spacing_overrides_header=True in '
            'the API, to use yours)', UserWarning, stacklevel=3)
    return header, 'header'


def _row_spacing(row: Dict[str, str], path: str, line: int) -> SpacingXY:
    """The (x, y) of one spacing-file row, strictly."""
    # imported here: the strict number rule is the readers' (one rule)
    from mmchh.datasets.converters.strict_values import decimal_value
    values = []
    for key in SPACING_FILE_COLUMNS[1:]:
        value = decimal_value(row.get(key))
        if value is None or not value > 0 or not math.isfinite(value):
            raise SpacingFileError(
                f'{path} line {line}: {key} {row.get(key)!r} is not a '
                'positive decimal number (mm per pixel)')
        values.append(value)
    return values[0], values[1]


def read_spacing_file(path: str,
                      inputs: Sequence[str]) -> Dict[str, SpacingXY]:
    """Each input's spacing from a spacing file.

    Args:
        path (str): The CSV (columns :data:`SPACING_FILE_COLUMNS`).
        inputs (Sequence[str]): The input image paths of the run.

    Returns:
        dict: input path -> (x, y) mm per pixel, for the inputs it names
        (the others have no row: their header, or none).

    Raises:
        SpacingFileError: naming the file (and line) when it is missing,
            unreadable, has other columns, a row names no input (or an
            ambiguous one), an image has two rows, or a spacing is not a
            positive plain decimal.
    """
    try:
        with open(path, newline='', encoding='utf-8-sig') as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise SpacingFileError(f'--spacing-file {path}: cannot read it '
                               f'({e})') from e
    if not rows or tuple(c.strip() for c in rows[0]) != SPACING_FILE_COLUMNS:
        raise SpacingFileError(
            f'--spacing-file {path}: the first line must be '
            f'{",".join(SPACING_FILE_COLUMNS)}; got '
            f'{",".join(rows[0]) if rows else "an empty file"}')
    by_key: Dict[str, list] = {}
    for p in inputs:
        for key in {p, osp.normpath(p), osp.basename(p)}:
            by_key.setdefault(key, []).append(p)
    found: Dict[str, SpacingXY] = {}
    first_line: Dict[str, int] = {}
    for line, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(SPACING_FILE_COLUMNS):
            raise SpacingFileError(
                f'{path} line {line}: expected 3 cells (image, spacing_x, '
                f'spacing_y); got {len(cells)}')
        row = dict(zip(SPACING_FILE_COLUMNS, cells))
        name = row['image'].strip()
        matches = by_key.get(name) or by_key.get(osp.normpath(name), [])
        if len(set(matches)) != 1:
            why = ('is not among the inputs' if not matches else
                   f'matches {len(set(matches))} inputs')
            raise SpacingFileError(f'{path} line {line}: image {name!r} '
                                   f'{why}')
        image = matches[0]
        if image in first_line:
            raise SpacingFileError(
                f'{path} line {line}: image {name!r} already has a spacing '
                f'(line {first_line[image]}); one row per image')
        first_line[image] = line
        found[image] = _row_spacing(row, path, line)
    return found


@dataclass(frozen=True)
class RunSpacing:
    """The spacing a folder run is given: one for every image
    (``--spacing``) or one per image (``--spacing-file``), never both.

    Attributes:
        argument (tuple, optional): (x, y) for every image.
        file (str, optional): The spacing file.
        per_image (dict): input path -> (x, y), from ``file``.
        overrides_header (bool): A given spacing wins over a header's.
    """
    argument: Optional[SpacingXY] = None
    file: Optional[str] = None
    per_image: Optional[Dict[str, SpacingXY]] = None
    overrides_header: bool = False

    @classmethod
    def of(cls, spacing: Any, spacing_file: Optional[str],
           paths: Sequence[str], overrides_header: bool) -> 'RunSpacing':
        """Checks the options (and reads the file) before any prediction.

        Raises:
            ValueError: with both ``spacing`` and ``spacing_file``.
            SpacingError: (a ``ValueError``) for a malformed ``spacing``.
            SpacingFileError: for a bad spacing file.
        """
        if spacing is not None and spacing_file is not None:
            raise ValueError('give a spacing or a spacing file, not both '
                             '(--spacing, --spacing-file)')
        per_image = None if spacing_file is None else read_spacing_file(
            spacing_file, paths)
        return cls(parse_spacing(spacing), spacing_file, per_image,
                   bool(overrides_header))

    def given(self, paths: Sequence[str]) -> Tuple[Any, str]:
        """``spacing`` and ``spacing_source`` for
        :func:`~mmchh.apis.predict_landmarks` on ``paths``."""
        if self.per_image is not None:
            return [self.per_image.get(p) for p in paths], 'file'
        return self.argument, 'argument'

    def record(self) -> Dict[str, Any]:
        """What a run's header says of its spacing: ``order`` (the sources
        tried, :data:`SPACING_SOURCES`), ``argument``, ``file`` and
        ``overrides_header``."""
        argument: Optional[List[float]] = None if self.argument is None \
            else list(self.argument)
        return dict(order=list(SPACING_SOURCES), argument=argument,
                    file=self.file, overrides_header=self.overrides_header)
