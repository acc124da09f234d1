# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The ERE flag threshold fitted on the calibration split, with its basis.

The threshold flags ``target_tpr`` of the erroneous landmarks (radial
error > ``erroneous``) of the calibration split
(:func:`~mmchh.evaluation.functional.threshold_at_tpr`). It carries its
95 % bootstrap interval over the calibration images (each resample refits
it: :func:`~mmchh.evaluation.functional.bootstrap.image_bootstrap`) and the
numbers of images and erroneous landmarks it came from; below the minimums
of :mod:`mmchh.models.heads.flag_basis` it is reported but not used to
flag (``used`` False, ``reason`` says why).
"""
from typing import Dict, Sequence

import numpy as np
from mmengine.logging import print_log

from mmchh.evaluation.functional.bootstrap import (BootstrapOptions,
                                                   image_bootstrap)
from mmchh.evaluation.functional.calibration_metrics import threshold_at_tpr
from mmchh.models.heads.flag_basis import (MIN_FLAG_ERRONEOUS,
                                           MIN_FLAG_IMAGES,
                                           flag_basis_shortfall)
from .settings import CalibrationError

__all__ = ['describe_flagging', 'flag_threshold', 'flagging_report']


def flag_threshold(ere: np.ndarray, errors: np.ndarray, erroneous: float,
                   target_tpr: float) -> float:
    """The threshold of one set of landmarks: :func:`threshold_at_tpr` of
    "error > ``erroneous``"; with no erroneous landmark the largest ERE
    (flag only what is less certain than everything seen); NaN with no
    landmark.

    Note:
        Shapes: ``ere``, ``errors`` (M,), one row per landmark.
    """
    if not ere.size:
        return float('nan')
    bad = errors > erroneous
    if bad.any():
        return float(threshold_at_tpr(ere, bad, target_tpr))
    return float(ere.max())


def flagging_report(ere: Sequence[np.ndarray], errors: Sequence[np.ndarray],
                    erroneous: float, target_tpr: float, unit: str = 'mm',
                    min_images: int = MIN_FLAG_IMAGES,
                    min_erroneous: int = MIN_FLAG_ERRONEOUS,
                    num_resamples: int = 1000) -> Dict:
    """The flag threshold of the calibration split with its basis.

    Args:
        ere (Sequence[np.ndarray]): Per calibration image, the ERE of its
            counted landmarks, (M_i,) each, in ``unit``.
        errors (Sequence[np.ndarray]): Their radial errors, same shapes.
        erroneous (float): Radial error above which a landmark is
            erroneous, in ``unit``.
        target_tpr (float): TPR the threshold reaches on the split.
        unit (str): ``'mm'`` or ``'px'`` (original-image pixels).
        min_images (int): Fewest images a used threshold comes from.
        min_erroneous (int): Fewest erroneous landmarks it comes from.
        num_resamples (int): Bootstrap resamples of the images.

    Returns:
        dict: ``threshold`` (and ``threshold_<unit>``), ``tpr`` / ``fpr``
        on the split, ``num_landmarks``, ``num_erroneous``, ``num_images``,
        ``interval`` (the bootstrap interval's dict: ``low``, ``high``,
        ``reason``...), ``used`` (bool) and ``reason`` (why not, else
        ``''``), ``min_images``, ``min_erroneous``, ``basis``.

    Raises:
        CalibrationError: With no counted landmark at all.
    """
    ids = np.concatenate([np.full(len(e), i) for i, e in enumerate(ere)] or
                         [np.empty(0, int)])
    ere_all = np.concatenate(list(ere) or [np.empty(0)]).astype(np.float64)
    err_all = np.concatenate(list(errors) or [np.empty(0)]).astype(
        np.float64)
    if not ere_all.size:
        raise CalibrationError('no annotated landmark on the calibration '
                               'split: no flag threshold can be fitted')
    is_erroneous = err_all > erroneous
    basis = f'target TPR on {int(is_erroneous.sum())} erroneous landmarks'
    if not is_erroneous.any():
        basis = ('largest ERE of the split: no erroneous landmark '
                 f'(> {erroneous} {unit}) to reach a TPR on')
        print_log(f'calibration: {basis}', logger='current', level=30)
    if is_erroneous.all():
        basis += '; no good landmark, so no FPR'
    threshold = flag_threshold(ere_all, err_all, erroneous, target_tpr)
    interval = image_bootstrap(
        lambda e, r: flag_threshold(e, r, erroneous, target_tpr),
        (ere_all, err_all), image_ids=ids,
        options=BootstrapOptions(num_resamples=num_resamples))
    num_images = sum(1 for e in ere if len(e))
    reason = flag_basis_shortfall(num_images, int(is_erroneous.sum()),
                                  min_images, min_erroneous)

    def rate(mask):
        return float((ere_all[mask] > threshold).mean()) if mask.any() \
            else float('nan')

    return {
        'unit': unit,
        f'erroneous_{unit}': erroneous,
        'target_tpr': target_tpr,
        'threshold': threshold,
        f'threshold_{unit}': threshold,
        'tpr': rate(is_erroneous),
        'fpr': rate(~is_erroneous),
        'num_landmarks': int(ere_all.size),
        'num_erroneous': int(is_erroneous.sum()),
        'num_images': int(num_images),
        'interval': interval.as_dict(),
        'used': reason is None,
        'reason': reason or '',
        'min_images': int(min_images),
        'min_erroneous': int(min_erroneous),
        'basis': basis
    }


def describe_flagging(report: Dict) -> str:
    """:func:`flagging_report` as one line for the calibration log: the
    threshold, its interval and basis, or why it is not used."""
    unit = report['unit']
    iv = report['interval']
    low, high = iv.get('low'), iv.get('high')
    interval = (f'95 % interval over images [{low:.3f}, {high:.3f}]'
                if np.isfinite(low) and np.isfinite(high) else
                f'no interval: {iv.get("reason") or "too few images"}')
    text = (f'flag ERE > {report["threshold"]:.3f} {unit} ({interval}; '
            f'{report["num_images"]} images, {report["num_erroneous"]} '
            'erroneous landmarks)')
    if unit != 'mm':
        text += ' (original-image pixels: no spacing)'
    if not report['used']:
        text = f'{report["reason"]}; it would be {text}'
    return text
