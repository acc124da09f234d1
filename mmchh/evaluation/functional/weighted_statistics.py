# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Row-weighted statistics, vectorised over bootstrap resamples, numpy.

Every function takes (R, M) ``weights`` and per-row data (M,) and returns
one value per weight row: row r is a resample in which data row m occurs
``weights[r, m]`` times (0 = absent). With integer weights each value
equals the plain statistic on the MATERIALISED resample (rows repeated by
their weight), which is what
:func:`.bootstrap_weighted.weighted_bootstrap` needs; one row of ones is
the plain statistic of the data, so :mod:`.calibration_metrics` computes
its AUC, correlations and ECE here.

- :func:`weighted_mean`: ``w @ v / sum(w)``;
- :func:`weighted_roc_auc`: Mann-Whitney AUC, ties counted one half
  (= ``sklearn.metrics.roc_auc_score``); NaN with one class;
- :func:`weighted_pearson` and :func:`weighted_spearman` (Pearson of the
  average ranks within each resample, = ``scipy.stats.spearmanr``); NaN
  when either variable is constant on the resample;
- :func:`weighted_reliability_bins` and :func:`weighted_ece`: the bins of
  :func:`.calibration_metrics.expected_calibration_error` (``'max'``:
  equal widths up to the largest confidence present in the resample;
  ``'unit'``: on [0, 1]).

A weight row summing to 0 (an empty resample) gives NaN everywhere.
"""
from typing import Dict, Tuple

import numpy as np
from torch import Tensor

BINNINGS = ('max', 'unit')


def weighted_mean(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Weighted mean of ``values`` per weight row.

    Args:
        weights (np.ndarray): (R, M) non-negative weights.
        values (np.ndarray): (M,) finite values.

    Returns:
        np.ndarray: (R,) ``weights @ values / weights.sum(1)``.
    """
    w, (v, ) = _inputs(weights, values=values)
    return _ratio(w @ v, w.sum(1))


def weighted_roc_auc(weights: np.ndarray, scores: np.ndarray,
                     positive: np.ndarray) -> np.ndarray:
    """ROC AUC of ``scores`` detecting ``positive`` rows, per weight row.

    ``AUC = sum_{i pos, j neg} w_i w_j ([s_i > s_j] + [s_i = s_j] / 2) /
    (W_pos W_neg)``, the Mann-Whitney statistic with average ranks for ties,
    equal to ``sklearn.metrics.roc_auc_score(positive, scores)`` on the
    materialised resample.

    Args:
        weights (np.ndarray): (R, M) non-negative weights.
        scores (np.ndarray): (M,) finite scores (e.g. ERE).
        positive (np.ndarray): (M,) bool (e.g. erroneous).

    Returns:
        np.ndarray: (R,) AUC, NaN where a row weighs only one class.
    """
    w, (s, pos) = _inputs(weights, scores=scores, positive=positive)
    # U = (weighted rank sum of the positives) - Wp (Wp + 1) / 2 with the
    # average ranks within the resample (an identity for any non-negative
    # weights; exact in float64 for integer ones: integers and halves)
    order, starts, _ = _tie_groups(s)
    ws = w[:, order]
    g = _group_sums(ws, starts)  # (R, U) weight of each tie group
    g_pos = _group_sums(ws * (pos[order] != 0), starts)
    num_pos = g_pos.sum(1)
    num_neg = g.sum(1) - num_pos
    u = np.einsum('ij,ij->i', g_pos, _tie_ranks(g))
    return _ratio(u - num_pos * (num_pos + 1) / 2, num_pos * num_neg)


def weighted_pearson(weights: np.ndarray, x: np.ndarray,
                     y: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``x`` and ``y`` per weight row.

    Args:
        weights (np.ndarray): (R, M) non-negative weights.
        x (np.ndarray): (M,) finite values.
        y (np.ndarray): (M,) finite values.

    Returns:
        np.ndarray: (R,) correlation in [-1, 1] (= ``scipy.stats.pearsonr``
        on the materialised resample); NaN where x or y is constant on the
        rows present (weight > 0).
    """
    w, (x, y) = _inputs(weights, x=x, y=y)
    return _pearson_rows(w, x, y, _constant(w, x) | _constant(w, y))


def weighted_spearman(weights: np.ndarray, x: np.ndarray,
                      y: np.ndarray) -> np.ndarray:
    """Spearman correlation of ``x`` and ``y`` per weight row.

    The Pearson correlation of the average ranks WITHIN each resample: a
    row of weight c is c tied copies, so a tie group of total weight g
    after C smaller copies has rank ``C + (g + 1) / 2``. Equals
    ``scipy.stats.spearmanr`` on the materialised resample.

    Args:
        weights (np.ndarray): (R, M) non-negative weights.
        x (np.ndarray): (M,) finite values.
        y (np.ndarray): (M,) finite values.

    Returns:
        np.ndarray: (R,) correlation, NaN where x or y is constant on the
        rows present.
    """
    w, (x, y) = _inputs(weights, x=x, y=y)
    rank_x, constant_x = _average_ranks(w, x)
    rank_y, constant_y = _average_ranks(w, y)
    return _pearson_rows(w, rank_x, rank_y, constant_x | constant_y)


def weighted_reliability_bins(weights: np.ndarray,
                              confidence: np.ndarray,
                              correct: np.ndarray,
                              num_bins: int = 10,
                              binning: str = 'max') -> Dict[str, np.ndarray]:
    """Reliability bins and ECE per weight row (Sec. 5.2.1).

    ``ECE = sum_b (n_b / n) |acc_b - conf_b|`` over non-empty bins, with
    the counts ``n_b`` and the means weighted. Bin i covers ``(edges[i],
    edges[i+1]]``, the first one also its left edge; the edges are
    ``np.linspace(0, top, num_bins + 1)`` with ``top`` the largest
    confidence present (weight > 0) in the row (``'max'``, the paper's) or
    1 (``'unit'``) - the bins of
    :func:`.calibration_metrics.expected_calibration_error`.

    Args:
        weights (np.ndarray): (R, M) non-negative weights.
        confidence (np.ndarray): (M,) probability at the mode, in [0, 1].
        correct (np.ndarray): (M,) bool, the mode is the true pixel.
        num_bins (int): Equal-width bins B. Default 10.
        binning (str): ``'max'`` (default) or ``'unit'``.

    Returns:
        dict: ``ece`` (R,), ``edges`` (R, B + 1), ``bin_confidence`` and
        ``bin_accuracy`` (R, B) (NaN for empty bins) and ``bin_count``
        (R, B) float64 (the summed weights).

    Note:
        The rows sharing one ``top`` share their bin assignment, so the
        work is one (R_t, M) @ (M, 3B) product per distinct ``top``.
    """
    w, (conf, hit) = _inputs(weights, confidence=confidence,
                             correct=correct)
    if conf.min() < 0 or conf.max() > 1:
        raise ValueError('confidence must be finite and within [0, 1]; got '
                         f'range [{conf.min()}, {conf.max()}]')
    if isinstance(num_bins, bool) or int(num_bins) != num_bins or \
            num_bins < 1:
        raise ValueError(f'num_bins must be a positive integer; got '
                         f'{num_bins}')
    if binning not in BINNINGS:
        raise ValueError(f"binning must be 'max' or 'unit'; got {binning!r}")
    nb, rows = int(num_bins), w.shape[0]
    total = w.sum(1)
    if binning == 'unit':
        tops = np.ones(rows)
    else:  # the first present row in decreasing confidence
        order = np.argsort(-conf, kind='stable')
        tops = conf[order][(w > 0)[:, order].argmax(1)]
        tops[total <= 0] = 0.0  # an empty row: any edges, NaN below
    sums = np.empty((rows, 3 * nb))
    edges = np.empty((rows, nb + 1))
    uniq, which_top = np.unique(tops, return_inverse=True)
    for u, top in enumerate(uniq):
        sel = which_top.reshape(-1) == u
        edges[sel] = edge = np.linspace(0.0, top, nb + 1)  # [-1] == top
        # side='left' maps (edges[i], edges[i+1]] to i + 1; the clip puts
        # the left edge of the first bin into bin 0
        which = np.clip(np.searchsorted(edge, conf, side='left') - 1, 0,
                        nb - 1)
        basis = np.zeros((conf.size, 3 * nb))
        at = np.arange(conf.size)
        basis[at, which] = 1.0
        basis[at, nb + which] = conf
        basis[at, 2 * nb + which] = hit
        sums[sel] = (w if uniq.size == 1 else w[sel]) @ basis
    count, conf_sum, hit_sum = np.split(sums, 3, axis=1)
    nonempty = count > 0
    safe = np.maximum(count, np.finfo(np.float64).tiny)
    bin_conf = np.where(nonempty, conf_sum / safe, np.nan)
    bin_acc = np.where(nonempty, hit_sum / safe, np.nan)
    share = count / np.where(total > 0, total, np.nan)[:, None]
    gaps = np.where(nonempty, share * np.abs(bin_acc - bin_conf), 0.0)
    ece = np.where(total > 0, gaps.sum(1), np.nan)
    return dict(ece=ece, edges=edges, bin_confidence=bin_conf,
                bin_accuracy=bin_acc, bin_count=count)


def weighted_ece(weights: np.ndarray,
                 confidence: np.ndarray,
                 correct: np.ndarray,
                 num_bins: int = 10,
                 binning: str = 'max') -> np.ndarray:
    """Expected Calibration Error per weight row.

    Args:
        weights, confidence, correct, num_bins, binning: As in
            :func:`weighted_reliability_bins`.

    Returns:
        np.ndarray: (R,) ECE (``ece`` of :func:`weighted_reliability_bins`).
    """
    return weighted_reliability_bins(weights, confidence, correct, num_bins,
                                     binning)['ece']


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _inputs(weights, **arrays) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
    """(R, M) float64 weights and (M,) float64 arrays, checked; a
    ValueError naming the field otherwise."""
    w = _numpy(weights)
    if w.ndim != 2 or w.shape[1] == 0:
        raise ValueError('weights must be (R, M) with M >= 1 data rows; got '
                         f'shape {w.shape}')
    # two reductions, no (R, M) temporary: a NaN or inf makes the sum so
    if not (np.isfinite(w.sum()) and w.min() >= 0):
        raise ValueError('weights must be finite and non-negative')
    out = []
    for name, values in arrays.items():
        v = _numpy(values).reshape(-1)
        if v.size != w.shape[1]:
            raise ValueError(f'{name} must have one value per weight column '
                             f'({w.shape[1]}); got {v.size}')
        if not np.all(np.isfinite(v)):
            raise ValueError(f'{name} must be finite')
        out.append(v)
    return w, tuple(out)


def _numpy(x) -> np.ndarray:
    """A tensor (any device), array or sequence as float64 numpy."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den <= 0."""
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _tie_groups(x: np.ndarray):
    """Stable sort order of x, start of each run of equal sorted values,
    and the run (0..U-1) of every element in the original order."""
    order = np.argsort(x, kind='stable')
    xs = x[order]
    new = np.empty(x.size, bool)
    new[0] = True
    new[1:] = xs[1:] != xs[:-1]
    group = np.empty(x.size, np.int64)
    group[order] = np.cumsum(new) - 1
    return order, np.flatnonzero(new), group


def _average_ranks(w: np.ndarray,
                   x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(R, M) average rank (1-based) of each value within each resample,
    and (R,) bool: x takes at most one value there (one tie group)."""
    order, starts, group = _tie_groups(x)
    g = _group_sums(w[:, order], starts)  # (R, U) tie weights
    return _tie_ranks(g)[:, group], (g > 0).sum(1) <= 1


def _group_sums(ws: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(R, U) sums of the runs of columns starting at ``starts``, by
    differences of one cumulative sum (``np.add.reduceat`` is several
    times slower along rows; exact for integer weights)."""
    if starts.size == ws.shape[1]:  # no ties: every run is one column
        return ws
    cum = np.cumsum(ws, axis=1)[:, np.r_[starts[1:], ws.shape[1]] - 1]
    cum[:, 1:] -= cum[:, :-1].copy()
    return cum


def _tie_ranks(g: np.ndarray) -> np.ndarray:
    """(R, U) average rank of each tie group of (R, U) weights ``g``
    (groups in increasing order): ``C + (g + 1) / 2``, C the weight
    below."""
    rank = np.cumsum(g, axis=1)
    rank -= (g - 1.0) / 2.0
    return rank


def _constant(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(R,) bool: x takes one value on the rows present (or none): the
    smallest and the largest present value, by the sort order, agree."""
    order = np.argsort(x, kind='stable')
    present = (w > 0)[:, order]
    first = present.argmax(1)
    last = x.size - 1 - present[:, ::-1].argmax(1)
    return ~present.any(1) | (x[order][first] == x[order][last])


def _pearson_rows(w: np.ndarray, x: np.ndarray, y: np.ndarray,
                  constant: np.ndarray) -> np.ndarray:
    """(R,) weighted Pearson of x, y ((M,) or (R, M)), NaN where
    ``constant``; centred sums, clipped to [-1, 1] (as scipy)."""
    total = w.sum(1)
    safe = np.where(total > 0, total, 1.0)

    def centred(v):
        # einsum, not BLAS: a threaded gemv stalls on a busy machine
        mean = np.einsum('ij,j->i' if v.ndim == 1 else 'ij,ij->i', w,
                         v) / safe
        return np.subtract(v, mean[:, None])

    dx, dy = centred(x), centred(y)
    sxx = np.einsum('ij,ij,ij->i', w, dx, dx)
    syy = np.einsum('ij,ij,ij->i', w, dy, dy)
    sxy = np.einsum('ij,ij,ij->i', w, dx, dy)
    with np.errstate(invalid='ignore', divide='ignore'):
        r = np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0)
    return np.where(constant | (total <= 0) | ~(sxx * syy > 0), np.nan, r)
