# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
import os
import os.path as osp
import warnings
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmpose.registry import METRICS

from mmchh.utils.errors import InputError
from mmchh.utils.io import write_json
from mmchh.visualization.calibration_plots import (ere_vs_error_png,
                                                   reliability_diagram_png,
                                                   roc_png)
from ..functional.calibration_metrics import (binned_correlation,
                                              expected_calibration_error,
                                              good_erroneous_table,
                                              pearson_spearman, roc_auc)
from ..functional.conformal import disc_regions, region_summary
from ..functional.radial_error import radial_errors_mm


@METRICS.register_module()
class UncertaintyMetric(BaseMetric):
    """How honest the heatmaps are: ERE, calibration and flagging.

    Fed per-landmark scalars that ``SoftmaxHeatmapHead.predict`` computes on
    the device (``keypoint_ere_mm`` or ``keypoint_ere_px``,
    ``keypoint_scores``, ``keypoint_nll``, ``keypoint_mode_hit``, optionally
    ``keypoint_flagged``); no heatmap ever reaches the metric or crosses
    processes.

    Units: with a ``spacing`` in every sample (cephalograms), ERE and radial
    errors are in mm; without one in any sample (COCO, OneHand10K), in
    pixels of the original image (``keypoint_ere_px``). The unit is named
    in the log line and as ``unit`` in the JSON (``last_details``); the
    metric keys are the same in both. One evaluation never mixes them.
    Reported (prefix ``unc``):

    - ``MERE``: mean Expected Radial Error (mm, or image px);
    - ``pearson`` / ``spearman``: correlation of ERE with the radial error
      over landmarks, and ``pearson_binned`` / ``spearman_binned`` over the
      paper's bins of ``corr_bin_size`` landmarks sorted by ERE;
    - ``NLL``: mean negative log-likelihood of the ground-truth pixel;
    - ``ECE`` (the paper's bins: equal widths up to the largest confidence)
      and ``ECE_unit`` (equal widths on [0, 1]). Confidence = probability at
      the mode; correct = the mode is the ground-truth heatmap pixel (the
      pixel the codec assigns to the ground truth, same rounding);
    - ``AUC``: ROC AUC of ERE for "erroneous" = radial error >
      ``erroneous_mm`` (``erroneous_px`` in image pixels);
    - with flags (a threshold set by calibration), the paper's Table 2:
      ``{overall,good,erroneous}/{count,MRE,SDR_2mm,...}``, Good = not
      flagged. In image pixels only ``count`` and ``MRE`` (px): SDR radii
      in pixels depend on each data set's image size, so none is
      reported;
    - with conformal regions (thresholds fitted by calibration, the head's
      ``keypoint_in_region`` / ``keypoint_region_area*`` /
      ``keypoint_disc_radius``), per level: ``conformal/coverage`` (fraction
      of landmarks inside their region), ``conformal/area_mm2`` (median
      region area; ``area_px2`` in original-image pixels without
      ``spacing``), the disc baseline's ``conformal/disc_coverage`` (radial
      error in image pixels <= its radius) and ``conformal/disc_area_mm2``
      (``pi r^2``; ``disc_area_px2``), and ``conformal/coverage/<landmark>``.
      The first level has no suffix, every other one ``_<level>`` (e.g.
      ``conformal/coverage_0.95``).

    With ``out_dir``, also writes ``<prefix>_uncertainty.json`` (strict
    JSON: every number, the bins and the ROC; NaN is written as null) and
    three PNGs: the reliability diagram, ERE vs radial error (scatter and
    binned) and the ROC curve.

    Counted landmarks without a valid prediction (``keypoint_valid`` False
    or a non-finite keypoint/ERE: the network gave no answer) are counted
    as ``num_invalid`` with a warning, and then every aggregate number is
    NaN (the statistics of a set with an unknown member are not numbers);
    no plot is drawn.

    Args:
        erroneous_mm (float): Radial error (mm) above which a prediction is
            erroneous, with ``spacing``. Defaults to 2.0 (the paper's text).
        erroneous_px (float): The same in original-image pixels, for
            samples without ``spacing``. Defaults to 10.0.
        num_bins (int): Reliability bins. Defaults to 10.
        corr_bin_size (int): Landmarks per bin of the binned correlation.
            Defaults to 36 (the paper).
        sdr_thresholds (sequence): SDR thresholds (mm) of the table (mm
            units only).
        out_dir (str, optional): Where to write the JSON and plots.
        collect_device (str): 'cpu' or 'gpu'.
        prefix (str, optional): Defaults to ``'unc'``.

    Note:
        Needs the ground truth in the samples, encoded on the model's grid
        (``GenerateTargetIfAnnotated`` in the val/test pipeline). Per
        landmark, every array is (K,) per sample; conformal ones (K, L).
        ``spacing`` (mm per pixel) is optional but all-or-none.
    """

    default_prefix: Optional[str] = 'unc'

    def __init__(self,
                 erroneous_mm: float = 2.0,
                 erroneous_px: float = 10.0,
                 num_bins: int = 10,
                 corr_bin_size: int = 36,
                 sdr_thresholds: Sequence[float] = (2.0, 2.5, 3.0, 4.0),
                 out_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.erroneous_mm = float(erroneous_mm)
        self.erroneous_px = float(erroneous_px)
        self.num_bins = int(num_bins)
        self.corr_bin_size = int(corr_bin_size)
        self.sdr_thresholds = tuple(float(t) for t in sdr_thresholds)
        self.out_dir = out_dir
        #: per-landmark arrays of the last evaluation (the ERE vs error
        #: plot of ``out_dir`` draws them); empty after an invalid one
        self.last_arrays: Dict[str, np.ndarray] = {}
        #: everything ``<prefix>_uncertainty.json`` holds for the last
        #: evaluation
        self.last_details: Dict = {}

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample['pred_instances']
            where = sample.get('img_path', sample.get('img_id'))
            spacing = sample.get('spacing')
            ere_key = 'keypoint_ere_px' if spacing is None else \
                'keypoint_ere_mm'
            missing = [
                k for k in (ere_key, 'keypoint_nll', 'keypoint_mode_hit')
                if k not in pred
            ]
            if missing:
                raise KeyError(
                    f'UncertaintyMetric: sample {where} lacks {missing}; '
                    'use SoftmaxHeatmapHead, encode the ground truth with '
                    'GenerateTargetIfAnnotated(encoder=<model.head.decoder>) '
                    'in the val/test pipeline and keep "input_scale" (and '
                    '"spacing" for mm) in PackPoseInputs(meta_keys=...)')
            gt = sample['gt_instances']
            errors = radial_errors_mm(
                np.asarray(pred['keypoints'])[0, :, :2],
                np.asarray(gt['keypoints'])[0, :, :2],
                1.0 if spacing is None else np.asarray(
                    spacing, np.float64).reshape(-1))
            ere = np.asarray(pred[ere_key], np.float64)[0]
            visible = np.asarray(
                gt.get('keypoints_visible',
                       np.ones(errors.shape))).reshape(-1) > 0
            invalid = ~(np.isfinite(errors) & np.isfinite(ere))
            if 'keypoint_valid' in pred:
                invalid |= ~np.asarray(pred['keypoint_valid'], bool)[0]
            result = dict(
                invalid=invalid,
                error=errors,
                ere=ere,
                confidence=np.asarray(pred['keypoint_scores'],
                                      np.float64)[0],
                nll=np.asarray(pred['keypoint_nll'], np.float64)[0],
                hit=np.asarray(pred['keypoint_mode_hit'], bool)[0],
                counted=visible & (np.asarray(
                    pred['keypoint_target_weight'])[0] > 0),
                # one entry per sample: its unit and name
                in_mm=np.array([spacing is not None]),
                sample=np.array([str(where)]))
            if 'keypoint_flagged' in pred:
                result['flagged'] = np.asarray(pred['keypoint_flagged'],
                                               bool)[0]
            if 'keypoint_in_region' in pred:
                result.update(self._conformal_result(pred, gt, sample))
            self.results.append(result)

    def _unit(self, cat: dict) -> str:
        """``'mm'`` when every sample has a spacing, ``'px'`` when none
        has; an InputError naming both kinds otherwise."""
        in_mm = cat['in_mm']
        if in_mm.all():
            return 'mm'
        if not in_mm.any():
            return 'px'
        with_mm, without = cat['sample'][in_mm], cat['sample'][~in_mm]
        raise InputError(
            f'{self.prefix}: {len(with_mm)} of {len(in_mm)} samples have a '
            f'"spacing" (e.g. {with_mm[0]}) and {len(without)} do not (e.g. '
            f'{without[0]}); errors and ERE would mix mm and image pixels. '
            'Give every image a spacing or none')

    @staticmethod
    def _conformal_result(pred, gt, sample) -> Dict[str, np.ndarray]:
        """One sample's conformal regions and disc baseline, as (K, L)
        arrays (``level`` (L,)); areas in mm² with ``spacing``, else px²."""
        spacing = sample.get('spacing')
        error_px = radial_errors_mm(
            np.asarray(pred['keypoints'])[0, :, :2],
            np.asarray(gt['keypoints'])[0, :, :2], 1.0)
        radius = np.asarray(pred['keypoint_disc_radius'], np.float64)[0]
        # float32's largest value stands for an infinite radius (too few
        # calibration maps for the level: the whole plane)
        radius[radius >= np.finfo(np.float32).max] = np.inf
        # every (landmark, level) pair as one column of one row
        disc_inside, disc_area = disc_regions(
            np.repeat(error_px, radius.shape[1])[None], radius.reshape(-1))
        disc_inside = disc_inside.reshape(radius.shape)
        disc_area = disc_area.reshape(radius.shape)
        if spacing is None:
            area = np.asarray(pred['keypoint_region_area'], np.float64)[0]
        else:
            area = np.asarray(pred['keypoint_region_area_mm2'],
                              np.float64)[0]
            # a disc of r image pixels is an ellipse of pi r^2 sx sy mm^2
            disc_area = disc_area * float(
                np.prod(np.broadcast_to(
                    np.asarray(spacing, np.float64).reshape(-1), (2, ))))
        return dict(
            region_inside=np.asarray(pred['keypoint_in_region'], bool)[0],
            region_area=area,
            disc_inside=disc_inside,
            disc_area=disc_area,
            area_in_mm2=np.array([spacing is not None]),
            level=np.asarray(pred['keypoint_region_level'],
                             np.float64)[0][None])

    def compute_metrics(self, results: list) -> Dict[str, float]:
        cat = {
            k: np.concatenate([r[k] for r in results])
            for k in results[0] if all(k in r for r in results)
        }
        mask = cat['counted']
        unit = self._unit(cat)
        invalid = cat['invalid'][mask] if 'invalid' in cat else np.zeros(
            int(mask.sum()), bool)
        num_invalid = int(invalid.sum())
        if num_invalid:
            warnings.warn(
                f'{self.prefix}: {num_invalid} of {int(mask.sum())} '
                'landmarks have no valid prediction (non-finite network '
                'output); every uncertainty metric is NaN', UserWarning)
            return self._invalid_metrics(cat, mask, num_invalid, unit)
        error, ere = cat['error'][mask], cat['ere'][mask]
        conf, hit, nll = (cat['confidence'][mask], cat['hit'][mask],
                          cat['nll'][mask])
        erroneous = error > self._erroneous(unit)
        self.last_arrays = dict(error=error, ere=ere, confidence=conf,
                                hit=hit, nll=nll)

        metrics = dict(MERE=float(ere.mean()), NLL=float(nll.mean()))
        metrics['pearson'], metrics['spearman'] = pearson_spearman(ere, error)
        binned = binned_correlation(ere, error, self.corr_bin_size)
        metrics['pearson_binned'] = binned['pearson']
        metrics['spearman_binned'] = binned['spearman']
        ece = expected_calibration_error(conf, hit, self.num_bins, 'max')
        ece_unit = expected_calibration_error(conf, hit, self.num_bins,
                                              'unit')
        metrics['ECE'], metrics['ECE_unit'] = ece['ece'], ece_unit['ece']
        metrics['erroneous_fraction'] = float(erroneous.mean() * 100)
        try:
            roc = roc_auc(ere, erroneous)
            metrics['AUC'] = roc['auc']
        except ValueError as e:
            roc = None
            metrics['AUC'] = float('nan')
            print_log(f'UncertaintyMetric: no ROC ({e})', logger='current')
        table = None
        if 'flagged' in cat:
            table = good_erroneous_table(
                error, ere, threshold=None, flagged=cat['flagged'][mask],
                sdr_thresholds=self._sdr_thresholds(unit))
            for row, values in table.items():
                for key, value in values.items():
                    metrics[f'{row}/{key}'] = value
        if 'region_inside' in cat:
            metrics.update(self._conformal_metrics(cat, mask))
        metrics = {k: float(v) for k, v in metrics.items()}
        metrics['num_invalid'] = 0

        self.last_details = dict(
            metrics=metrics,
            unit=unit,
            **{f'erroneous_{unit}': self._erroneous(unit)},
            reliability=ece,
            reliability_unit=ece_unit,
            binned_correlation=binned,
            roc=roc,
            table=table)
        if self.out_dir:
            self._write_outputs()
        where = 'mm' if unit == 'mm' else 'px of the original images'
        MMLogger.get_current_instance().info(
            f'{self.prefix}: MERE {metrics["MERE"]:.3f} {unit}, NLL '
            f'{metrics["NLL"]:.3f}, ECE {metrics["ECE"]:.4f}, AUC '
            f'{metrics["AUC"]:.3f} ({mask.sum()} landmarks; errors and ERE '
            f'in {where})')
        return metrics

    def _erroneous(self, unit: str) -> float:
        """The radial error above which a landmark is erroneous, in
        ``unit``."""
        return self.erroneous_mm if unit == 'mm' else self.erroneous_px

    def _sdr_thresholds(self, unit: str) -> tuple:
        """The table's SDR radii: ``sdr_thresholds`` in mm, none in image
        pixels (the keys say mm, and pixel radii depend on the data)."""
        return self.sdr_thresholds if unit == 'mm' else ()

    def _conformal_metrics(self, cat: dict,
                           mask: np.ndarray) -> Dict[str, float]:
        """``conformal/...`` numbers of every level (see the class
        docstring); the math is :func:`region_summary`."""
        in_mm2 = cat['area_in_mm2']
        unit = 'mm2' if in_mm2.all() else 'px2'
        if unit == 'px2' and in_mm2.any():
            raise InputError(f'{self.prefix}: some samples have a spacing '
                             'and some do not; conformal areas would mix '
                             'mm² and px²')
        names = (self.dataset_meta or {}).get('keypoint_id2name', {})
        levels = cat['level'][0]
        num_images = len(cat['level'])

        def per_image(key, level_index):  # (N * K, L) -> (N, K)
            return cat[key][:, level_index].reshape(num_images, -1)

        counted = mask.reshape(num_images, -1)
        metrics = {}
        for i, level in enumerate(levels):
            suffix = '' if i == 0 else f'_{level:g}'
            region = region_summary(
                per_image('region_inside', i), per_image('region_area', i),
                counted)
            disc = region_summary(
                per_image('disc_inside', i), per_image('disc_area', i),
                counted)
            metrics[f'conformal/coverage{suffix}'] = region['coverage']
            metrics[f'conformal/area_{unit}{suffix}'] = region['median_area']
            metrics[f'conformal/disc_coverage{suffix}'] = disc['coverage']
            metrics[f'conformal/disc_area_{unit}{suffix}'] = \
                disc['median_area']
            for k, value in enumerate(region['coverage_per_landmark']):
                name = names.get(k, str(k))
                metrics[f'conformal/coverage/{name}{suffix}'] = value
        return metrics

    def _invalid_metrics(self, cat: dict, mask: np.ndarray,
                         num_invalid: int, unit: str) -> Dict[str, float]:
        """Every aggregate NaN, ``num_invalid`` counted; JSON, no plots."""
        nan = float('nan')
        keys = ['MERE', 'NLL', 'pearson', 'spearman', 'pearson_binned',
                'spearman_binned', 'ECE', 'ECE_unit', 'erroneous_fraction',
                'AUC']
        metrics = {k: nan for k in keys}
        if 'flagged' in cat:
            table = good_erroneous_table(
                np.ones(1), np.ones(1), threshold=None,
                flagged=np.zeros(1, bool),
                sdr_thresholds=self._sdr_thresholds(unit))
            for row, values in table.items():
                for key in values:
                    metrics[f'{row}/{key}'] = nan
        if 'region_inside' in cat:
            metrics.update({
                k: nan
                for k in self._conformal_metrics(cat, mask)
            })
        metrics['num_invalid'] = num_invalid
        self.last_arrays = {}
        self.last_details = dict(
            metrics=metrics, unit=unit,
            **{f'erroneous_{unit}': self._erroneous(unit)},
            num_landmarks=int(mask.sum()), num_invalid=num_invalid)
        if self.out_dir:
            base = osp.join(self.out_dir, self.prefix or 'uncertainty')
            write_json(f'{base}_uncertainty.json', self.last_details)
        MMLogger.get_current_instance().warning(
            f'{self.prefix}: {num_invalid} invalid landmark predictions; '
            'uncertainty metrics are NaN')
        return metrics

    def _write_outputs(self) -> None:
        os.makedirs(self.out_dir, exist_ok=True)
        base = osp.join(self.out_dir, self.prefix or 'uncertainty')
        d, a = self.last_details, self.last_arrays
        reliability_diagram_png(f'{base}_reliability.png', d['reliability'],
                                title=f'{self.prefix}: reliability')
        ere_vs_error_png(f'{base}_ere_vs_error.png', a['ere'], a['error'],
                         d['binned_correlation'])
        if d['roc'] is not None:
            roc_png(f'{base}_roc.png', d['roc'])
        write_json(f'{base}_uncertainty.json', d)
