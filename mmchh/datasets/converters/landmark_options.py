# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Checks of :func:`~.landmarks.convert_landmarks`' options: keypoint
names, annotator names, exactly one annotation source, the duplicate
policy and groups file, and the generic options (:mod:`.validation`).

The options that travel together through a conversion are grouped:
:class:`AnnotationSources` (where the landmarks come from) and
:class:`SplitOptions` (how the images are held out)."""
import os.path as osp
import re
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from .duplicates import DUPLICATE_POLICIES
from .errors import ConversionError
from .validation import (check_count, check_resize, check_spacing,
                         check_split_seed, check_test_fraction)

__all__ = [
    'AnnotationSources', 'SplitOptions', 'check_annotator_name',
    'check_landmark_options'
]

@dataclass(frozen=True)
class AnnotationSources:
    """Where a conversion's landmarks come from (give exactly one).

    Attributes:
        labelme (dict, optional): annotator -> folder of labelme JSON.
        csv (str, optional): A long-format CSV file.
        coco (str, optional): A COCO-keypoint file.
    """
    labelme: Optional[Dict[str, str]] = None
    csv: Optional[str] = None
    coco: Optional[str] = None

    def paths(self) -> List[str]:
        """Every folder and file given, labelme folders first."""
        return [*(self.labelme or {}).values(),
                *(p for p in (self.csv, self.coco) if p)]


@dataclass(frozen=True)
class SplitOptions:
    """How a conversion holds its images out into splits.

    Attributes:
        test_fraction (float): Share of the images held out as ``test``
            (1: every image, a test-only conversion).
        num_val (int, optional): Images held out for validation; None: 10 %
            of the rest, at least 1, at most 15.
        num_calib (int, optional): The same for calibration.
        split_seed (int): Seed of the held-out selections.
        duplicates (str): What to do with duplicate images
            (:data:`~.duplicates.DUPLICATE_POLICIES`).
        groups (str, optional): CSV ``image,group``: each group's images
            share a split.
    """
    test_fraction: float = 0.2
    num_val: Optional[int] = None
    num_calib: Optional[int] = None
    split_seed: int = 0
    duplicates: str = 'together'
    groups: Optional[str] = None


#: A name usable in ``keypoints_<NAME>`` and ``--gt NAME``.
_ANNOTATOR_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*$')


def _check_keypoints(keypoints) -> List[str]:
    names = list(keypoints or [])
    if not names or not all(
            isinstance(n, str) and n.strip() == n and n for n in names):
        raise ConversionError('--keypoints must name at least one keypoint '
                              f'(non-empty names); got {keypoints!r}')
    repeated = sorted(n for n, c in Counter(names).items() if c > 1)
    if repeated:
        raise ConversionError(f'--keypoints names {", ".join(repeated)} more '
                              'than once')
    return names


def check_annotator_name(name: str, option: str) -> None:
    """An annotator name usable in ``keypoints_<NAME>`` and ``--gt``."""
    if not isinstance(name,
                      str) or not _ANNOTATOR_RE.match(name) or name == 'mean':
        raise ConversionError(
            f'{option}: annotator name {name!r} must be letters, digits, '
            '"_", "-" or "." (and not "mean")')


def _check_source(sources: AnnotationSources) -> None:
    labelme, csv, coco = sources.labelme, sources.csv, sources.coco
    given = [
        n
        for n, v in (('--labelme', labelme), ('--csv', csv), ('--coco', coco))
        if v
    ]
    if len(given) != 1:
        raise ConversionError('give exactly one annotation source: --labelme '
                              f'ANNOTATOR=DIR ..., --csv FILE or --coco FILE; '
                              f'got {", ".join(given) or "none"}')
    for annotator in (labelme or {}):
        check_annotator_name(annotator, f'--labelme {annotator}=...')
    for path in (csv, coco):
        if path and not osp.isfile(path):
            raise ConversionError(f'{path}: annotation file does not exist')


def check_landmark_options(
        keypoints, sources: AnnotationSources, resize, spacing,
        splits: SplitOptions) -> Tuple[List[str], Optional[Tuple[int, int]],
                                       Optional[np.ndarray]]:
    """Checks every option.

    Returns:
        tuple: The keypoint names, the resize and the spacing ((2, ) or
        None).

    Raises:
        ConversionError: naming the option and the value given.
    """
    keypoints = _check_keypoints(keypoints)
    _check_source(sources)
    resize = check_resize(resize)
    spacing_xy = None if spacing is None else check_spacing(spacing)
    check_count('num-val', splits.num_val)
    check_count('num-calib', splits.num_calib)
    check_split_seed(splits.split_seed)
    check_test_fraction(splits.test_fraction)
    if splits.duplicates not in DUPLICATE_POLICIES:
        raise ConversionError(f'--duplicates {splits.duplicates}: choose one '
                              f'of {", ".join(DUPLICATE_POLICIES)}')
    if splits.groups is not None and not osp.isfile(splits.groups):
        raise ConversionError(f'--groups {splits.groups}: file does not '
                              'exist')
    return keypoints, resize, spacing_xy
