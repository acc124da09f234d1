# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Calibration and ERE-flagging metrics (paper Sec. 5.2 and 5.3), numpy.

Expected calibration error and reliability bins
(:func:`expected_calibration_error`), ERE-vs-error correlations
(:func:`pearson_spearman`, :func:`binned_correlation`), the ROC of ERE as a
detector of erroneous landmarks (:func:`roc_auc`), the operating threshold
(:func:`threshold_at_tpr`) and the paper's Table 2
(:func:`good_erroneous_table`). The temperatures they judge are fitted in
:mod:`mmchh.calibration.temperature.fit`; the figures are drawn by
:mod:`mmchh.visualization.calibration_plots`.
"""
import math
from typing import Optional, Sequence, Tuple

import numpy as np
from torch import Tensor

from .weighted_statistics import (weighted_pearson, weighted_reliability_bins,
                                  weighted_roc_auc, weighted_spearman)


def _as_1d(x, name: str, dtype=np.float64) -> np.ndarray:
    """Flattens an array-like (or tensor) to 1-D ``dtype``."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype).reshape(-1)


def _paired(x, y, x_name: str, y_name: str, y_dtype=np.float64):
    """Two flattened arrays of equal length, or a ValueError."""
    x = _as_1d(x, x_name)
    y = _as_1d(y, y_name, y_dtype)
    if x.shape != y.shape:
        raise ValueError(f'{x_name} and {y_name} must have the same number '
                         f'of elements; got {x.size} and {y.size}')
    return x, y


def expected_calibration_error(confidence: np.ndarray,
                               correct: np.ndarray,
                               num_bins: int = 10,
                               binning: str = 'max') -> dict:
    """Reliability-diagram bins and Expected Calibration Error (Sec. 5.2.1).

    ``ECE = sum_b (n_b / N) |acc_b - conf_b|`` over non-empty bins, where
    ``conf_b`` is the mean confidence and ``acc_b`` the fraction of correct
    predictions in bin b.

    Args:
        confidence (np.ndarray): Probability at the mode of each map, in
            [0, 1], any shape (flattened).
        correct (np.ndarray): Whether each mode is exactly the ground-truth
            pixel, bool, same number of elements.
        num_bins (int): Number of equal-width bins. Default 10.
        binning (str): ``'max'`` (the paper's): bins over ``[0, M]`` with M
            the largest confidence; ``'unit'``: bins over ``[0, 1]``.

    Returns:
        dict: ``ece`` (float), ``edges`` (num_bins + 1,), ``bin_confidence``
        and ``bin_accuracy`` (num_bins,), nan for empty bins, and
        ``bin_count`` (num_bins,) int.

    Note:
        Bin i covers ``(edges[i], edges[i+1]]``; the first bin also includes
        its left edge, so a confidence of exactly 0 falls in bin 0 and, with
        ``'max'``, the largest confidence falls in the last bin. If every
        confidence is 0 under ``'max'`` binning, all edges are 0 and every
        sample is in bin 0.
    """
    conf, corr = _paired(confidence, correct, 'confidence', 'correct',
                         np.bool_)
    if conf.size == 0:
        raise ValueError('expected_calibration_error got no predictions')
    if not np.all(np.isfinite(conf)) or conf.min() < 0 or conf.max() > 1:
        raise ValueError('confidence must be finite and within [0, 1]; got '
                         f'range [{np.nanmin(conf)}, {np.nanmax(conf)}]')
    # the binning and the ECE formula live in weighted_reliability_bins; one
    # row of unit weights is this data set
    bins = weighted_reliability_bins(
        np.ones((1, conf.size)), conf, corr, num_bins, binning)
    return dict(
        ece=float(bins['ece'][0]),
        edges=bins['edges'][0],
        bin_confidence=bins['bin_confidence'][0],
        bin_accuracy=bins['bin_accuracy'][0],
        bin_count=bins['bin_count'][0].astype(np.int64))


def pearson_spearman(x: np.ndarray, y: np.ndarray) -> Tuple[float, float]:
    """Pearson and Spearman correlation of paired samples.

    The formulas are :func:`.weighted_statistics.weighted_pearson` and
    :func:`.weighted_statistics.weighted_spearman` with unit weights (equal
    to ``scipy.stats.pearsonr`` / ``spearmanr`` up to rounding).

    Args:
        x (np.ndarray): First variable (e.g. ERE), any shape (flattened).
        y (np.ndarray): Second variable (e.g. radial error), same size.

    Returns:
        tuple[float, float]: ``(pearson, spearman)``; both nan when there are
        fewer than 2 pairs or either variable is constant (a correlation is
        undefined there, which is not an input error).
    """
    x, y = _paired(x, y, 'x', 'y')
    # non-finite values: NaN (undefined), as scipy gives
    if x.size < 2 or not (np.ptp(x) > 0 and np.ptp(y) > 0) or \
            not np.all(np.isfinite(x + y)):
        return float('nan'), float('nan')
    ones = np.ones((1, x.size))
    return (float(weighted_pearson(ones, x, y)[0]),
            float(weighted_spearman(ones, x, y)[0]))


def binned_correlation(ere: np.ndarray,
                       error: np.ndarray,
                       bin_size: int = 36) -> dict:
    """Correlation of ERE with the true error over bins of landmarks (Fig. 5).

    The pairs are sorted by ERE (stable sort) and cut into consecutive bins of
    ``bin_size`` landmarks (the paper uses 36); the Pearson and Spearman
    correlations are taken between the bins' mean ERE and mean error.

    Args:
        ere (np.ndarray): ERE per landmark, any shape (flattened).
        error (np.ndarray): True radial error per landmark, same size and
            unit.
        bin_size (int): Landmarks per bin. Default 36.

    Returns:
        dict: ``pearson`` and ``spearman`` (float), ``bin_ere`` and
        ``bin_error`` (nbins,) bin means in increasing ERE order.

    Note:
        The last, partial bin (``n % bin_size`` landmarks with the highest
        ERE) is kept as its own bin if it holds at least ``bin_size / 2``
        landmarks and dropped otherwise, so no bin mean rests on a handful of
        points. With fewer than 2 bins the correlations are nan.
    """
    ere, error = _paired(ere, error, 'ere', 'error')
    if int(bin_size) != bin_size or bin_size < 1:
        raise ValueError(f'bin_size must be a positive integer; got '
                         f'{bin_size}')
    bin_size = int(bin_size)
    order = np.argsort(ere, kind='stable')
    ere, error = ere[order], error[order]
    full, rest = divmod(ere.size, bin_size)
    ends = [bin_size * (i + 1) for i in range(full)]
    if rest and rest >= bin_size / 2:
        ends.append(ere.size)
    starts = [0] + ends[:-1]
    bin_ere = np.array([ere[s:e].mean() for s, e in zip(starts, ends)],
                       dtype=np.float64)
    bin_error = np.array([error[s:e].mean() for s, e in zip(starts, ends)],
                         dtype=np.float64)
    pearson, spearman = pearson_spearman(bin_ere, bin_error)
    return dict(
        pearson=pearson,
        spearman=spearman,
        bin_ere=bin_ere,
        bin_error=bin_error)


def _check_two_classes(ere, erroneous, who: str):
    ere, bad = _paired(ere, erroneous, 'ere', 'erroneous', np.bool_)
    if ere.size == 0:
        raise ValueError(f'{who} got no landmarks')
    if not np.all(np.isfinite(ere)):
        raise ValueError(f'{who}: ere must be finite')
    return ere, bad


def roc_auc(ere: np.ndarray, erroneous: np.ndarray) -> dict:
    """ROC of the ERE as a detector of erroneous landmarks (Sec. 5.3.1).

    Score = ERE, positive = erroneous (e.g. radial error > 2 mm): the curve
    by ``sklearn.metrics.roc_curve``, the AUC by
    :func:`.weighted_statistics.weighted_roc_auc` with unit weights (the
    Mann-Whitney statistic, = ``sklearn.metrics.roc_auc_score``).

    Args:
        ere (np.ndarray): ERE per landmark, any shape (flattened).
        erroneous (np.ndarray): Whether each landmark is erroneous, bool,
            same size.

    Returns:
        dict: ``fpr``, ``tpr`` and ``thresholds`` (n,) arrays and ``auc``
        (float). Point i is "flag ERE >= thresholds[i]"; ``thresholds[0]``
        is above every ERE (nothing flagged).

    Note:
        Every distinct ERE is kept as a point (``drop_intermediate=False``)
        so the operating point of any observed threshold lies on the curve.
        Raises ValueError when only one class is present (the ROC is then
        undefined).
    """
    from sklearn.metrics import roc_curve

    ere, bad = _check_two_classes(ere, erroneous, 'roc_auc')
    positives = int(bad.sum())
    if positives == 0 or positives == bad.size:
        kind = 'erroneous' if positives else 'good'
        raise ValueError('roc_auc needs both good and erroneous landmarks; '
                         f'all {bad.size} are {kind}')
    fpr, tpr, thresholds = roc_curve(bad, ere, drop_intermediate=False)
    return dict(
        fpr=fpr,
        tpr=tpr,
        thresholds=thresholds,
        auc=float(weighted_roc_auc(np.ones((1, bad.size)), ere, bad)[0]))


def threshold_at_tpr(ere: np.ndarray,
                     erroneous: np.ndarray,
                     target_tpr: float = 0.5) -> float:
    """The ERE threshold that flags at least ``target_tpr`` of the erroneous.

    Convention: a landmark is flagged iff ``ERE > threshold``. Let
    ``e_1 >= e_2 >= ...`` be the EREs of the P erroneous landmarks and
    ``m = ceil(target_tpr * P)`` (at least 1). The threshold is the largest
    observed ERE (good or erroneous) strictly below ``e_m``, so flagging
    ``ERE > t`` flags every landmark with ``ERE >= e_m``: at least m
    erroneous ones, and as few good ones as any observed threshold reaching
    the target allows. If no observed ERE is below ``e_m``, the threshold is
    ``e_m`` minus one ulp (``np.nextafter`` towards -inf).

    Args:
        ere (np.ndarray): ERE per landmark, any shape (flattened), finite.
        erroneous (np.ndarray): Whether each landmark is erroneous, bool,
            same size; at least one must be True.
        target_tpr (float): Wanted fraction of erroneous landmarks flagged,
            in (0, 1]. The paper uses 0.5.

    Returns:
        float: The threshold t. The TPR of ``ERE > t`` on these landmarks is
        >= ``target_tpr``, and any larger observed ERE used as the threshold
        would give a TPR below it.
    """
    ere, bad = _check_two_classes(ere, erroneous, 'threshold_at_tpr')
    if not 0 < target_tpr <= 1:
        raise ValueError(f'target_tpr must be in (0, 1]; got {target_tpr}')
    positives = np.sort(ere[bad])[::-1]
    p = positives.size
    if p == 0:
        raise ValueError('threshold_at_tpr needs at least one erroneous '
                         'landmark to reach a TPR')
    # the small slack keeps an exact product (e.g. 0.3 * 10) from rounding
    # up to the next integer
    m = min(p, max(1, math.ceil(target_tpr * p - 1e-9)))
    e_m = positives[m - 1]
    below = ere[ere < e_m]
    if below.size:
        return float(below.max())
    return float(np.nextafter(e_m, -np.inf))


def good_erroneous_table(errors_mm: np.ndarray,
                         ere: np.ndarray,
                         threshold: Optional[float],
                         sdr_thresholds: Sequence[float] = (2.0, 2.5, 3.0,
                                                            4.0),
                         flagged: Optional[np.ndarray] = None) -> dict:
    """The paper's Table 2: accuracy overall and of good / flagged landmarks.

    Args:
        errors_mm (np.ndarray): Radial error per landmark in mm, any shape
            (flattened), finite.
        ere (np.ndarray): ERE per landmark, same size.
        threshold (float | None): Flag iff ``ERE > threshold``. May be None
            when ``flagged`` is given.
        sdr_thresholds (Sequence[float]): Success-detection radii in mm.
        flagged (np.ndarray, optional): Precomputed flags (bool, same size);
            overrides ``threshold``. Exactly one of the two must be given.

    Returns:
        dict: Rows ``'overall'``, ``'good'`` (not flagged, ERE <= threshold)
        and ``'erroneous'`` (flagged), each a dict with ``count`` (int),
        ``MRE`` (mm) and ``SDR_{t:g}mm`` (percent of errors strictly below t
        mm, e.g. ``SDR_2mm``, ``SDR_2.5mm``). An empty row has count 0 and
        nan values.
    """
    errors, ere = _paired(errors_mm, ere, 'errors_mm', 'ere')
    if errors.size == 0:
        raise ValueError('good_erroneous_table got no landmarks')
    if not np.all(np.isfinite(errors)):
        raise ValueError('errors_mm must be finite')
    if flagged is not None:
        if threshold is not None:
            raise ValueError('give either threshold or flagged, not both')
        flags = _as_1d(flagged, 'flagged', np.bool_)
        if flags.size != errors.size:
            raise ValueError('flagged must have one entry per landmark; got '
                             f'{flags.size} for {errors.size}')
    elif threshold is None:
        raise ValueError('good_erroneous_table needs a threshold or flags')
    else:
        flags = ere > threshold

    def row(err: np.ndarray) -> dict:
        out = dict(count=int(err.size))
        empty = err.size == 0
        out['MRE'] = float('nan') if empty else float(err.mean())
        for t in sdr_thresholds:
            out[f'SDR_{t:g}mm'] = (float('nan') if empty else
                                   float(np.mean(err < t) * 100.0))
        return out

    return dict(
        overall=row(errors), good=row(errors[~flags]),
        erroneous=row(errors[flags]))
