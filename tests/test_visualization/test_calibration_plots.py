# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Tests of the calibration figure writers: valid PNGs, written atomically;
units on the axes, ERE vs error on log-log axes showing the bulk and the
outliers, correlations only from enough bins, titles in words."""
import os

import numpy as np
import pytest

from mmchh.evaluation.functional.calibration_metrics import (
    binned_correlation, expected_calibration_error, roc_auc, threshold_at_tpr)
from mmchh.visualization.calibration_plots import (
    ERE_TITLE, MIN_CORRELATION_BINS, RELIABILITY_TITLE, ROC_TITLE,
    ere_vs_error_figure, ere_vs_error_png, reliability_diagram_figure,
    reliability_diagram_png, roc_figure, roc_png)


def _is_png(path):
    with open(path, 'rb') as f:
        head = f.read(8)
    return head == b'\x89PNG\r\n\x1a\n' and os.path.getsize(path) > 1000


def test_png_writers(tmp_path):
    rng = np.random.default_rng(3)
    conf = rng.beta(2, 10, 300)
    hit = rng.random(300) < conf
    before = expected_calibration_error(np.clip(conf * 1.5, 0, 1), hit)
    after = expected_calibration_error(conf, hit)
    ere = rng.gamma(2, 0.7, 300)
    err = np.abs(ere + rng.normal(0, 0.5, 300))
    out = tmp_path / 'figs'  # created on demand
    paths = [str(out / n) for n in ('rel2.png', 'rel1.png', 'ere.png',
                                    'roc.png', 'roc_t.png')]
    reliability_diagram_png(paths[0], before, after, title='T scaling')
    reliability_diagram_png(paths[1], after)
    ere_vs_error_png(paths[2], ere, err, binned_correlation(ere, err))
    roc = roc_auc(ere, err > 2)
    roc_png(paths[3], roc)
    roc_png(paths[4], roc, threshold=threshold_at_tpr(ere, err > 2))
    for p in paths:
        assert _is_png(p), p
    # atomic writes leave nothing else behind, and overwrite in place
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p)
                                             for p in paths)
    roc_png(paths[3], roc)
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p)
                                             for p in paths)


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _bulk_and_outliers(seed=0):
    """ERE and error in mm: 300 landmarks around a millimetre and a few
    outliers of tens of millimetres, as on a real test set."""
    rng = np.random.default_rng(seed)
    ere = rng.gamma(4, 0.25, 300)
    err = ere * rng.lognormal(0, 0.4, 300)
    ere[:3], err[:3] = [20.0, 35.0, 9.0], [68.0, 41.0, 55.0]
    return ere, err


@pytest.mark.parametrize('unit,words', [('mm', '(mm)'),
                                        ('px', '(image pixels)')],
                         ids=['mm', 'px'])
def test_ere_vs_error_axes_name_the_unit(unit, words):
    ere, err = _bulk_and_outliers()
    ax = ere_vs_error_figure(ere, err, binned_correlation(ere, err),
                             unit=unit).axes[0]
    assert ax.get_xlabel().endswith(words) and 'ERE' in ax.get_xlabel()
    assert ax.get_ylabel() == f'true radial error {words}'
    roc = roc_auc(ere, err > 4)
    rax = roc_figure(roc, threshold=2.0, unit=unit).axes[0]
    assert any(f'ERE > 2 {unit}:' in t for t in _legend_texts(rax))


def test_ere_vs_error_log_axes_show_bulk_and_outliers():
    ere, err = _bulk_and_outliers()
    fig = ere_vs_error_figure(ere, err, binned_correlation(ere, err),
                              unit='mm')
    fig.canvas.draw()  # the axes' limits as written to the PNG
    ax = fig.axes[0]
    assert ax.get_xscale() == 'log' and ax.get_yscale() == 'log'
    to_axes = ax.transData + ax.transAxes.inverted()
    for axis, values in ((0, ere), (1, err)):
        pts = np.zeros((values.size, 2))
        pts[:, 0], pts[:, 1] = (ere, err)
        frac = to_axes.transform(pts)[:, axis]
        # every point inside the axes, the outliers included
        assert frac.min() >= 0 and frac.max() <= 1
        # the bulk (10th to 90th percentile) spans a good part of the axis
        lo, hi = np.percentile(values, [10, 90])
        span = abs(np.interp(hi, np.sort(values), np.sort(frac)) -
                   np.interp(lo, np.sort(values), np.sort(frac)))
        assert span > 0.15, (axis, span)
        # on linear axes the same bulk would be squeezed into a sliver
        assert (hi - lo) / (values.max() - values.min()) < 0.06


def test_zero_errors_drawn_at_the_floor_and_counted():
    ere, err = _bulk_and_outliers()
    err[5:9] = 0.0  # modes on the true pixel
    ax = ere_vs_error_figure(ere, err, binned_correlation(ere, err),
                             unit='px').axes[0]
    assert any('4 zero value(s)' in t for t in _legend_texts(ax))
    ys = ax.collections[0].get_offsets()[:, 1]
    assert np.all(np.isfinite(ys)) and np.all(ys > 0)
    assert ys.min() == pytest.approx(err[err > 0].min() / 2)


@pytest.mark.parametrize('bin_size,printed', [(150, False), (60, True)],
                         ids=['2_bins', '5_bins'])
def test_correlation_printed_only_from_enough_bins(bin_size, printed):
    ere, err = _bulk_and_outliers(seed=1)
    binned = binned_correlation(ere, err, bin_size=bin_size)
    nbins = len(binned['bin_ere'])
    assert (nbins >= MIN_CORRELATION_BINS) == printed
    texts = _legend_texts(ere_vs_error_figure(ere, err, binned,
                                              unit='mm').axes[0])
    bins = [t for t in texts if t.startswith('bin means')][0]
    if not printed:
        assert 'Pearson' not in bins and 'too few' in bins
        return
    # the printed value is the bin means' correlation (float64 reference:
    # the bins cut by hand from the ERE order)
    order = np.argsort(ere, kind='stable')
    e, r = ere[order], err[order]
    means = [(e[i:i + bin_size].mean(), r[i:i + bin_size].mean())
             for i in range(0, bin_size * nbins, bin_size)]
    x, y = np.array(means).T
    pearson = np.sum((x - x.mean()) * (y - y.mean())) / np.sqrt(
        np.sum((x - x.mean())**2) * np.sum((y - y.mean())**2))
    assert f'Pearson {pearson:.3f}' in bins


def test_titles_in_words():
    rng = np.random.default_rng(2)
    conf = rng.beta(2, 10, 200)
    rel = expected_calibration_error(conf, rng.random(200) < conf)
    fig = reliability_diagram_figure(rel)
    title = fig._suptitle.get_text()
    assert title == RELIABILITY_TITLE and ':' in title
    assert title.split(':')[0] == 'Reliability' and len(title.split()) >= 5
    ax = fig.axes[0]
    assert 'probability' in ax.get_xlabel() and '0 to 1' in ax.get_xlabel()
    assert 'fraction' in ax.get_ylabel()
    ere, err = _bulk_and_outliers()
    assert ere_vs_error_figure(ere, err, binned_correlation(ere, err)
                               ).axes[0].get_title() == ERE_TITLE
    assert roc_figure(roc_auc(ere, err > 4)).axes[0].get_title() == ROC_TITLE
