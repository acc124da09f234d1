# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Holding val (model selection) and calib (temperature scaling) out of the
training images by a fixed seed, so temperatures are never fitted on a test
set."""
from typing import Dict, List, Optional, Sequence

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


def default_hold_out(num_train: int) -> int:
    """Images held out per split (val, calib) when not given: 10 % of the
    training images, at least 1 and at most 15 (15 of ISBI's 150, the
    paper-sized split)."""
    return int(min(15, max(1, round(0.1 * num_train))))


def hold_out_splits(stems: Sequence[str], num_val: Optional[int],
                    num_calib: Optional[int],
                    seed: int) -> Dict[str, List[str]]:
    """Splits training stems into train / val / calib by a fixed seed.

    ``None`` for a count means :func:`default_hold_out`; a count must be at
    least 1 and leave at least 1 training image.

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
    order = np.random.default_rng(seed).permutation(len(stems))
    picked = [stems[i] for i in order]
    return dict(val=sorted(picked[:num_val]),
                calib=sorted(picked[num_val:num_val + num_calib]),
                train=sorted(picked[num_val + num_calib:]))


def hold_out_test(stems: Sequence[str], fraction: float,
                  seed: int) -> Dict[str, List[str]]:
    """Splits stems into development (``rest``) and ``test`` by a fixed
    seed: ``round(fraction * N)`` test images, at least 1 when
    ``fraction > 0``.

    Raises:
        ConversionError: for a fraction outside [0, 1) or one that leaves
            no development image.
    """
    check_test_fraction(fraction)
    num_test = 0 if fraction == 0 else max(1,
                                           int(round(fraction * len(stems))))
    if num_test >= len(stems):
        raise ConversionError(
            f'--test-fraction {fraction} of {len(stems)} images leaves none '
            'to train on; lower it')
    # a stream of its own: the val/calib draw of the rest stays as it is
    order = np.random.default_rng([seed, 1]).permutation(len(stems))
    picked = [stems[i] for i in order]
    return dict(test=sorted(picked[:num_test]),
                rest=sorted(picked[num_test:]))
