# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import MMLogger
from mmpose.registry import METRICS

from mmchh.utils.spacing import Spacing

from ..functional.bootstrap import bootstrap_mean
from ..functional.radial_error import radial_errors_mm
from .interval_metric import IntervalMetric


def _sdr(errors: np.ndarray, threshold: float) -> float:
    """Successful detection rate (%) of ``errors`` (mm) below
    ``threshold``; NaN when any error is NaN (an invalid prediction)."""
    if not np.isfinite(errors).all():
        return float('nan')
    return float((errors < threshold).mean() * 100)


@METRICS.register_module()
class CephalometricMetric(IntervalMetric):
    """Radial error, MRE and SDR in mm, the ISBI 2015 challenge metrics.

    For every landmark: the radial error is the Euclidean distance between
    prediction and ground truth in original-image coordinates, times the
    image's ``spacing`` (mm/pixel, per axis). Reported, overall and per
    landmark: MRE (mean radial error), its standard deviation, and SDR
    (successful detection rate: the fraction of errors strictly below each
    threshold, in %).

    Only landmarks visible in the ground truth count; their number is
    reported as ``num_landmarks`` so that nothing is dropped silently.

    A counted landmark without a valid prediction (non-finite keypoint, or
    ``keypoint_valid`` False: the network gave no answer) is never dropped
    nor averaged away: their number is ``num_invalid`` (with a warning), and
    every aggregate over a set containing one (MRE, MRE_std, SDR, overall
    and per landmark) is NaN.

    Confidence intervals (unless ``ci_resamples=0``), so that a difference
    between two runs can be told from image-to-image noise:
    ``MRE_low`` / ``MRE_high`` and ``SDR_<t>mm_low`` / ``_high`` for every
    threshold, a seeded bootstrap over IMAGES (the landmarks of one image
    are not independent) of the pooled mean
    (:func:`~mmchh.evaluation.functional.bootstrap_mean`; SDR is the mean
    of 0/100 per landmark), the expanded percentile interval. NaN with
    fewer than 2 images or any invalid prediction. None per landmark (too
    many keys).

    Args:
        thresholds (sequence): SDR thresholds in mm. Defaults to the
            challenge's (2, 2.5, 3, 4).
        per_landmark (bool): Also report ``MRE/<name>`` and, for the first
            threshold, ``SDR_<t>mm/<name>`` (``SDR_2mm/<name>`` by default)
            per landmark.
        spacing (float, optional): mm/pixel to use when a sample carries no
            ``spacing``; by default such a sample is an error.
        **interval_args: ``ci_level`` (0.95), ``ci_resamples`` (1000; 0
            reports no interval), ``ci_seed`` (0), ``collect_device`` and
            ``prefix`` (default ``'ceph'``), as in
            :class:`~.interval_metric.IntervalMetric`.

    Note:
        Each data sample needs ``pred_instances.keypoints`` (1, K, 2),
        ``gt_instances.keypoints`` (1, K, 2), ``gt_instances
        .keypoints_visible`` (1, K) and the ``spacing`` meta key (add it to
        ``PackPoseInputs(meta_keys=...)``). Only (K,) errors per image travel
        between processes.
    """

    default_prefix: Optional[str] = 'ceph'

    def __init__(self,
                 thresholds: Sequence[float] = (2.0, 2.5, 3.0, 4.0),
                 per_landmark: bool = True,
                 spacing: Optional[float] = None,
                 **interval_args) -> None:
        super().__init__(**interval_args)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.per_landmark = per_landmark
        self.spacing = spacing

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            spacing = sample.get('spacing', self.spacing)
            where = sample.get('img_path', sample.get('img_id'))
            if spacing is None:
                raise KeyError(
                    f'CephalometricMetric: sample {where} has no '
                    '"spacing"; add it to PackPoseInputs(meta_keys=...) or '
                    'set the metric\'s spacing=')
            spacing = Spacing.parse(
                spacing,
                f'CephalometricMetric: sample {where}: "spacing"').array()
            pred = np.asarray(sample['pred_instances']['keypoints'])[0, :, :2]
            gt = np.asarray(sample['gt_instances']['keypoints'])[0, :, :2]
            visible = np.asarray(
                sample['gt_instances'].get('keypoints_visible',
                                           np.ones(gt.shape[:1])))
            errors = radial_errors_mm(pred, gt, spacing)
            valid = sample['pred_instances'].get('keypoint_valid', None)
            if valid is not None:
                errors[~np.asarray(valid, bool).reshape(-1)] = np.nan
            self.results.append(
                dict(errors=errors, visible=visible.reshape(-1) > 0))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        errors = np.stack([r['errors'] for r in results])  # (N, K)
        visible = np.stack([r['visible'] for r in results])
        valid = errors[visible]
        num_invalid = int((~np.isfinite(valid)).sum())
        # NaN errors propagate through mean and std; SDR must not count an
        # invalid landmark as a plain miss
        metrics = dict(
            MRE=float(valid.mean()),
            MRE_std=float(valid.std()),
            num_landmarks=int(visible.sum()),
            num_invalid=num_invalid)
        for t in self.thresholds:
            metrics[f'SDR_{t:g}mm'] = _sdr(valid, t)
        if self.ci_resamples:
            metrics.update(self._intervals(errors, visible, num_invalid))
        if self.per_landmark:
            names = (self.dataset_meta or {}).get('keypoint_id2name', {})
            t0 = self.thresholds[0]
            for k in range(errors.shape[1]):
                e = errors[visible[:, k], k]
                if e.size == 0:
                    continue
                name = names.get(k, str(k))
                metrics[f'MRE/{name}'] = float(e.mean())
                metrics[f'SDR_{t0:g}mm/{name}'] = _sdr(e, t0)
        if num_invalid:
            warnings.warn(
                f'{self.prefix}: {num_invalid} of {metrics["num_landmarks"]} '
                'landmarks have no valid prediction (non-finite network '
                'output); MRE and SDR over them are NaN', UserWarning)
        interval = (f' [{metrics["MRE_low"]:.3f}, {metrics["MRE_high"]:.3f}]'
                    if 'MRE_low' in metrics else '')
        MMLogger.get_current_instance().info(
            f'{self.prefix}: MRE {metrics["MRE"]:.3f}{interval} mm over '
            f'{metrics["num_landmarks"]} landmarks in {len(results)} images')
        return metrics

    def _intervals(self, errors: np.ndarray, visible: np.ndarray,
                   num_invalid: int) -> Dict[str, float]:
        """``MRE_low`` / ``_high`` and ``SDR_<t>mm_low`` / ``_high`` from
        the (N, K) errors and visibility, one row per image; all NaN with
        an invalid prediction."""
        values = {'MRE': errors}
        for t in self.thresholds:
            values[f'SDR_{t:g}mm'] = (errors < t) * 100.0
        options = self.bootstrap_options()
        out = {}
        for key, value in values.items():
            if num_invalid:
                low = high = float('nan')
            else:
                res = bootstrap_mean(value, valid=visible, options=options)
                low, high = res.low, res.high
            out[f'{key}_low'], out[f'{key}_high'] = low, high
        return out
