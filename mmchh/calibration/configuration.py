# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The configuration model and its plausibility threshold, fitted during
calibration.

ERE cannot see a heatmap that is sharp in the wrong place; the other
landmarks can (:mod:`mmchh.codecs.utils.configuration_model`).
:func:`~mmchh.calibration.calibrate_model` fits, after the conformal regions and
before the seal:

1. the configuration model on the **training** split's ground truth
   (:func:`training_shapes`: every image's landmarks, or every annotator's
   when the records carry them, in mm with a spacing) -- never on the
   calibration split, whose predictions fit the threshold;
2. the threshold on the **calibration** split: every image is predicted
   through the model's own ``test_step`` (the head, holding the model,
   scores each predicted configuration exactly as at inference:
   ``keypoint_plausibility``), and the threshold is the split-conformal
   quantile at level ``1 - alpha`` of the sigmas of the *correct* counted
   landmarks (radial error <= ``erroneous_mm``, or ``erroneous_px``
   without a spacing: what the ERE flag calls correct). A correct
   landmark of a new image is then flagged implausible with probability
   at most ``alpha`` (exchangeability of the correct landmarks, pooled
   over landmarks and images).

Both are stored in the head's calibration state (the ``configuration_*``
buffers, sealed with the rest), fitted on the main process and broadcast,
and reported in ``calibration.json`` under ``configuration``.
"""
import copy
import logging
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import collect_results, is_main_process
from mmengine.logging import print_log

from mmchh.codecs.utils.configuration_model import (MIN_LANDMARKS,
                                                    ConfigurationModel,
                                                    fit_configuration_model)
from mmchh.evaluation.functional.conformal import (conformal_min_maps,
                                                   conformal_rank,
                                                   conformal_thresholds)
from mmchh.evaluation.functional.radial_error import radial_errors_mm
from mmchh.utils.spacing import Spacing
from .evaluation_pass import broadcast_from_main, changed_test_cfg
from .settings import CalibrationError, error_unit

__all__ = [
    'DEFAULT_PLAUSIBILITY_ALPHA', 'training_shapes', 'shape_dataset',
    'fit_configuration_calibration'
]

#: The default share of correct calibration landmarks the plausibility
#: threshold may flag. Split conformal needs ``n >= 1 / alpha - 1`` scores
#: for its rank to exist (:func:`~mmchh.evaluation.functional.conformal.
#: conformal_min_maps`): 49 correct landmarks at 0.02. Three calibration
#: images of the 19 cephalometric landmarks (the fewest the ERE flag
#: threshold is used on) hold 57, so the threshold exists on the smallest
#: usable split; 0.01 would need 99 (six images), and a larger alpha only
#: buys more false alarms (19 x alpha per image on average).
DEFAULT_PLAUSIBILITY_ALPHA = 0.02


def _points(value, num: Optional[int] = None) -> np.ndarray:
    """(K, 2) float64 from a record's (1, K, 2) or (K, 2) points."""
    arr = np.asarray(value, np.float64)
    return arr.reshape(-1, 2) if num is None else arr.reshape(num, 2)


def training_shapes(dataset, return_unit: bool = False):
    """The ground-truth shapes of a dataset, in mm with a spacing.

    Every record gives one shape (its ``keypoints``, NaN where
    ``keypoints_visible`` is 0), or, when it carries
    ``annotator_keypoints``, one shape per annotator (their own points,
    NaN where unmarked) instead of only their mean: the annotators'
    disagreement is part of how landmarks vary. Shapes with fewer than
    ``MIN_LANDMARKS`` landmarks are left out, and repeated shapes (a
    ``RepeatDataset``, an annotator copying another) count once.

    Args:
        dataset: Anything with ``len`` and ``get_data_info(i)`` (an MMPose
            dataset, e.g. ``CephalometricDataset``).
        return_unit (bool): Also return the shapes' unit.

    Returns:
        np.ndarray | tuple: the shapes (N, K, 2) float64, original-image
        pixels times ``spacing`` (x, y); with ``return_unit`` also
        ``'mm'``, or ``'px'`` when no record has a spacing.

    Raises:
        CalibrationError: when some records have a spacing and others do
            not, or the records' landmark counts differ.
    """
    shapes: Dict[bytes, np.ndarray] = {}
    with_spacing = []
    num = None
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        points = _points(info['keypoints'])
        num = len(points) if num is None else num
        if len(points) != num:
            raise CalibrationError(
                f'training record {i} has {len(points)} landmarks, the '
                f'first had {num}')
        visible = np.asarray(info.get('keypoints_visible',
                                      np.ones(num))).reshape(-1) > 0
        spacing = info.get('spacing')
        with_spacing.append(spacing is not None)
        scale = 1.0 if spacing is None else Spacing.parse(
            spacing, f'training record {i}: "spacing"',
            error=CalibrationError).array()
        annotators = info.get('annotator_keypoints') or {}
        candidates = [_points(p, num) for p in annotators.values()] or [
            np.where(visible[:, None], points, np.nan)]
        for shape in candidates:
            shape = shape * scale
            if np.isfinite(shape).all(-1).sum() >= MIN_LANDMARKS:
                shapes.setdefault(shape.tobytes(), shape)
    if 0 < sum(with_spacing) < len(with_spacing):
        raise CalibrationError(
            f'{sum(with_spacing)} of {len(with_spacing)} training images '
            'have a "spacing" and the others do not; the configuration '
            'model would mix mm and image pixels. Give every image a '
            'spacing or none')
    unit = 'mm' if with_spacing and all(with_spacing) else 'px'
    shapes = np.stack(list(shapes.values())) if shapes else np.zeros(
        (0, num or 0, 2))
    return (shapes, unit) if return_unit else shapes


def shape_dataset(shape_data) -> Tuple[Any, Optional[str]]:
    """The training dataset ``shape_data`` names, and why there is none.

    Args:
        shape_data: A dataset (``get_data_info``), a dataloader (its
            ``dataset``), a dataset config or a dataloader config (a dict
            with ``dataset``; built without its pipeline: only the records
            are read), or None.

    Returns:
        tuple: the dataset (None when there is none) and the reason (None
        when there is one).
    """
    if shape_data is None:
        return None, ('no training split was given (the configuration '
                      'model is fitted on the training ground truth, never '
                      'on the calibration split)')
    if isinstance(shape_data, dict):
        from mmpose.registry import DATASETS
        cfg = copy.deepcopy(shape_data)
        while 'dataset' in cfg:  # a dataloader's or a wrapper's dataset
            cfg = cfg['dataset']
        if 'datasets' not in cfg:  # only the records are read
            cfg.update(pipeline=[], serialize_data=False)
        try:
            return DATASETS.build(cfg), None
        except FileNotFoundError as e:  # MissingDataError too
            return None, f'the training split cannot be read: {e}'
    if not hasattr(shape_data, 'get_data_info'):
        shape_data = getattr(shape_data, 'dataset', shape_data)
    if not hasattr(shape_data, 'get_data_info'):
        raise CalibrationError(
            'shape_data must be the training dataset, its dataloader or '
            f'their config; got {type(shape_data).__name__}')
    return shape_data, None


def _fit_model(shape_data, num_keypoints: int
               ) -> Tuple[Optional[ConfigurationModel], Dict]:
    """The configuration model of the training split (main process), and
    the report's fields about it."""
    dataset, reason = shape_dataset(shape_data)
    info = dict(num_shapes=0, num_landmarks=int(num_keypoints), unit=None)
    if dataset is None:
        return None, dict(info, reason=reason)
    shapes, info['unit'] = training_shapes(dataset, return_unit=True)
    info['num_shapes'] = int(len(shapes))
    if len(shapes) and shapes.shape[1] != num_keypoints:
        raise CalibrationError(
            f'the training split has {shapes.shape[1]} landmarks, the model '
            f'{num_keypoints}')
    if num_keypoints < MIN_LANDMARKS:
        return None, dict(info, reason=(
            f'{num_keypoints} landmark(s): a configuration needs at least '
            f'{MIN_LANDMARKS}'))
    if len(shapes) < 2:
        return None, dict(info, reason=(
            f'{len(shapes)} training shape(s) with at least '
            f'{MIN_LANDMARKS} landmarks; the model needs 2'))
    model = fit_configuration_model(shapes)
    info['landmarks_without_model'] = [
        int(k) for k in np.flatnonzero(~model.usable)]
    return model, info


def _pack(model: Optional[ConfigurationModel], num: int) -> torch.Tensor:
    """The model as one (9 K,) float64 tensor (NaN: none), to broadcast."""
    if model is None:
        return torch.full((9 * num, ), float('nan'), dtype=torch.float64)
    return torch.as_tensor(np.concatenate([
        model.mean.ravel(), model.offset.ravel(), model.cov.ravel(),
        np.asarray(model.num_shapes, np.float64)]))


def _unpack(packed: torch.Tensor, num: int) -> Optional[ConfigurationModel]:
    values = packed.cpu().numpy()
    if np.isnan(values[:2 * num]).all():
        return None
    return ConfigurationModel(
        mean=values[:2 * num].reshape(num, 2),
        offset=values[2 * num:4 * num].reshape(num, 2),
        cov=values[4 * num:8 * num].reshape(num, 2, 2),
        num_shapes=values[8 * num:].astype(np.int64))


def _calibration_rows(model, loader) -> List[Dict[str, np.ndarray]]:
    """Per calibration image of this rank: its counted landmarks' sigma,
    radial error (mm with a spacing, else image pixels), ERE flag (None
    without an ERE threshold) and whether it has a spacing."""
    rows = []
    # scored even where the config switches the fields off at inference
    with changed_test_cfg(model, plausibility=True):
        with torch.no_grad():
            for data in loader:
                for sample in model.test_step(data):
                    pred, gt = sample.pred_instances, sample.gt_instances
                    if 'keypoint_plausibility' not in pred:
                        raise CalibrationError(
                            'the calibration samples cannot be scored for '
                            'plausibility: keep "input_center" and '
                            '"input_scale" in PackPoseInputs(meta_keys=...) '
                            'of the calibration pipeline')
                    spacing = sample.metainfo.get('spacing')
                    error = radial_errors_mm(
                        np.asarray(pred.keypoints)[0],
                        np.asarray(gt.keypoints)[0, :, :2],
                        1.0 if spacing is None else Spacing.parse(
                            spacing,
                            f'{sample.metainfo.get("img_path")}: "spacing"',
                            error=CalibrationError).array())
                    counted = np.asarray(pred.keypoint_target_weight)[0] > 0
                    flag = pred.get('keypoint_ere_flagged')
                    rows.append(dict(
                        sigma=np.asarray(pred.keypoint_plausibility)[0][
                            counted],
                        error=error[counted],
                        ere=None if flag is None else
                        np.asarray(flag)[0][counted],
                        in_mm=spacing is not None))
    return rows


def _signals(sigma, correct, ere, threshold) -> Dict:
    """What each flag catches on the calibration split (counts)."""
    implausible = sigma > threshold if np.isfinite(threshold) else \
        np.zeros_like(correct)
    erroneous = ~correct

    def count(mask):
        return int(mask.sum())

    out = dict(num_counted=count(np.ones_like(correct)),
               num_erroneous=count(erroneous),
               num_unscored=count(~np.isfinite(sigma)),
               implausible=dict(erroneous=count(implausible & erroneous),
                                correct=count(implausible & correct)))
    if ere is not None:
        out.update(
            ere=dict(erroneous=count(ere & erroneous),
                     correct=count(ere & correct)),
            either=dict(erroneous=count((ere | implausible) & erroneous),
                        correct=count((ere | implausible) & correct)),
            implausible_only=dict(
                erroneous=count(implausible & ~ere & erroneous)))
    return out


def _threshold_fit(rows, alpha: float, erroneous_mm: float,
                   erroneous_px: float) -> Dict:
    """The conformal threshold over the correct landmarks (main process)
    and the report's fields about it."""
    unit = error_unit(np.array([r['in_mm'] for r in rows]))
    limit = erroneous_mm if unit == 'mm' else erroneous_px
    sigma = np.concatenate([r['sigma'] for r in rows]).astype(np.float64)
    error = np.concatenate([r['error'] for r in rows])
    correct = error <= limit
    ere = None if any(r['ere'] is None for r in rows) else \
        np.concatenate([r['ere'] for r in rows]).astype(bool)
    scores = sigma[correct & np.isfinite(sigma)]
    level = 1 - alpha
    rank = conformal_rank(len(scores), level)
    threshold = float('nan')
    if rank <= len(scores):
        threshold = float(conformal_thresholds(scores, [level])['pooled'][0])
        reason = (f'threshold {threshold:.3f} sigma: rank {rank} of the '
                  f'{len(scores)} correct calibration landmarks\' sigmas '
                  f'(error <= {limit:g} {unit}), split conformal at level '
                  f'{level:g}')
    else:
        reason = (f'{len(scores)} correct calibration landmarks (error <= '
                  f'{limit:g} {unit}) are fewer than the '
                  f'{conformal_min_maps(level)} a threshold at alpha = '
                  f'{alpha:g} needs; plausibility scores are reported, '
                  'nothing is flagged implausible')
    return dict(
        threshold=threshold if np.isfinite(threshold) else None,
        num_scores=int(len(scores)), rank=int(rank),
        used=bool(np.isfinite(threshold)), reason=reason,
        erroneous=dict(limit=float(limit), unit=unit),
        signals=_signals(sigma, correct, ere, threshold))


def fit_configuration_calibration(model, loader, shape_data,
                                  alpha: float = DEFAULT_PLAUSIBILITY_ALPHA,
                                  erroneous_mm: float = 2.0,
                                  erroneous_px: float = 10.0
                                  ) -> Optional[Dict]:
    """Fits and stores the head's configuration model and threshold.

    Call inside :func:`~mmchh.calibration.calibrate_model`'s frozen evaluation,
    before the seal. Without a training split, with fewer than
    ``MIN_LANDMARKS`` landmarks or 2 shapes, the head's configuration
    state is cleared (a stale one must not outlive the new calibration)
    and the report says why.

    Args:
        model: The pose estimator (unwrapped) with a calibrated head.
        loader (DataLoader): The calibration split (ground truth encoded).
        shape_data: The training split (see :func:`shape_dataset`), or None.
        alpha (float): The share of correct landmarks the threshold may
            flag (see :data:`DEFAULT_PLAUSIBILITY_ALPHA`).
        erroneous_mm, erroneous_px (float): The radial error above which
            a landmark is erroneous, with / without a spacing.

    Returns:
        dict | None: On the main process ``num_shapes`` (training shapes),
        ``num_landmarks`` (K), ``unit`` (of the shapes: ``'mm'`` or
        ``'px'``), ``landmarks_without_model`` (indices of landmarks in
        fewer than 2 shapes, never scored), ``alpha``,
        ``threshold`` (sigma, None when not used), ``num_scores`` (correct
        calibration landmarks), ``rank`` (the one the level needs: used
        when it is at most ``num_scores``), ``used``, ``reason``,
        ``erroneous`` (the radial error limit and its unit) and
        ``signals`` (counts on the calibration split of the erroneous and
        correct landmarks each flag catches; in-sample for the threshold,
        so ``implausible.correct`` is about ``alpha * num_scores`` by
        construction); None elsewhere.
    """
    head = model.head
    num = int(head.configuration_mean.shape[0])
    fitted, info = None, None
    if is_main_process():
        fitted, info = _fit_model(shape_data, num)
    device = head.configuration_mean.device
    fitted = _unpack(broadcast_from_main(_pack(fitted, num), device).cpu(), num)
    # scores only while the threshold is fitted: nothing is implausible yet
    head.set_configuration_model(fitted)
    report = None if info is None else dict(
        info, alpha=float(alpha), threshold=None, num_scores=0, rank=None,
        used=False)
    if fitted is None:
        if report is not None:
            print_log(f'calibration: no configuration model: '
                      f'{report["reason"]}', logger='current',
                      level=logging.WARNING)
        return report
    rows = collect_results(_calibration_rows(model, loader),
                           len(loader.dataset), device='cpu')
    values = torch.full((2, ), float('nan'), dtype=torch.float64)
    if is_main_process():
        report.update(_threshold_fit(rows, alpha, erroneous_mm,
                                     erroneous_px))
        values[0] = float('nan') if report['threshold'] is None else \
            report['threshold']
        values[1] = report['num_scores']
    values = broadcast_from_main(values, device).cpu()
    # alpha and the count are kept without a threshold: they say why
    head.set_configuration_model(fitted, float(values[0]), alpha,
                                 float(values[1]))
    if report is not None:
        print_log(f'calibration: configuration model of '
                  f'{report["num_shapes"]} training shapes; '
                  f'{report["reason"]}', logger='current',
                  level=logging.INFO if report['used'] else logging.WARNING)
    return report
