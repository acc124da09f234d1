# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Checks of :func:`~.landmarks.convert_landmarks`' options: keypoint
names, annotator names, exactly one annotation source, the duplicate
policy and groups file, and the generic options (:mod:`.validation`)."""
import os.path as osp
import re
from collections import Counter
from typing import List

from .duplicates import DUPLICATE_POLICIES
from .errors import ConversionError
from .validation import (check_count, check_resize, check_spacing,
                         check_split_seed, check_test_fraction)

__all__ = ['check_annotator_name', 'check_landmark_options']

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


def _check_source(labelme, csv, coco) -> None:
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


def check_landmark_options(keypoints, labelme, csv, coco, resize, spacing,
                           num_val, num_calib, split_seed, test_fraction,
                           duplicates='together', groups=None):
    """Checks every option; returns the keypoint names, the resize and the
    spacing ((2, ) or None)."""
    keypoints = _check_keypoints(keypoints)
    _check_source(labelme, csv, coco)
    resize = check_resize(resize)
    spacing_xy = None if spacing is None else check_spacing(spacing)
    check_count('num-val', num_val)
    check_count('num-calib', num_calib)
    check_split_seed(split_seed)
    check_test_fraction(test_fraction)
    if duplicates not in DUPLICATE_POLICIES:
        raise ConversionError(f'--duplicates {duplicates}: choose one of '
                              f'{", ".join(DUPLICATE_POLICIES)}')
    if groups is not None and not osp.isfile(groups):
        raise ConversionError(f'--groups {groups}: file does not exist')
    return keypoints, resize, spacing_xy
