# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Image bootstrap of vectorised statistics, all resamples at once.

:func:`~.bootstrap.image_bootstrap` calls its statistic once per resample,
in Python: with an AUC or a rank correlation, 1000 resamples take seconds.
:func:`weighted_bootstrap` draws the SAME resamples (the seeded
:func:`~.bootstrap.bootstrap_indices`, counted by
:func:`~.bootstrap.bootstrap_counts`) but hands the statistic one (R, M)
weight matrix: row r holds, for every data row, how often its image
occurs in resample r. A statistic that
treats a weight as a multiplicity (:mod:`.weighted_statistics`) then gives
exactly the value it would give on the materialised resample, for all R
resamples in a few array operations. Resamples are processed in chunks so
the weight matrix stays within :data:`CHUNK_BYTES`.
"""
from typing import Callable, Optional

import numpy as np

from .bootstrap import (ArrayLike, Data, ImageGroups, as_arrays,
                        bootstrap_counts, paired_groups)
from .bootstrap_interval import (DEFAULT_OPTIONS, BootstrapInterval,
                                 BootstrapOptions, no_interval,
                                 percentile_interval)

#: Largest (R, M) float64 weight matrix handed to the statistic at once:
#: small enough for the statistic's temporaries to stay in cache
CHUNK_BYTES = 2 * 2**20


def weighted_bootstrap(statistic: Callable[..., np.ndarray],
                       data: Data,
                       image_ids: Optional[ArrayLike] = None,
                       *,
                       options: BootstrapOptions = DEFAULT_OPTIONS
                       ) -> BootstrapInterval:
    """Bootstrap interval of a row-weighted statistic, resampling images.

    Args:
        statistic (callable): ``statistic(weights, *arrays) -> (R,)``:
            ``weights`` (R, M) float64 non-negative multiplicities of the M
            data rows, one resample per row; it returns one value per row,
            NaN where undefined (e.g. an AUC on a resample with one class).
            E.g. :func:`~.weighted_statistics.weighted_roc_auc`.
        data (array or tuple of arrays): As in
            :func:`~.bootstrap.image_bootstrap`: M rows, with
            ``image_ids`` one per landmark, without one per image.
        image_ids (array, optional): (M,) image of each row; None: each row
            of ``data`` is one image.
        options (BootstrapOptions): As in
            :func:`~.bootstrap.image_bootstrap`.

    Returns:
        BootstrapInterval: ``estimate`` = the statistic with one row of
        ones (the original data); the interval as
        :func:`~.bootstrap.image_bootstrap` gives it for the same seed when
        the statistic equals the plain one on the materialised resample.

    Note:
        Shapes: ``weights`` (R_c, M) with R_c <= R resamples of a chunk;
        the statistic must return (R_c,) (a ValueError otherwise).
    """
    arrays = as_arrays(data, 'data')
    groups = ImageGroups(arrays, image_ids)
    rows = arrays[0].shape[0]
    estimate = float(_evaluate(statistic, np.ones((1, rows)), arrays)[0])
    if groups.num_images < 2:
        return no_interval(estimate, options, groups.num_images)
    samples = _resampled(statistic, arrays, groups, options)
    return percentile_interval(estimate, samples, options, groups.num_images)


def paired_weighted_bootstrap(statistic: Callable[..., np.ndarray],
                              data_a: Data,
                              data_b: Data,
                              image_ids: Optional[ArrayLike] = None,
                              *,
                              options: BootstrapOptions = DEFAULT_OPTIONS
                              ) -> BootstrapInterval:
    """Interval of ``statistic(b) - statistic(a)`` on the same resampled
    images, all resamples at once.

    The vectorised counterpart of :func:`~.bootstrap.paired_bootstrap`
    (one statistic, two data sets of the same rows: e.g. the uncalibrated
    and the calibrated predictions of the same landmarks), drawing the same
    resamples for the same seed.

    Args:
        statistic (callable): As in :func:`weighted_bootstrap`.
        data_a (array or tuple of arrays): Data of a, M rows.
        data_b (array or tuple of arrays): Data of b, the same M rows (the
            same images and landmarks, in the same order).
        image_ids (array, optional): (M,) image of each row, shared.
        options (BootstrapOptions): As in
            :func:`~.bootstrap.image_bootstrap`.

    Returns:
        BootstrapInterval: ``estimate = estimate_b - estimate_a`` with both
        ends, ``prob_positive`` the fraction of valid resamples with
        ``b - a > 0``; a resample fails when either side is not finite.
    """
    arrays_a = as_arrays(data_a, 'data_a')
    arrays_b = as_arrays(data_b, 'data_b')
    groups = paired_groups(arrays_a, arrays_b, image_ids)
    ones = np.ones((1, arrays_a[0].shape[0]))
    est_a = float(_evaluate(statistic, ones, arrays_a)[0])
    est_b = float(_evaluate(statistic, ones, arrays_b)[0])
    if groups.num_images < 2:
        return no_interval(est_b - est_a, options, groups.num_images, est_a,
                           est_b)

    def difference(weights, *arrays):
        return (_evaluate(statistic, weights, arrays[len(arrays_a):]) -
                _evaluate(statistic, weights, arrays[:len(arrays_a)]))

    samples = _resampled(difference, arrays_a + arrays_b, groups, options)
    return percentile_interval(est_b - est_a, samples, options,
                               groups.num_images, est_a, est_b)


def _resampled(statistic: Callable[..., np.ndarray], arrays, groups,
               options: BootstrapOptions) -> np.ndarray:
    """(R,) statistic of every resample, in chunks of at most
    :data:`CHUNK_BYTES` of weights."""
    rows = arrays[0].shape[0]
    num_resamples = options.num_resamples
    counts = bootstrap_counts(groups.num_images, num_resamples, options.seed)
    chunk = max(1, CHUNK_BYTES // (8 * max(rows, 1)))
    samples = np.empty(num_resamples)
    for start in range(0, num_resamples, chunk):
        # np.take keeps (R_c, M) C-ordered (fancy [:, codes] would not)
        weights = np.take(counts[start:start + chunk], groups.codes, axis=1)
        samples[start:start + chunk] = _evaluate(statistic, weights, arrays)
    return samples


def _evaluate(statistic: Callable[..., np.ndarray], weights: np.ndarray,
              arrays) -> np.ndarray:
    """The statistic's (R,) float64 values, or a ValueError on a bad
    shape."""
    values = np.asarray(statistic(weights, *arrays), dtype=np.float64)
    if values.shape != (weights.shape[0], ):
        raise ValueError('statistic must return one value per weight row, '
                         f'shape ({weights.shape[0]},); got {values.shape}')
    return values
