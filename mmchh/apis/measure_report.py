# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What :func:`~mmchh.apis.measure.evaluate_measurements` reports of the
predicted measurements of a split: the per-measurement scores, the CSV
rows and the text table (the prediction is :mod:`~mmchh.apis.measure`'s).
"""
from typing import Any, Dict, Iterator, List

import numpy as np

from mmchh.datasets.ceph_meta import CEPH_LABEL_NAMES
from mmchh.evaluation.functional import (CEPH_MEASUREMENT_UNITS,
                                         interval_coverage)

__all__ = ['EVAL_CSV_COLUMNS', 'eval_rows', 'format_table',
           'summarize_measurements']

#: Columns of ``measurements_eval.csv``, one row per image x measurement;
#: the ``interval_*`` ones are empty without a fitted interval scale.
EVAL_CSV_COLUMNS = ('image', 'measurement', 'unit', 'label', 'true_value',
                    'true_class', 'value', 'mean', 'std', 'ci95_low',
                    'ci95_high', 'covered', 'most_likely_class', 'correct',
                    'p_label', 'interval_low', 'interval_high',
                    'interval_covered')


def _nan(v):
    return float('nan') if v is None else float(v)


def summarize_measurements(images: List[Dict]) -> Dict[str, Dict]:
    """Per measurement name its scores (see
    :func:`~mmchh.apis.measure.evaluate_measurements`), and ``mean``: the
    mean over the eight of ``accuracy``, ``accuracy_point``,
    ``coverage95``, ``label_agreement`` and, with fitted intervals,
    ``coverage_interval``."""
    summary = {
        name: _measurement_summary(
            name, [im['measurements'][name] for im in images])
        for name in CEPH_LABEL_NAMES
    }
    keys = ['accuracy', 'accuracy_point', 'coverage95', 'label_agreement']
    if 'coverage_interval' in summary[CEPH_LABEL_NAMES[0]]:
        keys.append('coverage_interval')
    summary['mean'] = {
        k: float(np.nanmean([summary[n][k] for n in CEPH_LABEL_NAMES]))
        for k in keys
    }
    return summary


def _measurement_summary(name: str, rows: List[Dict]) -> Dict[str, Any]:
    """The scores of one measurement over its per-image ``rows``.

    Note:
        Shapes: every per-image array below is (N, ), the interval (N, 2);
        a missing prediction counts as NaN.
    """
    label = np.array([r['label'] for r in rows])
    best = np.array([_nan(r['prediction']['most_likely_class'])
                     for r in rows])
    point_cls = np.array([_nan(r['prediction']['value_class'])
                          for r in rows])
    truth = np.array([_nan(r['true_value']) for r in rows])
    has_truth = np.array([r['true_value'] is not None for r in rows], bool)
    value = np.array([_nan(r['prediction']['value']) for r in rows])
    ci = np.array([r['prediction']['ci95'] or (np.nan, np.nan)
                   for r in rows], dtype=np.float64)
    std = np.array([_nan(r['prediction']['std']) for r in rows])
    # per image (the images are independent), with its 95 % interval
    cov = interval_coverage(ci[:, 0], ci[:, 1], truth, num_resamples=1000)
    err = np.abs(value - truth)
    mae = float(np.nanmean(err)) if np.isfinite(err).any() else float('nan')
    out = dict(
        unit=CEPH_MEASUREMENT_UNITS[name],
        count=len(rows),
        accuracy=float(np.mean(best == label)),
        accuracy_point=float(np.mean(point_cls == label)),
        coverage95=cov['coverage'],
        coverage95_low=cov['coverage_low'],
        coverage95_high=cov['coverage_high'],
        mean_ci95_width=cov['mean_width'],
        mae=mae,
        mean_std=float(np.nanmean(std)) if np.isfinite(std).any() else
        float('nan'),
        label_agreement=float(np.mean(
            np.array([r['true_class'] for r in rows])[has_truth] ==
            label[has_truth])) if has_truth.any() else float('nan'),
        **_missing_counts(rows))
    if rows and 'low' in rows[0].get('interval', {}):
        iv = np.array([(r['interval']['low'], r['interval']['high'])
                       for r in rows], dtype=np.float64)
        new = interval_coverage(iv[:, 0], iv[:, 1], truth,
                                num_resamples=1000)
        out.update(coverage_interval=new['coverage'],
                   coverage_interval_low=new['coverage_low'],
                   coverage_interval_high=new['coverage_high'],
                   mean_interval_width=new['mean_width'],
                   interval_count=new['count'],
                   width_over_mae=new['mean_width'] / mae if mae > 0 else
                   float('nan'))
    return out


def _missing_counts(rows: List[Dict]) -> Dict[str, Any]:
    """``n_missing_truth``, ``n_missing_prediction`` (images whose true
    value / prediction of this measurement is missing) and
    ``missing_reasons`` (``'truth: landmark(s) ... not annotated'`` ->
    number of images)."""
    reasons: Dict[str, int] = {}
    counts = dict(truth=0, prediction=0)
    for r in rows:
        for side, why in (r.get('missing') or {}).items():
            counts[side] += 1
            reasons[f'{side}: {why}'] = reasons.get(f'{side}: {why}', 0) + 1
    return dict(n_missing_truth=counts['truth'],
                n_missing_prediction=counts['prediction'],
                missing_reasons=dict(sorted(reasons.items())))


def eval_rows(images: List[Dict]) -> Iterator[list]:
    """Rows of :data:`EVAL_CSV_COLUMNS`, one per image x measurement."""
    for im in images:
        for name, r in im['measurements'].items():
            p = r['prediction']
            ci = p['ci95'] or (None, None)
            t = r['true_value']
            covered = None if p['ci95'] is None or t is None else bool(
                ci[0] <= t <= ci[1])
            correct = None if p['most_likely_class'] is None else \
                p['most_likely_class'] == r['label']
            probs = p['class_probabilities'] or {}
            iv = r.get('interval') or {}
            lo, hi = iv.get('low'), iv.get('high')
            ok = lo is not None and np.isfinite(lo) and np.isfinite(hi)
            scored = ok and t is not None
            yield [
                im['file_name'], name, p['unit'], r['label'],
                r['true_value'], r['true_class'], p['value'], p['mean'],
                p['std'], ci[0], ci[1], covered, p['most_likely_class'],
                correct, probs.get(str(r['label'])),
                lo if ok else None, hi if ok else None,
                bool(lo <= t <= hi) if scored else None
            ]


def format_table(result: Dict[str, Any]) -> str:
    """The summary as a fixed-width text table: the full-map interval
    (``cov95``, ``width95``) beside the fitted one (``cov_fit``,
    ``w_fit``, ``w/MAE``; ``-`` without a fit)."""
    s = result['summary']
    head = (f'{"measure":8s} {"unit":5s} {"acc":>6s} {"acc_pt":>6s} '
            f'{"MAE":>8s} {"cov95":>6s} {"width95":>8s} {"cov_fit":>7s} '
            f'{"w_fit":>8s} {"w/MAE":>6s} {"lab_ag":>6s}')
    lines = [head, '-' * len(head)]

    def fit_cols(r):
        if 'coverage_interval' not in r:
            return f'{"-":>7s} {"-":>8s} {"-":>6s}'
        return (f'{r["coverage_interval"]:7.3f} '
                f'{r["mean_interval_width"]:8.3f} '
                f'{r["width_over_mae"]:6.2f}')

    for name in CEPH_LABEL_NAMES:
        r = s[name]
        lines.append(f'{name:8s} {r["unit"]:5s} {r["accuracy"]:6.3f} '
                     f'{r["accuracy_point"]:6.3f} {r["mae"]:8.3f} '
                     f'{r["coverage95"]:6.3f} {r["mean_ci95_width"]:8.3f} '
                     f'{fit_cols(r)} {r["label_agreement"]:6.3f}')
    m = s['mean']
    cov_fit = (f'{m["coverage_interval"]:7.3f}'
               if 'coverage_interval' in m else f'{"-":>7s}')
    lines.append('-' * len(head))
    lines.append(f'{"mean":8s} {"":5s} {m["accuracy"]:6.3f} '
                 f'{m["accuracy_point"]:6.3f} {"":8s} '
                 f'{m["coverage95"]:6.3f} {"":8s} {cov_fit} {"":8s} '
                 f'{"":6s} {m["label_agreement"]:6.3f}')
    return '\n'.join(lines)
