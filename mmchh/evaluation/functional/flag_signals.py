# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What each flag signal catches: recall of erroneous and catastrophic
landmarks and the false-flag rate on good ones, with image-bootstrap
intervals.

A landmark is flagged for review by its ERE (a spread-out map), by the
configuration model (a landmark off the shape the others give: a sharp map
in the wrong place), or by either (the head's ``keypoint_flagged``). For
one signal ``f`` (a bool per landmark) and the radial errors ``e``:

- ``erroneous_recall`` = mean of ``f`` over landmarks with ``e >
  erroneous`` (2 mm by default): the fraction of the errors it catches;
- ``catastrophic_recall`` = mean of ``f`` over ``e > catastrophic``
  (10 mm): the gross misses a reviewer must not be left to find;
- ``false_flag_rate`` = mean of ``f`` over ``e <= erroneous``: the review
  work it costs on landmarks that were fine.

Each is a pooled fraction over landmarks (NaN when its group is empty), so
its interval is :func:`~.bootstrap.bootstrap_mean` of the 0/1 flags with
the group as the valid mask, resampling whole images (the landmarks of one
image share its anatomy and contrast).

Note:
    Every array is (M,) over the counted landmarks of all images;
    ``image_ids`` (M,) names each one's image.
"""
from typing import Dict, Optional

import numpy as np

from .bootstrap import BootstrapInterval, BootstrapOptions, bootstrap_mean

__all__ = [
    'FLAG_SIGNALS', 'FLAG_SIGNAL_RATES', 'flag_signal_groups',
    'flag_signal_rates', 'flag_signal_intervals'
]

#: The signals reported, in order: the ERE flag alone, the configuration
#: flag alone, and either (what the head flags).
FLAG_SIGNALS = ('ere', 'implausible', 'combined')
#: The rates reported for each signal.
FLAG_SIGNAL_RATES = ('erroneous_recall', 'catastrophic_recall',
                     'false_flag_rate')


def flag_signal_groups(error: np.ndarray, erroneous: float,
                       catastrophic: float) -> Dict[str, np.ndarray]:
    """The landmarks each rate is taken over.

    Args:
        error (np.ndarray): (M,) radial errors.
        erroneous (float): Error above which a landmark is erroneous.
        catastrophic (float): Error above which it is catastrophic.

    Returns:
        dict: rate name -> (M,) bool: ``erroneous_recall`` (``error >
        erroneous``), ``catastrophic_recall`` (``error > catastrophic``),
        ``false_flag_rate`` (the good ones, ``error <= erroneous``).
    """
    error = np.asarray(error, np.float64)
    bad = error > erroneous
    return dict(erroneous_recall=bad,
                catastrophic_recall=error > catastrophic,
                false_flag_rate=~bad)


def flag_signal_rates(flagged: np.ndarray, error: np.ndarray,
                      erroneous: float,
                      catastrophic: float) -> Dict[str, float]:
    """The three rates of one signal (see the module docstring).

    Args:
        flagged (np.ndarray): (M,) bool, the signal.
        error (np.ndarray): (M,) radial errors.
        erroneous (float): Error above which a landmark is erroneous.
        catastrophic (float): Error above which it is catastrophic.

    Returns:
        dict: each of :data:`FLAG_SIGNAL_RATES` as a fraction in [0, 1];
        NaN when no landmark is in its group (no error to catch, or no good
        landmark).
    """
    flagged = np.asarray(flagged, bool)
    out = {}
    for rate, group in flag_signal_groups(error, erroneous,
                                          catastrophic).items():
        out[rate] = float(flagged[group].mean()) if group.any() else \
            float('nan')
    return out


def flag_signal_intervals(flagged: np.ndarray,
                          error: np.ndarray,
                          erroneous: float,
                          catastrophic: float,
                          image_ids: Optional[np.ndarray] = None,
                          num_resamples: int = 1000,
                          level: float = 0.95,
                          seed: int = 0) -> Dict[str, BootstrapInterval]:
    """The image-bootstrap interval of each rate of one signal.

    Args:
        flagged, error, erroneous, catastrophic: As in
            :func:`flag_signal_rates`.
        image_ids (np.ndarray, optional): (M,) image of each landmark.
        num_resamples, level, seed: As in
            :class:`~.bootstrap.BootstrapOptions`.

    Returns:
        dict: rate name -> :class:`~.bootstrap.BootstrapInterval` (its
        ``estimate`` is :func:`flag_signal_rates`'s value; NaN with a
        reason where a group is empty in too many resamples).
    """
    values = np.asarray(flagged, bool).astype(np.float64)
    options = BootstrapOptions(num_resamples=num_resamples, level=level,
                               seed=seed)
    return {
        rate: bootstrap_mean(values, image_ids, valid=group, options=options)
        for rate, group in flag_signal_groups(error, erroneous,
                                              catastrophic).items()
    }
