# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Paired comparison of two test runs over the same images, with intervals.

Before/after calibration, one training recipe against another, mode against
sub-pixel decoding: the two runs predict the SAME landmarks, so their
difference is judged on the same resampled images
(:func:`~.bootstrap_weighted.paired_weighted_bootstrap`), which removes the
image-to-image spread both runs share and gives a far narrower interval
than two separate intervals would suggest.

Each run is the per-landmark table ``UncertaintyMetric`` writes as
``<prefix>_landmarks.npz`` (``sample``, ``landmark``, ``error``, ``ere``,
``confidence``, ``hit``, ``nll``, ``counted``, ``invalid``, ``unit``);
:func:`compare_runs` lines the two up by (sample, landmark).
"""
from typing import Dict, Mapping, Sequence, Tuple

import numpy as np

from .bootstrap import BootstrapInterval, BootstrapOptions
from .bootstrap_weighted import paired_weighted_bootstrap
from .weighted_statistics import (weighted_ece, weighted_mean,
                                  weighted_pearson, weighted_roc_auc,
                                  weighted_spearman)

__all__ = ['RUN_STATISTICS', 'align_runs', 'compare_runs']

#: The statistics :func:`compare_runs` knows and the columns each reads.
RUN_STATISTICS = {
    'MRE': ('error', ),
    'SDR': ('error', ),
    'MERE': ('ere', ),
    'NLL': ('nll', ),
    'ECE': ('confidence', 'hit'),
    'pearson': ('ere', 'error'),
    'spearman': ('ere', 'error'),
    'AUC': ('ere', 'error'),
}
_COLUMNS = ('sample', 'landmark', 'counted', 'invalid', 'unit')


def align_runs(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray],
               names: Tuple[str, str] = ('a', 'b')
               ) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """The counted landmarks of two runs, in the same (sample, landmark)
    order.

    Args:
        a, b (Mapping): Per-landmark columns of each run (see the module
            docstring); every array (M,) except the 0-d ``unit``.
        names (tuple): How errors name the two runs (e.g. their files).

    Returns:
        tuple[dict, dict]: Both runs restricted to their counted landmarks,
        sorted by (sample, landmark).

    Raises:
        ValueError: A column is missing, a run has an invalid prediction
            among its counted landmarks, a (sample, landmark) pair repeats,
            the units differ, or the two runs did not count the same
            landmarks of the same images (a paired comparison needs them).
    """
    out = []
    for run, name in zip((a, b), names):
        missing = [k for k in _COLUMNS if k not in run]
        if missing:
            raise ValueError(f'{name}: no column(s) {missing}; expected the '
                             'per-landmark table of UncertaintyMetric')
        keep = np.asarray(run['counted'], bool).reshape(-1)
        invalid = np.asarray(run['invalid'], bool).reshape(-1) & keep
        if invalid.any():
            raise ValueError(
                f'{name}: {int(invalid.sum())} counted landmarks have no '
                'valid prediction; a comparison with them is undefined')
        cols = {
            k: np.asarray(v)[keep] if np.ndim(v) else np.asarray(v)
            for k, v in run.items()
        }
        order = np.lexsort((cols['landmark'], cols['sample']))
        cols = {k: v[order] if np.ndim(v) else v for k, v in cols.items()}
        key = np.char.add(np.char.add(cols['sample'].astype(str), '#'),
                          cols['landmark'].astype(str))
        if np.unique(key).size != key.size:
            raise ValueError(f'{name}: a (sample, landmark) pair occurs '
                             'twice (two images with the same name?)')
        out.append(cols)
    ua, ub = str(out[0]['unit']), str(out[1]['unit'])
    if ua != ub:
        raise ValueError(f'{names[0]} has errors in {ua}, {names[1]} in {ub}')
    if not (np.array_equal(out[0]['sample'], out[1]['sample'])
            and np.array_equal(out[0]['landmark'], out[1]['landmark'])):
        only_a = set(out[0]['sample']) - set(out[1]['sample'])
        only_b = set(out[1]['sample']) - set(out[0]['sample'])
        raise ValueError(
            f'{names[0]} and {names[1]} did not count the same landmarks of '
            f'the same images ({len(only_a)} images only in {names[0]}, '
            f'{len(only_b)} only in {names[1]}); a paired comparison needs '
            'the same test set')
    return out[0], out[1]


def compare_runs(a: Mapping[str, np.ndarray],
                 b: Mapping[str, np.ndarray],
                 statistics: Sequence[str] = ('MRE', 'NLL', 'ECE', 'AUC'),
                 erroneous: float = 2.0,
                 sdr_threshold: float = 2.0,
                 num_bins: int = 10,
                 names: Tuple[str, str] = ('a', 'b'),
                 num_resamples: int = 1000,
                 level: float = 0.95,
                 seed: int = 0) -> Dict[str, BootstrapInterval]:
    """``b - a`` of each statistic with its paired image-bootstrap interval.

    Args:
        a, b (Mapping): The two runs' per-landmark tables (see
            :func:`align_runs`).
        statistics (sequence): Names from :data:`RUN_STATISTICS`: ``MRE``
            and ``MERE`` (mean radial error / ERE), ``SDR`` (% of errors
            below ``sdr_threshold``), ``NLL``, ``ECE`` (the paper's bins,
            ``num_bins``), ``pearson`` / ``spearman`` (ERE vs error),
            ``AUC`` (ERE detecting errors above ``erroneous``).
        erroneous (float): Error above which a landmark is erroneous, in
            the runs' unit (mm, or image px without spacing).
        sdr_threshold (float): The SDR radius, in the runs' unit.
        num_bins (int): ECE bins.
        names (tuple): How errors name the two runs.
        num_resamples, level, seed: Of the bootstrap (resamples images).

    Returns:
        dict: statistic -> :class:`BootstrapInterval` of ``b - a``
        (``estimate_a`` / ``estimate_b`` the two runs' values).
    """
    unknown = [s for s in statistics if s not in RUN_STATISTICS]
    if unknown:
        raise ValueError(f'unknown statistics {unknown}; choose from '
                         f'{list(RUN_STATISTICS)}')
    a, b = align_runs(a, b, names)
    options = BootstrapOptions(num_resamples=num_resamples, level=level,
                               seed=seed)
    functions = {
        'MRE': weighted_mean,
        'SDR': lambda w, e: weighted_mean(w, (e < sdr_threshold) * 100.0),
        'MERE': weighted_mean,
        'NLL': weighted_mean,
        'ECE': lambda w, c, h: weighted_ece(w, c, h, num_bins, 'max'),
        'pearson': weighted_pearson,
        'spearman': weighted_spearman,
        'AUC': lambda w, s, e: weighted_roc_auc(w, s, e > erroneous),
    }
    out = {}
    for name in statistics:
        columns = RUN_STATISTICS[name]
        out[name] = paired_weighted_bootstrap(
            functions[name], tuple(a[c] for c in columns),
            tuple(b[c] for c in columns), image_ids=a['sample'],
            options=options)
    return out
