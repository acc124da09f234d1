# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Which keys of :class:`~.uncertainty_metric.UncertaintyMetric` carry a
bootstrap interval, the per-landmark row index and the log line's number
format."""
from typing import Dict

import numpy as np

from ..functional.flag_signals import FLAG_SIGNAL_RATES

__all__ = ['INTERVAL_KEYS', 'has_interval', 'landmark_rows', 'with_ci']

#: The keys with a bootstrap interval, besides the table's MRE / SDR rows
#: and the conformal coverages (see :func:`has_interval`)
INTERVAL_KEYS = ('MERE', 'NLL', 'ECE', 'ECE_unit', 'pearson', 'spearman',
                 'AUC', 'erroneous_fraction')


def has_interval(key: str) -> bool:
    """Whether metric ``key`` gets ``_low`` / ``_high``: the INTERVAL_KEYS,
    the table's MRE / SDR rows, the conformal coverages (not per
    landmark)."""
    parts = key.split('/')
    if len(parts) == 1:
        return key in INTERVAL_KEYS
    if parts[0] == 'flag_signals':
        return len(parts) == 3 and parts[2] in FLAG_SIGNAL_RATES
    if len(parts) != 2:
        return False
    if parts[0] in ('overall', 'good', 'erroneous'):
        return parts[1] == 'MRE' or parts[1].startswith('SDR_')
    return parts[0] == 'conformal' and parts[1].startswith(
        ('coverage', 'disc_coverage'))


def landmark_rows(results: list, cat: dict) -> Dict[str, np.ndarray]:
    """(M_all,) ``sample`` name, ``landmark`` index and ``image`` (the
    result's index: names may repeat) of every landmark of every result."""
    sizes = [r['error'].size for r in results]
    return dict(
        sample=np.repeat(cat['sample'].astype(str), sizes),
        landmark=np.concatenate([np.arange(k) for k in sizes]),
        image=np.repeat(np.arange(len(results)), sizes))


def with_ci(metrics: Dict[str, float], key: str, fmt: str) -> str:
    """``'2.431 [2.31, 2.55]'``: the value and, if reported, its
    interval."""
    text = format(metrics[key], fmt)
    if f'{key}_low' in metrics:
        text += (f' [{format(metrics[key + "_low"], fmt)}, '
                 f'{format(metrics[key + "_high"], fmt)}]')
    return text
