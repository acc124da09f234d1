# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Image-level bootstrap confidence intervals, numpy.

Landmarks of one image are not independent (one image's contrast, anatomy
and annotator share all of them), so every interval here resamples whole
IMAGES with replacement: :func:`bootstrap_indices` draws the seeded (R, N)
image indices; :func:`image_bootstrap` gives an interval of any
scalar statistic of the per-landmark data; :func:`paired_bootstrap` gives
the interval of a before/after difference ``b - a`` computed on the SAME
resampled images; :func:`bootstrap_mean` and :func:`paired_bootstrap_mean`
are the fast special cases for pooled means (MRE, NLL, coverage, SDR),
resampling the per-image sums and counts with one (R, N) @ (N,) product.

Intervals are read off the resampled statistics by quantiles. The plain
percentile interval (``method='percentile'``) under-covers with few images:
for a mean over N images its half-width is about ``sqrt((N - 1) / N) z``
standard errors where ``t_{N-1}`` are needed, so a 90 % interval covers
~87 % with 15 images (measured 0.85-0.89 over six simulation seeds in
tests/test_evaluation/test_functional/test_bootstrap.py). The default is
therefore the expanded percentile interval (``method='expanded'``;
Hesterberg, "What teachers should know about the bootstrap", The American
Statistician 69(4), 2015), which widens the quantile levels by that factor
and covers near nominal from ~10 images.

For one seed the same image indices are drawn by every function, so a mean
bootstrapped by :func:`bootstrap_mean` equals :func:`image_bootstrap` with
a mean statistic, resample by resample; so does
:func:`.bootstrap_weighted.weighted_bootstrap`, which evaluates a vectorised
statistic on all resamples at once (AUC, correlations, ECE:
:mod:`.weighted_statistics`).

The settings every function shares (resamples, level, seed, failure
tolerance, interval method) travel as one
:class:`~.bootstrap_interval.BootstrapOptions`, so a caller that
bootstraps many statistics of the same images states them once and every
interval of it is drawn alike.

Undefined resamples (the statistic returns a non-finite value, e.g. an AUC
on a resample with one class) are dropped and counted in ``num_failed``;
when more than ``max_failed_fraction`` of the resamples fail, the interval
is NaN with a reason (dropping them would bias it). With fewer than 2
images there is no interval either (NaN with a reason), never a crash.
"""
from functools import lru_cache
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
from torch import Tensor

from .bootstrap_interval import (DEFAULT_OPTIONS, BootstrapInterval,
                                 BootstrapOptions, no_interval,
                                 percentile_interval, positive_int)

ArrayLike = Union[np.ndarray, Tensor, Sequence]
Data = Union[ArrayLike, Tuple[ArrayLike, ...]]


def bootstrap_indices(num_images: int, num_resamples: int,
                      seed: int) -> np.ndarray:
    """Seeded image indices of the bootstrap resamples.

    Args:
        num_images (int): Number of images N (>= 1).
        num_resamples (int): Number of resamples R (>= 1).
        seed (int): Seed of ``np.random.default_rng``.

    Returns:
        np.ndarray: (R, N) int64, row r = the images of resample r, drawn
        uniformly with replacement.
    """
    num_images = positive_int(num_images, 'num_images')
    num_resamples = positive_int(num_resamples, 'num_resamples')
    rng = np.random.default_rng(seed)
    return rng.integers(0, num_images, size=(num_resamples, num_images),
                        dtype=np.int64)


def resample_counts(indices: np.ndarray, num_images: int) -> np.ndarray:
    """How often each image occurs in each resample.

    Args:
        indices (np.ndarray): (R, N') image indices in ``[0, num_images)``.
        num_images (int): Number of images N.

    Returns:
        np.ndarray: (R, N) float64 counts; each row sums to N'.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 2:
        raise ValueError(f'indices must be (R, N); got shape {indices.shape}')
    r = indices.shape[0]
    flat = indices + num_images * np.arange(r, dtype=np.int64)[:, None]
    counts = np.bincount(flat.ravel(), minlength=r * num_images)
    return counts.reshape(r, num_images).astype(np.float64)


def bootstrap_counts(num_images: int, num_resamples: int,
                     seed) -> np.ndarray:
    """:func:`resample_counts` of the seeded :func:`bootstrap_indices`.

    One evaluation bootstraps many statistics of the same images with one
    seed; the counts of an integer seed are drawn once and cached
    (read-only, the last 4 draws of at most 2**23 counts each kept).

    Args:
        num_images (int): Number of images N (>= 1).
        num_resamples (int): Number of resamples R (>= 1).
        seed (int): Seed of :func:`bootstrap_indices`.

    Returns:
        np.ndarray: (R, N) float64 counts (read-only when cached).
    """
    num_images = positive_int(num_images, 'num_images')
    num_resamples = positive_int(num_resamples, 'num_resamples')
    small = num_images * num_resamples <= 2**23  # <= 64 MiB cached
    if small and isinstance(seed, (int, np.integer)) and \
            not isinstance(seed, bool):
        return _cached_counts(num_images, num_resamples, int(seed))
    return resample_counts(
        bootstrap_indices(num_images, num_resamples, seed), num_images)


@lru_cache(maxsize=4)
def _cached_counts(num_images: int, num_resamples: int,
                   seed: int) -> np.ndarray:
    counts = resample_counts(
        bootstrap_indices(num_images, num_resamples, seed), num_images)
    counts.flags.writeable = False
    return counts


def image_bootstrap(statistic: Callable[..., float],
                    data: Data,
                    image_ids: Optional[ArrayLike] = None,
                    *,
                    options: BootstrapOptions = DEFAULT_OPTIONS
                    ) -> BootstrapInterval:
    """Bootstrap interval of a statistic, resampling whole images.

    Args:
        statistic (callable): ``statistic(*arrays) -> float`` of the
            per-landmark data (one positional argument per array of
            ``data``). It returns NaN when undefined on a resample (e.g.
            an AUC with one class: wrap ``roc_auc``, which raises there);
            exceptions propagate.
        data (array or tuple of arrays): The data (a tuple means several
            arrays, anything else one array), all arrays with the same
            length along axis 0. With ``image_ids``: one row per landmark;
            without: one row per image (e.g. (N, K) errors).
        image_ids (array, optional): (M,) image of each row (any hashable
            values; rows of one image stay together, in their original
            order). None: each row of ``data`` is one image.
        options (BootstrapOptions): Resamples, level, seed, failure
            tolerance and interval method. Default: 1000 resamples, 95 %,
            seed 0, up to 10 % failed, the expanded percentile interval.

    Returns:
        BootstrapInterval: ``estimate`` on the original data, ``low`` /
        ``high`` the quantiles (linear interpolation) of the valid
        resampled statistics named by ``options.method``.

    Note:
        A resample of images ``i_1..i_N`` passes the rows of those images,
        concatenated in that order, to ``statistic``: with image ids the
        arrays keep their trailing shape, (M', ...) with M' the resample's
        landmark count; without, (N, ...).
    """
    arrays = as_arrays(data, 'data')
    groups = ImageGroups(arrays, image_ids)
    estimate = _call(statistic, arrays, 'statistic')
    if groups.num_images < 2:
        return no_interval(estimate, options, groups.num_images)
    indices = bootstrap_indices(groups.num_images, options.num_resamples,
                                options.seed)
    samples = np.array([
        _call(statistic, groups.take(arrays, idx), 'statistic')
        for idx in indices
    ])
    return percentile_interval(estimate, samples, options, groups.num_images)


def paired_bootstrap(statistic_a: Callable[..., float],
                     data_a: Data,
                     data_b: Optional[Data] = None,
                     statistic_b: Optional[Callable[..., float]] = None,
                     image_ids: Optional[ArrayLike] = None,
                     *,
                     options: BootstrapOptions = DEFAULT_OPTIONS
                     ) -> BootstrapInterval:
    """Interval of the difference ``b - a`` on the same resampled images.

    E.g. before/after calibration: ``data_a`` the uncalibrated and
    ``data_b`` the calibrated per-landmark data of the same images, one
    statistic; or one dataset and two statistics.

    Args:
        statistic_a (callable): ``statistic_a(*arrays_a) -> float``.
        data_a (array or tuple of arrays): Data of a, rows as in
            :func:`image_bootstrap`.
        data_b (array or tuple of arrays, optional): Data of b, the same
            number of rows (and the same ``image_ids``). None: ``data_a``.
        statistic_b (callable, optional): Statistic of b. None:
            ``statistic_a``.
        image_ids (array, optional): (M,) image of each row, shared by a
            and b. None: each row is one image.
        options (BootstrapOptions): As in :func:`image_bootstrap`.

    Returns:
        BootstrapInterval: ``estimate = estimate_b - estimate_a``, the
        interval of the resampled differences, ``prob_positive`` the
        fraction of valid resamples with ``b - a > 0``. A resample fails
        when either statistic is not finite.
    """
    arrays_a = as_arrays(data_a, 'data_a')
    arrays_b = arrays_a if data_b is None else as_arrays(data_b, 'data_b')
    statistic_b = statistic_a if statistic_b is None else statistic_b
    groups = paired_groups(arrays_a, arrays_b, image_ids)
    est_a = _call(statistic_a, arrays_a, 'statistic_a')
    est_b = _call(statistic_b, arrays_b, 'statistic_b')
    if groups.num_images < 2:
        return no_interval(est_b - est_a, options, groups.num_images, est_a,
                           est_b)
    indices = bootstrap_indices(groups.num_images, options.num_resamples,
                                options.seed)
    diffs = np.empty(options.num_resamples)
    for r, idx in enumerate(indices):
        a = _call(statistic_a, groups.take(arrays_a, idx), 'statistic_a')
        b = _call(statistic_b, groups.take(arrays_b, idx), 'statistic_b')
        diffs[r] = b - a
    return percentile_interval(est_b - est_a, diffs, options,
                               groups.num_images, est_a, est_b)


def bootstrap_mean(values: ArrayLike,
                   image_ids: Optional[ArrayLike] = None,
                   valid: Optional[ArrayLike] = None,
                   *,
                   options: BootstrapOptions = DEFAULT_OPTIONS
                   ) -> BootstrapInterval:
    """Fast image bootstrap of a pooled mean over landmarks (MRE, NLL, ...).

    The mean over all (valid) landmarks of the resampled images, computed
    from per-image sums and counts: ``(C @ sums) / (C @ counts)`` with C the
    (R, N) :func:`resample_counts`. SDR and coverage are means of 0/1
    values. Equals :func:`image_bootstrap` of the pooled mean for the same
    seed.

    Args:
        values (array): Per-landmark values: (M,) with ``image_ids``, or
            (N, ...) one row per image without.
        image_ids (array, optional): (M,) image of each value. None: each
            row of ``values`` is one image.
        valid (array, optional): Bool, the shape of ``values``; False
            marks a missing landmark, left out of the mean. Default: all.
        options (BootstrapOptions): As in :func:`image_bootstrap`.

    Returns:
        BootstrapInterval: As :func:`image_bootstrap`; a resample whose
        images hold no valid landmark fails (NaN).

    Note:
        Valid values must be finite (a ValueError otherwise); invalid ones
        are ignored whatever they hold.
    """
    sums, counts = _image_sums(values, image_ids, valid, 'values')
    num_images = sums.size
    estimate = _ratio(sums.sum(), counts.sum())
    if num_images < 2:
        return no_interval(estimate, options, num_images)
    weights = bootstrap_counts(num_images, options.num_resamples,
                               options.seed)
    samples = _ratio(weights @ sums, weights @ counts)
    return percentile_interval(estimate, samples, options, num_images)


def paired_bootstrap_mean(values_a: ArrayLike,
                          values_b: ArrayLike,
                          image_ids: Optional[ArrayLike] = None,
                          valid_a: Optional[ArrayLike] = None,
                          valid_b: Optional[ArrayLike] = None,
                          *,
                          options: BootstrapOptions = DEFAULT_OPTIONS
                          ) -> BootstrapInterval:
    """Fast paired bootstrap of ``mean(b) - mean(a)`` on the same images.

    Args:
        values_a (array): Per-landmark values of a, as in
            :func:`bootstrap_mean`.
        values_b (array): Per-landmark values of b, the shape of
            ``values_a`` (the same images, in the same rows).
        image_ids (array, optional): (M,) image of each value, shared.
        valid_a (array, optional): Bool mask of ``values_a``.
        valid_b (array, optional): Bool mask of ``values_b``.
        options (BootstrapOptions): As in :func:`image_bootstrap`.

    Returns:
        BootstrapInterval: As :func:`paired_bootstrap` (equal to it with
        pooled-mean statistics for the same seed).
    """
    values_a, values_b = _numpy(values_a), _numpy(values_b)
    if values_a.shape != values_b.shape:
        raise ValueError('values_a and values_b must have the same shape '
                         '(the same images and landmarks); got '
                         f'{values_a.shape} and {values_b.shape}')
    sums_a, counts_a = _image_sums(values_a, image_ids, valid_a, 'values_a')
    sums_b, counts_b = _image_sums(values_b, image_ids, valid_b, 'values_b')
    num_images = sums_a.size
    est_a = _ratio(sums_a.sum(), counts_a.sum())
    est_b = _ratio(sums_b.sum(), counts_b.sum())
    if num_images < 2:
        return no_interval(est_b - est_a, options, num_images, est_a, est_b)
    weights = bootstrap_counts(num_images, options.num_resamples,
                               options.seed)
    diffs = (_ratio(weights @ sums_b, weights @ counts_b) -
             _ratio(weights @ sums_a, weights @ counts_a))
    return percentile_interval(est_b - est_a, diffs, options, num_images,
                               est_a, est_b)


# --------------------------------------------------------------------------
# helpers (the public ones are shared with :mod:`.bootstrap_weighted`)
# --------------------------------------------------------------------------
class ImageGroups:
    """Rows of each image, for gathering a resample's rows quickly.

    Args:
        arrays (tuple[np.ndarray]): The data, equal lengths along axis 0
            (a ValueError otherwise).
        image_ids (array, optional): (M,) image of each row; None: each row
            is one image.

    Attributes:
        num_images (int): Images N.
        codes (np.ndarray): (M,) int64 image of each row, 0..N-1 (images in
            sorted-id order, the order of :func:`resample_counts` columns).
    """

    def __init__(self, arrays: Tuple[np.ndarray, ...],
                 image_ids: Optional[ArrayLike]):
        rows = arrays[0].shape[0]
        for i, a in enumerate(arrays):
            if a.shape[0] != rows:
                raise ValueError('all data arrays must have the same length '
                                 f'along axis 0; array 0 has {rows} rows, '
                                 f'array {i} has {a.shape[0]}')
        if image_ids is None:
            self.order = None
            self.num_images = rows
            self.codes = np.arange(rows, dtype=np.int64)
            return
        codes = _image_codes(image_ids, rows)
        self.codes = codes.astype(np.int64)
        self.order = np.argsort(codes, kind='stable')
        self.sizes = np.bincount(codes)
        self.starts = np.cumsum(self.sizes) - self.sizes
        self.num_images = self.sizes.size

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Original row indices of the images ``idx``, image by image."""
        if self.order is None:
            return idx
        sizes = self.sizes[idx]
        offsets = np.cumsum(sizes) - sizes
        within = np.arange(sizes.sum()) - np.repeat(offsets, sizes)
        return self.order[np.repeat(self.starts[idx], sizes) + within]

    def take(self, arrays: Tuple[np.ndarray, ...],
             idx: np.ndarray) -> Tuple[np.ndarray, ...]:
        """The arrays restricted to the rows of images ``idx``."""
        rows = self.rows(idx)
        return tuple(a[rows] for a in arrays)


def paired_groups(arrays_a: Tuple[np.ndarray, ...],
                  arrays_b: Tuple[np.ndarray, ...],
                  image_ids: Optional[ArrayLike]) -> ImageGroups:
    """The :class:`ImageGroups` of two data sets of the same rows (a
    ValueError when their row counts differ)."""
    if arrays_b[0].shape[0] != arrays_a[0].shape[0]:
        raise ValueError('data_a and data_b must have the same number of '
                         f'rows (the same images / landmarks); got '
                         f'{arrays_a[0].shape[0]} and {arrays_b[0].shape[0]}')
    return ImageGroups(arrays_a + arrays_b, image_ids)


def _numpy(x: ArrayLike, dtype=None) -> np.ndarray:
    """An array, tensor (any device) or sequence as a numpy array."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _image_codes(image_ids: ArrayLike, rows: int) -> np.ndarray:
    """Image ids as codes 0..N-1 (sorted ids), checked against the rows."""
    ids = _numpy(image_ids)
    if ids.ndim != 1 or ids.shape[0] != rows:
        raise ValueError(f'image_ids must be (M,) with M = {rows} rows of '
                         f'data; got shape {ids.shape}')
    return np.unique(ids, return_inverse=True)[1].reshape(-1)


def as_arrays(data: Data, name: str) -> Tuple[np.ndarray, ...]:
    """One array (or list) or a tuple of arrays as a tuple of >= 1-D arrays
    (a ValueError naming ``name`` otherwise)."""
    items = data if isinstance(data, tuple) else (data, )
    if not items:
        raise ValueError(f'{name} is an empty tuple; give at least one array')
    out = []
    for i, x in enumerate(items):
        x = _numpy(x)
        if x.ndim == 0:
            raise ValueError(f'{name}[{i}] must have at least one axis '
                             '(rows = images or landmarks); got a scalar')
        out.append(x)
    return tuple(out)


def _image_sums(values: ArrayLike, image_ids: Optional[ArrayLike],
                valid: Optional[ArrayLike],
                name: str) -> Tuple[np.ndarray, np.ndarray]:
    """Per-image sums and counts of the valid values, (N,) float64 each."""
    values = _numpy(values, np.float64)
    if values.ndim == 0:
        raise ValueError(f'{name} must have at least one axis; got a scalar')
    if valid is None:
        valid = np.ones(values.shape, dtype=bool)
    else:
        valid = _numpy(valid, bool)
        if valid.shape != values.shape:
            raise ValueError(f'the valid mask of {name} must have its shape '
                             f'{values.shape}; got {valid.shape}')
    if not np.all(np.isfinite(values[valid])):
        raise ValueError(f'{name} holds non-finite values at valid '
                         'landmarks; mark missing landmarks with valid=False')
    masked = np.where(valid, values, 0.0)
    if image_ids is None:
        rows = values.shape[0]
        return (masked.reshape(rows, -1).sum(1),
                valid.reshape(rows, -1).sum(1).astype(np.float64))
    if values.ndim != 1:
        raise ValueError(f'with image_ids, {name} must be (M,) per-landmark '
                         f'values; got shape {values.shape}')
    codes = _image_codes(image_ids, values.shape[0])
    return (np.bincount(codes, weights=masked),
            np.bincount(codes, weights=valid.astype(np.float64)))


def _ratio(num, den):
    """num / den, NaN where den == 0 (no valid landmark)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.divide(num, den, out=np.full(np.broadcast(num, den).shape,
                                          np.nan), where=den > 0)
    return float(out) if out.ndim == 0 else out


def _call(statistic: Callable[..., float], arrays: Tuple[np.ndarray, ...],
          name: str) -> float:
    """The statistic as a float, or a ValueError if it is not a scalar."""
    value = np.asarray(statistic(*arrays), dtype=np.float64)
    if value.size != 1:
        raise ValueError(f'{name} must return one number; got shape '
                         f'{value.shape}')
    return float(value.reshape(()))
