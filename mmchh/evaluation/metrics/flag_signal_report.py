# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The ``flag_signals`` section of :class:`~.UncertaintyMetric`: what the
ERE flag, the configuration (plausibility) flag and the two combined each
catch; the math is :mod:`mmchh.evaluation.functional.flag_signals`.

Which signals there are depends on the head's fields in the predictions:
``keypoint_ere_flagged`` (the ERE flag alone), ``keypoint_implausible``
(the configuration flag) and ``keypoint_flagged`` (either). A checkpoint
calibrated without a configuration model predicts only
``keypoint_flagged``, which is then the ERE flag: the section reports
``ere`` and ``combined`` and says the configuration flag is not fitted.
"""
import math
from typing import Dict, List, Optional

import numpy as np

from ..functional.flag_signals import (FLAG_SIGNAL_RATES, FLAG_SIGNALS,
                                       flag_signal_groups,
                                       flag_signal_intervals,
                                       flag_signal_rates)

__all__ = [
    'NOT_FITTED', 'flag_signal_details', 'flag_signal_interval_keys',
    'flag_signal_lines', 'flag_signal_metrics', 'select_flag_signals'
]

#: Why a signal is absent, per signal.
NOT_FITTED = dict(
    ere='not fitted (no ERE flag threshold)',
    implausible='not used (no configuration threshold in the checkpoint: '
    'calibrated without a configuration model, or with too few correct '
    'calibration landmarks for a threshold; calibration.json '
    '"configuration" says which)',
    combined='not fitted (no flag threshold at all)')


def select_flag_signals(cat: Dict[str, np.ndarray],
                        mask: np.ndarray) -> Dict[str, np.ndarray]:
    """The signals the predictions carry, over the counted landmarks.

    Args:
        cat (dict): The metric's per-landmark arrays, all images
            concatenated: ``flagged``, ``ere_flagged``, ``implausible``
            where the head predicted them, (M_all,) bool each.
        mask (np.ndarray): (M_all,) bool, the counted landmarks.

    Returns:
        dict: signal (of :data:`FLAG_SIGNALS`) -> (M,) bool, only those
        the fields give.
    """
    out = {}
    if 'ere_flagged' in cat:
        out['ere'] = cat['ere_flagged'][mask]
    elif 'flagged' in cat and 'implausible' not in cat:
        # calibrated before the configuration flag: flagged is ERE alone
        out['ere'] = cat['flagged'][mask]
    if 'implausible' in cat:
        out['implausible'] = cat['implausible'][mask]
    if 'flagged' in cat:
        out['combined'] = cat['flagged'][mask]
    elif out:
        out['combined'] = np.logical_or.reduce(list(out.values()))
    return out


def flag_signal_metrics(signals: Dict[str, np.ndarray], error: np.ndarray,
                        erroneous: float,
                        catastrophic: float) -> Dict[str, float]:
    """``flag_signals/<signal>/<rate>`` of every signal (fractions), and
    ``flag_signals/num_{erroneous,catastrophic,good}``; empty without a
    signal. NaN everywhere when ``error`` is None (an evaluation with
    invalid landmarks)."""
    if not signals:
        return {}
    out = {}
    for name, flagged in signals.items():
        rates = flag_signal_rates(flagged, error, erroneous, catastrophic) \
            if error is not None else dict.fromkeys(FLAG_SIGNAL_RATES,
                                                    math.nan)
        for rate, value in rates.items():
            out[f'flag_signals/{name}/{rate}'] = value
    groups = flag_signal_groups(
        np.zeros(0) if error is None else error, erroneous, catastrophic)
    for key, rate in (('erroneous', 'erroneous_recall'),
                      ('catastrophic', 'catastrophic_recall'),
                      ('good', 'false_flag_rate')):
        out[f'flag_signals/num_{key}'] = math.nan if error is None else \
            float(groups[rate].sum())
    return out


def flag_signal_interval_keys(signals: Dict[str, np.ndarray],
                              error: np.ndarray, erroneous: float,
                              catastrophic: float, image_ids: np.ndarray,
                              **options) -> Dict[str, object]:
    """The bootstrap interval of every ``flag_signals/<signal>/<rate>``
    (``options``: ``num_resamples``, ``level``, ``seed``)."""
    out = {}
    for name, flagged in signals.items():
        for rate, interval in flag_signal_intervals(
                flagged, error, erroneous, catastrophic, image_ids,
                **options).items():
            out[f'flag_signals/{name}/{rate}'] = interval
    return out


def flag_signal_details(signals: Dict[str, np.ndarray],
                        metrics: Dict[str, float], unit: str,
                        erroneous: float,
                        catastrophic: float) -> Dict[str, object]:
    """The JSON's ``flag_signals`` section: the thresholds, each signal's
    rates (with ``_low`` / ``_high`` where computed) or why it is not
    fitted."""
    section = dict(unit=unit, erroneous=erroneous, catastrophic=catastrophic)
    for key in ('num_erroneous', 'num_catastrophic', 'num_good'):
        section[key] = metrics.get(f'flag_signals/{key}')
    for name in FLAG_SIGNALS:
        if name not in signals:
            section[name] = NOT_FITTED[name]
            continue
        base = f'flag_signals/{name}/'
        section[name] = {k[len(base):]: v for k, v in metrics.items()
                         if k.startswith(base)}
    return section


def _fraction(metrics: Dict[str, float], key: str) -> str:
    text = f'{metrics[key]:.2f}'
    if f'{key}_low' in metrics:
        text += (f' [{metrics[key + "_low"]:.2f}, '
                 f'{metrics[key + "_high"]:.2f}]')
    return text


def flag_signal_lines(metrics: Dict[str, float],
                      prefix: Optional[str] = None) -> List[str]:
    """One short line per signal of an evaluation's metrics, e.g.
    ``'flag ere: erroneous recall 0.54 [0.40, 0.66], catastrophic recall
    1.00 [1.00, 1.00], false-flag rate 0.08 [0.05, 0.11]'`` or ``'flag
    implausible: not fitted (...)'``.

    Args:
        metrics (dict): The metrics (with the metric's prefix, e.g.
            ``unc/flag_signals/ere/erroneous_recall``).
        prefix (str, optional): The metric's prefix; None finds it from a
            ``.../MERE`` key (no line when there is none).

    Returns:
        list[str]: One line per signal of :data:`FLAG_SIGNALS`; none when
        the metrics hold no uncertainty evaluation.
    """
    if prefix is None:
        found = [k[:-len('MERE')] for k in metrics if k.endswith('/MERE')]
        if not found:
            return []
        prefix = found[0]
    elif prefix and not prefix.endswith('/'):
        prefix += '/'
    base = f'{prefix}flag_signals/'
    lines = []
    for name in FLAG_SIGNALS:
        key = f'{base}{name}/'
        if f'{key}erroneous_recall' not in metrics:
            lines.append(f'flag {name}: {NOT_FITTED[name]}')
            continue
        lines.append(
            f'flag {name}: erroneous recall '
            f'{_fraction(metrics, key + "erroneous_recall")}, catastrophic '
            f'recall {_fraction(metrics, key + "catastrophic_recall")}, '
            f'false-flag rate {_fraction(metrics, key + "false_flag_rate")}')
    return lines
