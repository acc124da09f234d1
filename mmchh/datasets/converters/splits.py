# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Holding val (model selection) and calib (temperature scaling) out of the
training images by a fixed seed, so temperatures are never fitted on a test
set.

A selection moves whole *units*: images that must share a split (one
patient's images, one radiograph's copies: :func:`~.duplicates.split_units`).
The seed permutes the units; a held-out split takes units in that order
until it holds at least its count, so with units of several images it may
hold more (at most the count plus the largest unit less one). Without units
every image is its own, and the selection is image by image as before.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import ConversionError
from .validation import check_count, check_test_fraction

__all__ = [
    'SPLITS', 'LANDMARK_SPLITS', 'default_hold_out', 'hold_out_splits',
    'hold_out_test'
]

#: Every split an ISBI conversion writes, in order.
SPLITS = ('train', 'val', 'calib', 'test1', 'test2')

#: Every split a general landmark conversion writes, in order.
LANDMARK_SPLITS = ('train', 'val', 'calib', 'test')



def _units(stems: Sequence[str],
           units: Optional[Sequence[Sequence[str]]]) -> List[Tuple[str, ...]]:
    """``units`` (checked to cover ``stems`` exactly), or one per stem."""
    if units is None:
        return [(s, ) for s in stems]
    covered = sorted(s for u in units for s in u)
    if covered != sorted(stems):
        raise ValueError('the units must cover the stems exactly once')
    return [tuple(u) for u in units]


def _take(units: Sequence[Tuple[str, ...]], count: int
          ) -> Tuple[List[str], List[Tuple[str, ...]]]:
    """Units from the front until they hold >= ``count`` images: (their
    stems, the units left)."""
    taken: List[str] = []
    i = 0
    while len(taken) < count and i < len(units):
        taken += units[i]
        i += 1
    return taken, list(units[i:])


def default_hold_out(num_train: int) -> int:
    """Images held out per split (val, calib) when not given: 10 % of the
    training images, at least 1 and at most 15 (15 of ISBI's 150, the
    paper-sized split)."""
    return int(min(15, max(1, round(0.1 * num_train))))


def hold_out_splits(
        stems: Sequence[str],
        num_val: Optional[int],
        num_calib: Optional[int],
        seed: int,
        units: Optional[Sequence[Sequence[str]]] = None
) -> Dict[str, List[str]]:
    """Splits training stems into train / val / calib by a fixed seed.

    ``None`` for a count means :func:`default_hold_out`; a count must be at
    least 1 and leave at least 1 training image. ``units`` (None: each stem
    alone) are moved whole; val and calib then hold at least their count.

    Raises:
        ConversionError: for a count below 1 or too many held out.
    """
    check_count('num-val', num_val)
    check_count('num-calib', num_calib)
    if num_val is None:
        num_val = default_hold_out(len(stems))
    if num_calib is None:
        num_calib = default_hold_out(len(stems))
    if num_val + num_calib >= len(stems):
        raise ConversionError(
            f'cannot hold out {num_val} val + {num_calib} calib images of '
            f'{len(stems)} training images; lower --num-val/--num-calib')
    units = _units(stems, units)
    order = np.random.default_rng(seed).permutation(len(units))
    val, rest = _take([units[i] for i in order], num_val)
    calib, rest = _take(rest, num_calib)
    train = [s for u in rest for s in u]
    if not train:
        raise ConversionError(
            f'holding out {num_val} val + {num_calib} calib images of '
            f'{len(stems)} leaves no training image: patient groups or '
            'duplicate clusters are too large; lower --num-val/--num-calib')
    return dict(val=sorted(val), calib=sorted(calib), train=sorted(train))


def hold_out_test(
        stems: Sequence[str],
        fraction: float,
        seed: int,
        units: Optional[Sequence[Sequence[str]]] = None
) -> Dict[str, List[str]]:
    """Splits stems into development (``rest``) and ``test`` by a fixed
    seed: ``round(fraction * N)`` test images, at least 1 when
    ``fraction > 0``; with ``units`` (moved whole) at least that many.
    ``fraction`` 1 makes every image a test image (a test-only conversion,
    e.g. a reviewed batch of any size, one image included).

    Raises:
        ConversionError: for a fraction outside [0, 1] or one below 1 that
            leaves no development image.
    """
    check_test_fraction(fraction)
    if fraction == 1:
        _units(stems, units)
        return dict(test=sorted(stems), rest=[])
    num_test = 0 if fraction == 0 else max(1,
                                           int(round(fraction * len(stems))))
    if num_test >= len(stems):
        raise ConversionError(
            f'--test-fraction {fraction} of {len(stems)} images leaves none '
            'to train on; lower it, or give --test-fraction 1 for a '
            'test-only conversion')
    units = _units(stems, units)
    # a stream of its own: the val/calib draw of the rest stays as it is
    order = np.random.default_rng([seed, 1]).permutation(len(units))
    test, rest = _take([units[i] for i in order], num_test)
    if not rest:
        raise ConversionError(
            f'--test-fraction {fraction} of {len(stems)} images leaves none '
            'to train on once patient groups and duplicate clusters are kept '
            'whole; lower it, or give --test-fraction 1 for a test-only '
            'conversion')
    return dict(test=sorted(test), rest=sorted(s for u in rest for s in u))
