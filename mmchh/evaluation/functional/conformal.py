# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Split-conformal thresholds and the coverage / area of conformal regions.

Split conformal prediction (e.g. Angelopoulos & Bates, "A gentle
introduction to conformal prediction", 2021): with ``n`` calibration scores
and a level ``1 - alpha``, the threshold is the ``k``-th smallest score,
``k = ceil((n + 1) (1 - alpha))`` (:func:`conformal_rank`), and ``+inf``
(the whole image) when ``k > n``. Under exchangeability of the calibration
and test landmarks, the region ``{score <= threshold}`` then holds the true
landmark with probability ``>= 1 - alpha`` -- marginally, over images, not
for each image -- and, without ties among the scores, with probability
exactly ``k / (n + 1) < 1 - alpha + 1 / (n + 1)`` on average over
calibration splits (:func:`conformal_coverage`).

Thresholds are fitted per landmark (the scores of one landmark's maps) and
pooled (every counted map of every landmark as one sample) by
:func:`conformal_thresholds`; the same function gives the disc baseline's
radii from radial errors (a disc of radius ``r`` around the prediction is
the region ``{error <= r}``: :func:`disc_regions`). The scores and regions of
heatmaps are in :mod:`mmchh.codecs.utils.conformal_regions`.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'conformal_coverage', 'conformal_min_maps', 'conformal_rank',
    'conformal_thresholds',
    'disc_regions', 'region_summary'
]

# (n + 1) * level is an integer for many (n, level) pairs, e.g. n = 9 at 0.9;
# its float product may land just above it (0.7 * 10 = 7.000000000000001),
# which must not push the rank one up
_RANK_TOLERANCE = 1e-9


def _check_level(level: float) -> float:
    level = float(level)
    if not 0 < level < 1:
        raise ValueError(f'coverage level must be in (0, 1); got {level}')
    return level


def conformal_rank(n: int, level: float) -> int:
    """``k = ceil((n + 1) * level)``: the rank of the conformal threshold.

    Args:
        n (int): Number of calibration scores, >= 0.
        level (float): Coverage level ``1 - alpha`` in (0, 1).

    Returns:
        int: ``k`` (1-based); ``k > n`` means the threshold is infinite.

    Note:
        E.g. ``n = 9`` at 0.9 gives 9 (the largest score), ``n = 8`` gives 9
        (> 8: infinite), ``n = 19`` gives 18.
    """
    level = _check_level(level)
    if int(n) != n or n < 0:
        raise ValueError(f'n must be a non-negative integer; got {n}')
    return int(math.ceil((int(n) + 1) * level - _RANK_TOLERANCE))


def conformal_min_maps(level: float) -> int:
    """The fewest calibration scores that give a finite threshold at
    ``level``: the smallest ``n`` with ``conformal_rank(n, level) <= n``.

    Note:
        ``n >= level / (1 - level)``: 9 at 0.9, 19 at 0.95, 99 at 0.99.
    """
    level = _check_level(level)
    n = max(int(math.floor(level / (1 - level))) - 1, 0)
    while conformal_rank(n, level) > n:
        n += 1
    return n


def conformal_coverage(n: int,
                       level: float,
                       confidence: Optional[float] = None,
                       num_test: Optional[int] = None) -> Dict:
    """The coverage split conformal promises with ``n`` calibration scores.

    Args:
        n (int): Number of calibration scores.
        level (float): Coverage level ``1 - alpha``.
        confidence (float, optional): Also give the central interval, at
            this confidence, of the coverage of one fitted threshold.
        num_test (int, optional): With ``confidence``: the interval of the
            fraction covered among ``num_test`` test scores instead (what a
            test split observes), wider by the sampling of the test points.

    Returns:
        dict: ``guaranteed`` = ``level`` (always); ``expected`` =
        ``k / (n + 1)`` (1.0 when ``k > n``), the coverage averaged over
        calibration draws when the scores have no ties (ties only raise
        it); with ``confidence``, ``conditional`` = (low, high): given one
        calibration split, the coverage of its threshold is
        ``Beta(k, n + 1 - k)`` distributed, and the number of ``num_test``
        test scores it covers Beta-binomial (no ties; test scores
        exchangeable with the calibration ones and independent of each
        other given them, e.g. one landmark of different images).
    """
    level = _check_level(level)
    k = conformal_rank(n, level)
    out = dict(guaranteed=level, expected=1.0 if k > n else k / (n + 1))
    if confidence is None:
        return out
    if not 0 < confidence < 1:
        raise ValueError(f'confidence must be in (0, 1); got {confidence}')
    tails = [(1 - confidence) / 2, (1 + confidence) / 2]
    if k > n:
        out['conditional'] = (1.0, 1.0)
    elif num_test is None:
        from scipy.stats import beta
        out['conditional'] = tuple(
            float(v) for v in beta.ppf(tails, k, int(n) + 1 - k))
    else:
        from scipy.stats import betabinom
        out['conditional'] = tuple(
            float(v) / num_test
            for v in betabinom.ppf(tails, num_test, k, int(n) + 1 - k))
    return out


def _as_2d(values, name: str, dtype=np.float64) -> np.ndarray:
    """(N, K) array from (N, K) or (N,) input (the latter as K = 1)."""
    arr = np.asarray(values, dtype=dtype)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f'{name} must have shape (N, K) or (N,); got '
                         f'{arr.shape}')
    return arr


def _counted_mask(counted, shape: Tuple[int, int]) -> np.ndarray:
    if counted is None:
        return np.ones(shape, dtype=bool)
    mask = _as_2d(counted, 'counted', np.bool_)
    if mask.shape != shape:
        raise ValueError(f'counted must have the scores\' shape {shape}; got '
                         f'{mask.shape}')
    return mask


def _kth_smallest(scores: np.ndarray, counted: np.ndarray,
                  levels: Sequence[float]) -> np.ndarray:
    """(L, K): each column's conformal threshold at each level."""
    n = counted.sum(axis=0)  # (K,)
    # uncounted entries sort last and are never reached: rank k <= n
    ordered = np.sort(np.where(counted, scores, np.inf), axis=0)
    out = np.full((len(levels), scores.shape[1]), np.inf)
    for i, level in enumerate(levels):
        rank = np.array([conformal_rank(int(m), level) for m in n])
        ok = rank <= n
        out[i, ok] = ordered[rank[ok] - 1, np.nonzero(ok)[0]]
    return out


def conformal_thresholds(scores,
                         levels: Sequence[float] = (0.9, ),
                         counted=None) -> Dict[str, np.ndarray]:
    """Split-conformal thresholds per landmark and pooled, at each level.

    Args:
        scores (array-like): Calibration scores in shape (N, K) (N maps of
            each of K landmarks; (N,) is K = 1), e.g. true-pixel scores from
            :func:`~mmchh.codecs.utils.conformal_scores` or radial errors
            (the disc baseline). Finite wherever counted.
        levels (Sequence[float]): Coverage levels ``1 - alpha``.
        counted (array-like, optional): (N, K) bool, which maps count (e.g.
            the landmark lies inside the heatmap); default all.

    Returns:
        dict: ``per_landmark`` (L, K) and ``pooled`` (L,) float64
        thresholds (``inf``: fewer maps than the level needs, the whole
        image), ``num_per_landmark`` (K,) and ``num_pooled`` (int), the
        numbers of counted scores.

    Note:
        Shapes: ``scores`` and ``counted`` (N, K); L = ``len(levels)``.
        The pooled threshold treats every counted map of every landmark as
        one exchangeable sample, so its guarantee is over landmarks drawn
        at random too, not for each landmark.
    """
    values = _as_2d(scores, 'scores')
    mask = _counted_mask(counted, values.shape)
    levels = [_check_level(level) for level in levels]
    if not levels:
        raise ValueError('conformal_thresholds needs at least one level')
    if not np.isfinite(values[mask]).all():
        bad = int((~np.isfinite(values[mask])).sum())
        raise ValueError(f'{bad} counted calibration score(s) are not '
                         'finite (invalid maps must be left out or refused)')
    pooled = _kth_smallest(values[mask][:, None],
                           np.ones((int(mask.sum()), 1), dtype=bool),
                           levels)[:, 0]
    return dict(
        per_landmark=_kth_smallest(values, mask, levels),
        pooled=pooled,
        num_per_landmark=mask.sum(axis=0),
        num_pooled=int(mask.sum()))


def disc_regions(radial_errors, radius) -> Tuple[np.ndarray, np.ndarray]:
    """The disc baseline: a disc of ``radius`` around each prediction.

    Args:
        radial_errors (array-like): Distance of each true landmark from its
            prediction, (N, K) (any unit).
        radius (float | array-like): The fitted radius, scalar or (K,) per
            landmark, in the errors' unit (``inf``: the whole plane).

    Returns:
        tuple: ``inside`` (N, K) bool (``error <= radius``) and ``area``
        (N, K) float64, ``pi * radius**2`` in the unit squared.

    Note:
        Shapes: ``radial_errors`` (N, K), ``radius`` () or (K,). A NaN
        error (no prediction) is never inside.
    """
    errors = _as_2d(radial_errors, 'radial_errors')
    radius = np.broadcast_to(np.asarray(radius, dtype=np.float64),
                             errors.shape[1:])
    inside = errors <= radius
    area = np.broadcast_to(math.pi * radius**2, errors.shape).copy()
    return inside, area


def region_summary(inside, area, counted=None) -> Dict:
    """Coverage and area of conformal regions over a test set.

    Args:
        inside (array-like): (N, K) bool, the true landmark is in its
            region.
        area (array-like): (N, K) region areas (any unit; NaN where there is
            no region, e.g. an invalid map).
        counted (array-like, optional): (N, K) bool, which landmarks count;
            default all.

    Returns:
        dict: ``coverage`` (fraction of counted landmarks inside),
        ``coverage_per_landmark`` (K,) (NaN for a landmark with none
        counted), ``median_area`` and ``mean_area`` over the counted
        landmarks with a region, ``median_area_per_landmark`` (K,), and
        ``num`` (counted landmarks).

    Note:
        Shapes: ``inside``, ``area`` and ``counted`` (N, K).
    """
    hit = _as_2d(inside, 'inside', np.bool_)
    size = _as_2d(area, 'area')
    if size.shape != hit.shape:
        raise ValueError(f'area must have the shape of inside {hit.shape}; '
                         f'got {size.shape}')
    mask = _counted_mask(counted, hit.shape)
    num = mask.sum(axis=0)
    with np.errstate(invalid='ignore', divide='ignore'):
        per_landmark = (hit & mask).sum(axis=0) / num
    masked_area = np.where(mask, size, np.nan)
    has_area = ~np.isnan(masked_area)
    return dict(
        coverage=float((hit & mask).sum() / mask.sum()) if mask.any()
        else float('nan'),
        coverage_per_landmark=per_landmark,
        median_area=_nan_stat(np.median, masked_area[has_area]),
        mean_area=_nan_stat(np.mean, masked_area[has_area]),
        median_area_per_landmark=np.array([
            _nan_stat(np.median, masked_area[has_area[:, j], j])
            for j in range(hit.shape[1])
        ]),
        num=int(mask.sum()))


def _nan_stat(stat, values: np.ndarray) -> float:
    """``stat`` of ``values``, NaN when there are none."""
    return float(stat(values)) if values.size else float('nan')
