# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Why a landmark is flagged, and what the configuration flag rests on.

A landmark is flagged for review for one or more reasons
(:data:`FLAG_REASONS`):

- ``'invalid'``: the model gave no usable map for it (no position);
- ``'ere'``: its Expected Radial Error is above the calibrated threshold
  (a spread-out map: the model says it is unsure);
- ``'implausible'``: the configuration model
  (:mod:`mmchh.codecs.utils.configuration_model`) finds it more than the
  calibrated number of sigmas away from where the other landmarks place
  it -- a map can be sharp and still in the wrong place, which ERE cannot
  see.

The head puts the signals in ``pred_instances`` (1, K) each:
``keypoint_ere_flagged`` (the ERE flag alone), ``keypoint_plausibility``
(sigma, NaN = not scored), ``keypoint_plausibility_mm``,
``keypoint_implausible`` and ``keypoint_flagged`` (ERE flag OR
implausible, invalid maps flagged too). A checkpoint calibrated without a
configuration model has only ``keypoint_flagged`` (the ERE flag, as
before): its landmarks get ``plausibility`` None and the outputs say the
configuration flag is not fitted -- no value is ever invented.
"""
from typing import Any, Dict, List, Optional

import numpy as np
from torch import nn

from mmchh.evaluation.functional.conformal import conformal_min_maps
from mmchh.models.heads.flag_basis import head_number

__all__ = [
    'FLAG_REASONS', 'configuration_status',
    'describe_configuration_status', 'landmark_flag_fields',
    'reasons_text'
]

#: Every reason a landmark can be flagged for, in the order they are listed.
FLAG_REASONS = ('invalid', 'ere', 'implausible')

#: The head's per-landmark fields read here.
_FIELDS = dict(flagged='keypoint_flagged', ere='keypoint_ere_flagged',
               sigma='keypoint_plausibility',
               sigma_mm='keypoint_plausibility_mm',
               implausible='keypoint_implausible')


def configuration_status(head: nn.Module) -> Dict[str, Any]:
    """The configuration (plausibility) flag of ``head`` and its basis.

    Args:
        head (nn.Module): A head; one calibrated with a configuration model
            has ``configuration_threshold`` (sigma),
            ``configuration_alpha`` and ``configuration_num_scores``.

    Returns:
        dict: ``status``: ``'used'`` (landmarks beyond ``threshold`` sigma
        are flagged), ``'not_used'`` (a configuration model was fitted but
        no threshold set: ``reason`` says so) or ``'none'`` (not fitted);
        ``reason`` (``''`` when used); ``threshold`` (sigma), ``alpha``
        (the calibration's false-flag rate the threshold was set for) and
        ``num_scores`` (calibration scores it came from), None when not
        recorded.
    """
    threshold = head_number(head, 'configuration_threshold')
    num_scores = head_number(head, 'configuration_num_scores')
    alpha = head_number(head, 'configuration_alpha')
    out = dict(threshold=threshold,
               # the float32 buffer as typed (0.02, not 0.0199999995)
               alpha=None if alpha is None else float(str(np.float32(alpha))),
               num_scores=None if num_scores is None else int(num_scores))
    fitted = getattr(head, 'has_configuration_model', None)
    if fitted is None:
        # the model's buffers: NaN until calibration fits it
        mean = getattr(head, 'configuration_mean', None)
        fitted = num_scores is not None if mean is None else bool(
            np.isfinite(np.asarray(mean.detach().cpu()
                                   if hasattr(mean, 'detach') else mean,
                                   np.float64)).any())
    fitted = bool(fitted)
    if threshold is not None:
        out.update(status='used', reason='')
    elif fitted:
        out.update(status='not_used',
                   reason='configuration flag not used: ' + _why_no_threshold(
                       out['alpha'], out['num_scores']))
    else:
        out.update(status='none', reason=(
            'configuration flag not fitted (the checkpoint was calibrated '
            'without a configuration model)'))
    return out


def _why_no_threshold(alpha: Optional[float],
                      num_scores: Optional[int]) -> str:
    """Why a fitted configuration model has no threshold: the split
    conformal threshold at ``alpha`` needs more correct calibration
    landmarks than it had (see
    :func:`~mmchh.evaluation.functional.conformal_min_maps`)."""
    tail = 'plausibility scores reported, nothing flagged implausible'
    if alpha is None or num_scores is None:
        return f'no plausibility threshold was set; {tail}'
    need = conformal_min_maps(1.0 - alpha)
    if num_scores < need:
        return (f'{num_scores} correct calibration landmarks are fewer than '
                f'the {need} a threshold at alpha = {alpha:g} needs; {tail}')
    return (f'no plausibility threshold was set (alpha {alpha:g}, '
            f'{num_scores} calibration scores); {tail}')


def describe_configuration_status(status: Dict[str, Any]) -> str:
    """``status`` (:func:`configuration_status`) as one line for logs, e.g.
    ``'configuration flag: implausible > 3.03 sigma (alpha 0.01, 76
    calibration scores)'``, or why there is none."""
    if status['status'] != 'used':
        return status['reason']
    basis = []
    if status['alpha'] is not None:
        basis.append(f'alpha {status["alpha"]:g}')
    if status['num_scores'] is not None:
        basis.append(f'{status["num_scores"]} calibration scores')
    return (f'configuration flag: implausible > {status["threshold"]:.3g} '
            'sigma' + (f' ({", ".join(basis)})' if basis else ''))


def reasons_text(reasons: List[str], sep: str = ';') -> str:
    """``['ere', 'implausible']`` -> ``'ere;implausible'`` (``''`` for
    none), the CSV cell."""
    return sep.join(reasons)


def _row(pred, key: str, dtype) -> Optional[np.ndarray]:
    """The (K,) row of the (1, K) field ``key``, or None when absent."""
    return np.asarray(pred[key], dtype)[0] if key in pred else None


def _finite(values: Optional[np.ndarray], k: int) -> Optional[float]:
    if values is None or not np.isfinite(values[k]):
        return None
    return float(values[k])


def landmark_flag_fields(pred, valid: np.ndarray) -> List[Dict[str, Any]]:
    """Per landmark: ``flagged``, ``flag_reasons``, ``plausibility``,
    ``plausibility_mm`` and ``implausible`` from the head's fields.

    Args:
        pred (InstanceData): The sample's ``pred_instances``.
        valid (np.ndarray): (K,) bool, the landmarks with an answer.

    Returns:
        list[dict]: One dict per landmark. ``flagged`` is the head's
        ``keypoint_flagged``, True for an invalid landmark; where the head
        gives none (an mm ERE threshold without spacing, or no threshold)
        True for an implausible landmark -- the one signal that ran -- and
        None (not judged) for the others; ``flag_reasons`` lists why (from
        :data:`FLAG_REASONS`, in that order) and is empty exactly when
        ``flagged`` is not True; ``plausibility`` (sigma) and
        ``plausibility_mm`` are None when the landmark was not scored (or
        the checkpoint has no configuration model, or no spacing for mm);
        ``implausible`` is None when not scored or no threshold is set.
        With the head's ``keypoint_constrained`` (``test_cfg=dict(
        plausibility_decode=True)``) also ``constrained_xy``: the
        plausibility-constrained position ``[x, y]`` (image pixels) of an
        implausible landmark, None for the others; beside ``x, y``, never
        replacing them.

    Note:
        Every field is (1, K); ``keypoint_constrained`` (1, K, 2). A
        checkpoint without
        ``keypoint_ere_flagged`` (calibrated before the configuration flag)
        flags on ERE alone, so its ``keypoint_flagged`` is the ERE flag.
    """
    rows = {name: _row(pred, key, bool if name in (
        'flagged', 'ere', 'implausible') else np.float64)
        for name, key in _FIELDS.items()}
    out = []
    for k in range(len(valid)):
        if not valid[k]:
            out.append(dict(flagged=True, flag_reasons=['invalid'],
                            plausibility=None, plausibility_mm=None,
                            implausible=None))
            continue
        sigma = _finite(rows['sigma'], k)
        # a landmark not scored (NaN sigma) was never judged plausible
        implausible = None if rows['implausible'] is None or sigma is None \
            else bool(rows['implausible'][k])
        flagged = None if rows['flagged'] is None else bool(
            rows['flagged'][k])
        if flagged is None and implausible:
            flagged = True  # the only signal that ran said so
        if rows['ere'] is not None:
            ere = bool(rows['ere'][k])
        else:
            # without the ERE flag alone: the combined flag is ERE OR
            # implausible, so a flag that is not implausible is the ERE's
            ere = bool(flagged) and not implausible
        reasons = []
        if flagged:
            reasons = [name for name, on in (('ere', ere), ('implausible',
                                                           implausible))
                       if on] or ['ere']
        out.append(dict(flagged=flagged, flag_reasons=reasons,
                        plausibility=sigma,
                        plausibility_mm=_finite(rows['sigma_mm'], k),
                        implausible=implausible))
    if 'keypoint_constrained' in pred:
        xy = np.asarray(pred.keypoint_constrained, np.float64)[0]
        for k, fields in enumerate(out):
            fields['constrained_xy'] = [float(v) for v in xy[k]] if (
                valid[k] and np.isfinite(xy[k]).all()) else None
    return out
