# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""PNG figures of calibration and ERE flagging (paper Fig. 4, 5 and 6),
with units on the axes (mm where the spacing is known, image pixels
else) and titles in words.

Drawn with matplotlib's Agg canvas directly (headless, pyplot's state left
alone) from the outputs of
:mod:`mmchh.evaluation.functional.calibration_metrics`, and written
atomically with :func:`mmchh.utils.io.atomic_write_bytes`.
"""
import io
from typing import Optional

import numpy as np

from mmchh.utils.io import atomic_write_bytes

__all__ = [
    'reliability_diagram_png', 'ere_vs_error_png', 'roc_png',
    'reliability_diagram_figure', 'ere_vs_error_figure', 'roc_figure',
    'unit_label', 'MIN_CORRELATION_BINS', 'RELIABILITY_TITLE', 'ERE_TITLE',
    'ROC_TITLE'
]

#: The ERE-vs-error plot prints the bin means' correlations only from at
#: least this many bins (two bins always correlate perfectly).
MIN_CORRELATION_BINS = 5

#: Default titles, in words.
RELIABILITY_TITLE = 'Reliability: confidence of the mode pixel vs accuracy'
ERE_TITLE = 'Expected radial error (ERE) vs true radial error'
ROC_TITLE = 'Flagging erroneous landmarks by ERE'


def _new_figure(width: float, height: float):
    """A figure drawn by the Agg canvas, independent of pyplot's state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _finish_axes(ax, xlabel: str, ylabel: str, title: str,
                 legend_loc: str) -> None:
    """Labels, title, a light grid and a small legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc=legend_loc, fontsize=8)


def _save_png(fig, path: str) -> None:
    """Lays ``fig`` out and writes it to ``path`` as a PNG, atomically
    (folders created): a reader never sees a half-written file."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png')
    atomic_write_bytes(path, buffer.getvalue())


def _reliability_panel(ax, rel: dict, name: str, top: float) -> None:
    """Draws one reliability diagram ``rel`` on ``ax``, x axis ``[0, top]``."""
    edges = np.asarray(rel['edges'], dtype=np.float64)
    acc = np.asarray(rel['bin_accuracy'], dtype=np.float64)
    conf = np.asarray(rel['bin_confidence'], dtype=np.float64)
    count = np.asarray(rel['bin_count'])
    has = count > 0
    centres = ((edges[:-1] + edges[1:]) / 2)[has]
    width = np.diff(edges)[has] * 0.95
    acc, conf, count = acc[has], conf[has], count[has]
    # the paper's overlay (Sec. 5.2.1): opaque accuracy bars under
    # translucent confidence bars, so a solid lime top marks an
    # over-confident bin and a solid blue top an under-confident one
    ax.bar(centres, acc, width=width, color='tab:blue', edgecolor='black',
           linewidth=0.6, label='accuracy', zorder=2)
    ax.bar(centres, conf, width=width, color='lime', alpha=0.45,
           edgecolor='green', linewidth=0.8, label='mean confidence',
           zorder=3)
    ax.plot([0, top], [0, top], '--', color='grey', linewidth=1,
            label='perfect calibration', zorder=4)
    for c, a, f, n in zip(centres, acc, conf, count):
        ax.text(c, max(a, f) + 0.01 * top, str(int(n)), ha='center',
                va='bottom', fontsize=7, color='dimgrey', zorder=5)
    ax.set_xlim(0, top)
    # only ever raise the limit: panels may share the y axis, and the last
    # one drawn must not cut off the bars (and counts) of the first
    needed = max([top] + list(acc) + list(conf)) * 1.1
    ax.set_ylim(0, max(needed, ax.get_ylim()[1] if ax.get_ylim()[1] > 1e-9
                       and ax.has_data() else 0.0))
    ax.set_xlabel('confidence: probability of the mode pixel (0 to 1)')
    ax.set_ylabel('accuracy: fraction of modes on the true pixel')
    label = f'ECE = {rel["ece"]:.4f}'
    ax.set_title(f'{name}: {label}' if name else label)
    ax.grid(alpha=0.3, zorder=0)
    ax.legend(loc='upper left', fontsize=8,
              title='lime top: over-confident\nblue top: under-confident\n'
              'numbers: landmarks per bin', title_fontsize=7)


def reliability_diagram_figure(before: dict,
                               after: Optional[dict] = None,
                               title: str = RELIABILITY_TITLE):
    """The reliability diagram (Fig. 4) as a matplotlib ``Figure`` (what
    :func:`reliability_diagram_png` writes); arguments as there."""
    panels = [(before, 'before' if after is not None else '')]
    if after is not None:
        panels.append((after, 'after'))
    top = max(float(np.asarray(rel['edges'])[-1]) for rel, _ in panels)
    top = top if top > 0 else 1.0
    fig = _new_figure(5.2 * len(panels), 4.8)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (rel, name) in zip(axes, panels):
        _reliability_panel(ax, rel, name, top)
    if title:
        fig.suptitle(title)
    return fig


def reliability_diagram_png(path: str,
                            before: dict,
                            after: Optional[dict] = None,
                            title: str = RELIABILITY_TITLE) -> None:
    """Writes a reliability diagram (Fig. 4) as a PNG.

    Args:
        path (str): Output PNG path; written atomically (a temporary file in
            the same folder, then ``os.replace``), folders created.
        before (dict): Output of ``expected_calibration_error`` (e.g.
            before temperature scaling).
        after (dict, optional): Another one (e.g. after scaling), drawn as a
            second panel on the same axes.
        title (str): Figure title, in words (default
            :data:`RELIABILITY_TITLE`).

    Note:
        As in the paper: each non-empty bin shows its accuracy (blue) under
        its mean confidence (translucent lime) at the bin centre, with its
        landmark count above; the dashed diagonal is perfect calibration.
        Drawn on matplotlib's Agg canvas directly, so it works headless and
        leaves pyplot's backend and figure list alone.
    """
    _save_png(reliability_diagram_figure(before, after, title), path)


def unit_label(unit: Optional[str]) -> str:
    """An axis label's unit: ``(mm)``, ``(image pixels)`` or, unknown, ``(as
    given)``."""
    return {'mm': '(mm)', 'px': '(image pixels)'}.get(unit, '(as given)')


def _log_floor(*arrays) -> float:
    """Half the smallest positive finite value (where a log axis draws
    zeros), 1e-3 when there is none."""
    values = np.concatenate([np.asarray(a, np.float64).ravel()
                             for a in arrays])
    positive = values[np.isfinite(values) & (values > 0)]
    return float(positive.min()) / 2 if positive.size else 1e-3


def _binned_label(binned: dict) -> str:
    """The bin means' legend entry: the correlations only from at least
    :data:`MIN_CORRELATION_BINS` bins."""
    nbins = int(np.size(binned['bin_ere']))
    if nbins < MIN_CORRELATION_BINS:
        return (f'bin means ({nbins} bins: too few for a correlation, '
                f'at least {MIN_CORRELATION_BINS})')
    return (f'bin means ({nbins} bins): Pearson {binned["pearson"]:.3f}, '
            f'Spearman {binned["spearman"]:.3f}')


def ere_vs_error_figure(ere: np.ndarray, error: np.ndarray, binned: dict,
                        unit: Optional[str] = None,
                        title: str = ERE_TITLE):
    """The ERE-vs-true-error plot (Fig. 5) as a matplotlib ``Figure``
    (what :func:`ere_vs_error_png` writes); arguments as there."""
    ere = np.asarray(ere, dtype=np.float64).reshape(-1)
    error = np.asarray(error, dtype=np.float64).reshape(-1)
    if ere.shape != error.shape:
        raise ValueError('ere and error must have the same number of '
                         f'elements; got {ere.size} and {error.size}')
    bx = np.asarray(binned['bin_ere'], dtype=np.float64)
    by = np.asarray(binned['bin_error'], dtype=np.float64)
    fig = _new_figure(5.6, 4.8)
    ax = fig.subplots()
    ax.set_xscale('log')
    ax.set_yscale('log')
    # a log axis has no zero: values at or below the floor are drawn on it
    fx, fy = _log_floor(ere, bx), _log_floor(error, by)
    zeros = int(np.sum(error <= fy)) + int(np.sum(ere <= fx))
    label = f'landmarks (n={ere.size})'
    if zeros:
        label += f'; {zeros} zero value(s) drawn at the axis floor'
    ax.scatter(np.maximum(ere, fx), np.maximum(error, fy), s=6, alpha=0.3,
               color='tab:grey', label=label, zorder=2)
    ax.plot(np.maximum(bx, fx), np.maximum(by, fy), 'o-', color='tab:red',
            markersize=4, linewidth=1, label=_binned_label(binned), zorder=3)
    finite = np.r_[ere, error, bx, by]
    finite = finite[np.isfinite(finite) & (finite > 0)]
    lo = float(finite.min()) if finite.size else 1e-3
    hi = float(finite.max()) if finite.size else 1.0
    ax.plot([lo, hi], [lo, hi], '--', color='black', linewidth=0.8,
            label='error = ERE', zorder=1)
    _finish_axes(ax, f'expected radial error, ERE {unit_label(unit)}',
                 f'true radial error {unit_label(unit)}', title,
                 'upper left')
    return fig


def ere_vs_error_png(path: str, ere: np.ndarray, error: np.ndarray,
                     binned: dict, unit: Optional[str] = None,
                     title: str = ERE_TITLE) -> None:
    """Writes the ERE-vs-true-error plot (Fig. 5) as a PNG.

    On log-log axes, so the bulk of the landmarks (errors of a millimetre
    or so) and the outliers (tens of millimetres) both show; a zero (a
    mode on the true pixel) is drawn at the axis floor, half the smallest
    positive value, and counted in the legend. The bin means' Pearson and
    Spearman correlations are printed only from at least
    :data:`MIN_CORRELATION_BINS` bins.

    Args:
        path (str): Output PNG path; written atomically.
        ere (np.ndarray): ERE per landmark (flattened).
        error (np.ndarray): True radial error per landmark, same size/unit.
        binned (dict): Output of ``binned_correlation`` on the same data.
        unit (str, optional): ``'mm'`` or ``'px'`` (image pixels), named on
            both axes.
        title (str): Figure title, in words.
    """
    _save_png(ere_vs_error_figure(ere, error, binned, unit, title), path)


def roc_figure(roc: dict, threshold: Optional[float] = None,
               unit: Optional[str] = None, title: str = ROC_TITLE):
    """The ROC of ERE-flagging (Fig. 6) as a matplotlib ``Figure`` (what
    :func:`roc_png` writes); arguments as there."""
    fpr = np.asarray(roc['fpr'], dtype=np.float64)
    tpr = np.asarray(roc['tpr'], dtype=np.float64)
    fig = _new_figure(5.0, 4.8)
    ax = fig.subplots()
    ax.plot(fpr, tpr, color='tab:blue', linewidth=1.5,
            label=f'ERE (AUC = {roc["auc"]:.3f})')
    ax.plot([0, 1], [0, 1], '--', color='grey', linewidth=1,
            label='chance')
    if threshold is not None:
        # roc_curve's point i flags ERE >= thresholds[i] (decreasing), so
        # "ERE > threshold" is the last point whose threshold exceeds it
        thr = np.asarray(roc['thresholds'], dtype=np.float64)
        i = int(np.nonzero(thr > threshold)[0][-1]) if np.any(
            thr > threshold) else 0
        suffix = {'mm': ' mm', 'px': ' px'}.get(unit, '')
        ax.plot(fpr[i], tpr[i], 'o', color='tab:red', markersize=7,
                label=(f'ERE > {threshold:.4g}{suffix}: TPR {tpr[i]:.2f}, '
                       f'FPR {fpr[i]:.2f}'))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    _finish_axes(ax, 'false positive rate: fraction of good landmarks '
                 'flagged', 'true positive rate: fraction of erroneous '
                 'landmarks flagged', title, 'lower right')
    return fig


def roc_png(path: str, roc: dict, threshold: Optional[float] = None,
            unit: Optional[str] = None, title: str = ROC_TITLE) -> None:
    """Writes the ROC of ERE-flagging (Fig. 6) as a PNG.

    Args:
        path (str): Output PNG path; written atomically.
        roc (dict): Output of ``roc_auc``.
        threshold (float, optional): An ERE threshold (flag iff ERE > it) to
            mark as the operating point.
        unit (str, optional): The threshold's unit, ``'mm'`` or ``'px'``.
        title (str): Figure title, in words.
    """
    _save_png(roc_figure(roc, threshold, unit, title), path)
