# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
import os
import os.path as osp
import warnings
from functools import partial
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.logging import MMLogger, print_log
from mmpose.registry import METRICS

from mmchh.utils.errors import InputError
from mmchh.utils.io import write_json, write_npz
from mmchh.utils.spacing import Spacing
from mmchh.visualization.calibration_plots import (ere_vs_error_png,
                                                   reliability_diagram_png,
                                                   roc_png)
from ..functional.bootstrap import BootstrapInterval, bootstrap_mean
from ..functional.bootstrap_weighted import weighted_bootstrap
from ..functional.calibration_metrics import (binned_correlation,
                                              expected_calibration_error,
                                              good_erroneous_table,
                                              pearson_spearman, roc_auc)
from ..functional.conformal import disc_regions, region_summary
from ..functional.radial_error import radial_errors_mm
from ..functional.weighted_statistics import (weighted_ece, weighted_pearson,
                                              weighted_roc_auc,
                                              weighted_spearman)
from .flag_signal_report import (flag_signal_details,
                                 flag_signal_interval_keys,
                                 flag_signal_metrics, select_flag_signals)
from .interval_metric import IntervalMetric
from .uncertainty_keys import has_interval, landmark_rows, with_ci


@METRICS.register_module()
class UncertaintyMetric(IntervalMetric):
    """How honest the heatmaps are: ERE, calibration and flagging.

    Fed per-landmark scalars that ``SoftmaxHeatmapHead.predict`` computes on
    the device (``keypoint_ere_mm`` or ``keypoint_ere_px``,
    ``keypoint_mode_prob``, ``keypoint_nll``, ``keypoint_mode_hit``, optionally
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
    - with flags, ``flag_signals/<signal>/<rate>`` for the ERE flag alone
      (``ere``: ``keypoint_ere_flagged``, or ``keypoint_flagged`` of a head
      without a configuration flag), the configuration flag alone
      (``implausible``: ``keypoint_implausible``) and either (``combined``:
      ``keypoint_flagged``): ``erroneous_recall`` and
      ``catastrophic_recall`` (fraction of the landmarks with radial error
      above ``erroneous_mm`` / ``catastrophic_mm`` that it flags) and
      ``false_flag_rate`` (fraction of the others it flags), with
      ``flag_signals/num_{erroneous,catastrophic,good}``; a signal the
      predictions lack is absent (the JSON's ``flag_signals`` says it is
      not fitted). See :mod:`.flag_signal_report`.

    Confidence intervals (unless ``ci_resamples=0``), so that a difference
    between two runs can be told from image-to-image noise: for
    ``MERE``, ``NLL``, ``ECE``, ``ECE_unit``, ``pearson``, ``spearman``,
    ``AUC``, ``erroneous_fraction``, the table's ``MRE`` and ``SDR_*`` of
    every row, the ``flag_signals`` rates and the conformal ``coverage`` /
    ``disc_coverage`` of every level, ``<key>_low`` and ``<key>_high`` (e.g. ``unc/AUC_low``): a
    seeded bootstrap over IMAGES (each sample is one image; its landmarks
    are not independent), the expanded percentile interval of
    :func:`~mmchh.evaluation.functional.image_bootstrap`. NaN where
    undefined (fewer than 2 images, too many resamples with one class for
    the AUC, ...); the JSON's ``intervals`` holds each one in full
    (``BootstrapInterval.as_dict()``: estimate, level, failures, reason).

    With ``out_dir``, also writes ``<prefix>_uncertainty.json`` (strict
    JSON: every number, the bins, the ROC and the intervals; NaN is written
    as null), ``<prefix>_landmarks.npz`` (one row per landmark of every
    sample: ``sample`` (name), ``landmark`` (index), ``error``, ``ere``,
    ``confidence``, ``hit``, ``nll``, ``counted``, ``invalid``, and the 0-d
    ``unit`` of error and ERE; two runs over the same images pair up by
    (sample, landmark): :func:`~mmchh.evaluation.functional.compare_runs`)
    and three PNGs: the reliability
    diagram, ERE vs radial error (scatter and binned) and the ROC curve.

    Counted landmarks without a valid prediction (``keypoint_valid`` False
    or a non-finite keypoint/ERE: the network gave no answer) are counted
    as ``num_invalid`` with a warning, and then every aggregate number is
    NaN (the statistics of a set with an unknown member are not numbers);
    no plot is drawn, no ``.npz`` written, and every ``_low`` / ``_high``
    is NaN too.

    Args:
        erroneous_mm (float): Radial error (mm) above which a prediction is
            erroneous, with ``spacing``. Defaults to 2.0 (the paper's text).
        erroneous_px (float): The same in original-image pixels, for
            samples without ``spacing``. Defaults to 10.0.
        catastrophic_mm (float): Radial error (mm) above which a miss is
            catastrophic (``flag_signals``). Defaults to 10.0.
        catastrophic_px (float): The same in original-image pixels.
            Defaults to 50.0 (5 x ``erroneous_px``, as 10 = 5 x 2 mm).
        num_bins (int): Reliability bins. Defaults to 10.
        corr_bin_size (int): Landmarks per bin of the binned correlation.
            Defaults to 36 (the paper).
        sdr_thresholds (sequence): SDR thresholds (mm) of the table (mm
            units only).
        out_dir (str, optional): Where to write the JSON, ``.npz`` and
            plots.
        **interval_args: ``ci_level`` (0.95), ``ci_resamples`` (1000; 0
            reports no interval: no ``_low`` / ``_high`` key), ``ci_seed``
            (0), ``collect_device`` and ``prefix`` (default ``'unc'``), as
            in :class:`~.interval_metric.IntervalMetric`.

    Note:
        Needs the ground truth in the samples, encoded on the model's grid
        (``GenerateTargetIfAnnotated`` in the val/test pipeline). Per
        landmark, every array is (K,) per sample; conformal ones (K, L).
        ``spacing`` (mm per pixel) is optional but all-or-none. The
        bootstrap's image of a landmark is the index of its sample in the
        results (names may repeat), and its weighted statistics take (R, M)
        weights over the M counted landmarks.
    """

    default_prefix: Optional[str] = 'unc'

    def __init__(self,
                 erroneous_mm: float = 2.0,
                 erroneous_px: float = 10.0,
                 catastrophic_mm: float = 10.0,
                 catastrophic_px: float = 50.0,
                 num_bins: int = 10,
                 corr_bin_size: int = 36,
                 sdr_thresholds: Sequence[float] = (2.0, 2.5, 3.0, 4.0),
                 out_dir: Optional[str] = None,
                 **interval_args) -> None:
        super().__init__(**interval_args)
        self.erroneous_mm = float(erroneous_mm)
        self.erroneous_px = float(erroneous_px)
        self.catastrophic = dict(mm=float(catastrophic_mm),
                                 px=float(catastrophic_px))
        self.num_bins = int(num_bins)
        self.corr_bin_size = int(corr_bin_size)
        self.sdr_thresholds = tuple(float(t) for t in sdr_thresholds)
        self.out_dir = out_dir
        #: per-landmark arrays of the counted landmarks of the last
        #: evaluation, with their ``sample`` name and ``landmark`` index
        #: (the ERE vs error plot of ``out_dir`` draws them); empty after
        #: an invalid one
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
                k for k in (ere_key, 'keypoint_mode_prob', 'keypoint_nll',
                            'keypoint_mode_hit')
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
                1.0 if spacing is None else Spacing.parse(
                    spacing,
                    f'UncertaintyMetric: sample {where}: "spacing"').array())
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
                confidence=np.asarray(pred['keypoint_mode_prob'],
                                      np.float64)[0],
                nll=np.asarray(pred['keypoint_nll'], np.float64)[0],
                hit=np.asarray(pred['keypoint_mode_hit'], bool)[0],
                counted=visible & (np.asarray(
                    pred['keypoint_target_weight'])[0] > 0),
                # one entry per sample: its unit and name
                in_mm=np.array([spacing is not None]),
                sample=np.array([str(where)]))
            # the flags: O(K) bools, each signal on its own
            for key, name in (('keypoint_flagged', 'flagged'),
                              ('keypoint_ere_flagged', 'ere_flagged'),
                              ('keypoint_implausible', 'implausible')):
                if key in pred:
                    result[name] = np.asarray(pred[key], bool)[0]
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
            where = sample.get('img_path', sample.get('img_id'))
            sp = Spacing.parse(
                spacing, f'UncertaintyMetric: sample {where}: "spacing"')
            # a disc of r image pixels is an ellipse of pi r^2 sx sy mm^2
            disc_area = disc_area * (sp.x * sp.y)
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
        rows = landmark_rows(results, cat)
        if num_invalid:
            warnings.warn(
                f'{self.prefix}: {num_invalid} of {int(mask.sum())} '
                'landmarks have no valid prediction (non-finite network '
                'output); every uncertainty metric is NaN', UserWarning)
            return self._invalid_metrics(cat, rows, mask, num_invalid, unit)
        error, ere = cat['error'][mask], cat['ere'][mask]
        conf, hit, nll = (cat['confidence'][mask], cat['hit'][mask],
                          cat['nll'][mask])
        erroneous = error > self._erroneous(unit)
        self.last_arrays = dict(sample=rows['sample'][mask],
                                landmark=rows['landmark'][mask], error=error,
                                ere=ere, confidence=conf, hit=hit, nll=nll)

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
        signals = select_flag_signals(cat, mask)
        metrics.update(flag_signal_metrics(
            signals, error, self._erroneous(unit), self.catastrophic[unit]))
        metrics = {k: float(v) for k, v in metrics.items()}
        intervals = self._intervals(
            rows['image'][mask], dict(self.last_arrays, erroneous=erroneous),
            cat, mask, unit) if self.ci_resamples else {}
        for key, interval in intervals.items():
            metrics[f'{key}_low'] = interval.low
            metrics[f'{key}_high'] = interval.high
        metrics['num_invalid'] = 0

        self.last_details = dict(
            metrics=metrics,
            unit=unit,
            **{f'erroneous_{unit}': self._erroneous(unit)},
            reliability=ece,
            reliability_unit=ece_unit,
            binned_correlation=binned,
            roc=roc,
            table=table,
            flag_signals=flag_signal_details(
                signals, metrics, unit, self._erroneous(unit),
                self.catastrophic[unit]),
            intervals={k: v.as_dict() for k, v in intervals.items()})
        if self.out_dir:
            self._write_outputs(rows, cat)
        where = 'mm' if unit == 'mm' else 'px of the original images'
        MMLogger.get_current_instance().info(
            f'{self.prefix}: MERE {with_ci(metrics, "MERE", ".3f")} {unit}, '
            f'NLL {with_ci(metrics, "NLL", ".3f")}, ECE '
            f'{with_ci(metrics, "ECE", ".4f")}, AUC '
            f'{with_ci(metrics, "AUC", ".3f")} ({mask.sum()} landmarks in '
            f'{len(results)} images; errors and ERE in {where}'
            + (f'; {self.ci_level:.0%} bootstrap intervals over images'
               if intervals else '') + ')')
        return metrics

    def _intervals(self, ids: np.ndarray, a: Dict[str, np.ndarray],
                   cat: dict, mask: np.ndarray,
                   unit: str) -> Dict[str, BootstrapInterval]:
        """The bootstrap interval of every key :func:`has_interval`
        names, resampling images ``ids`` (M,) of the counted landmarks
        ``a`` (M,) each; the statistics are those of the metrics."""
        opts = dict(image_ids=ids, options=self.bootstrap_options())
        ece = partial(weighted_ece, num_bins=self.num_bins)
        # an infinite NLL (a zero probability) has no interval, not a crash
        nll = bootstrap_mean(a['nll'], **opts) if np.isfinite(
            a['nll']).all() else self._no_interval(
                'non-finite NLL values', np.unique(ids).size)
        out = dict(
            MERE=bootstrap_mean(a['ere'], **opts),
            NLL=nll,
            ECE=weighted_bootstrap(partial(ece, binning='max'),
                                   (a['confidence'], a['hit']), **opts),
            ECE_unit=weighted_bootstrap(partial(ece, binning='unit'),
                                        (a['confidence'], a['hit']), **opts),
            pearson=weighted_bootstrap(weighted_pearson,
                                       (a['ere'], a['error']), **opts),
            spearman=weighted_bootstrap(weighted_spearman,
                                        (a['ere'], a['error']), **opts),
            AUC=weighted_bootstrap(weighted_roc_auc,
                                   (a['ere'], a['erroneous']), **opts),
            erroneous_fraction=bootstrap_mean(a['erroneous'] * 100.0,
                                              **opts))
        if 'flagged' in cat:
            flagged = cat['flagged'][mask]
            for row, keep in (('overall', np.ones_like(flagged)),
                              ('good', ~flagged), ('erroneous', flagged)):
                out[f'{row}/MRE'] = bootstrap_mean(a['error'], valid=keep,
                                                   **opts)
                for t in self._sdr_thresholds(unit):
                    out[f'{row}/SDR_{t:g}mm'] = bootstrap_mean(
                        (a['error'] < t) * 100.0, valid=keep, **opts)
        out.update(flag_signal_interval_keys(
            select_flag_signals(cat, mask), a['error'],
            self._erroneous(unit), self.catastrophic[unit], ids,
            num_resamples=self.ci_resamples, level=self.ci_level,
            seed=self.ci_seed))
        if 'region_inside' in cat:
            for i, level in enumerate(cat['level'][0]):
                suffix = '' if i == 0 else f'_{level:g}'
                for key in ('region_inside', 'disc_inside'):
                    name = 'coverage' if key == 'region_inside' else \
                        'disc_coverage'
                    out[f'conformal/{name}{suffix}'] = bootstrap_mean(
                        cat[key][mask][:, i].astype(np.float64), **opts)
        return out

    def _no_interval(self, reason: str,
                     num_images: int) -> BootstrapInterval:
        """An undefined interval (NaN everywhere) with its reason."""
        nan = float('nan')
        return BootstrapInterval(
            estimate=nan, low=nan, high=nan, level=self.ci_level,
            num_resamples=self.ci_resamples, num_images=num_images,
            num_failed=0, reason=reason)

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

    def _invalid_metrics(self, cat: dict, rows: Dict[str, np.ndarray],
                         mask: np.ndarray,
                         num_invalid: int, unit: str) -> Dict[str, float]:
        """Every aggregate NaN, ``num_invalid`` counted; JSON and the
        landmarks file, no plots."""
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
        metrics.update(flag_signal_metrics(
            select_flag_signals(cat, mask), None, self._erroneous(unit),
            self.catastrophic[unit]))
        intervals = {}
        if self.ci_resamples:
            undefined = self._no_interval(
                f'{num_invalid} invalid landmark predictions; the '
                'statistics are undefined', len(cat['sample']))
            intervals = {
                key: undefined.as_dict()
                for key in metrics if has_interval(key)
            }
            for key in intervals:
                metrics[f'{key}_low'] = metrics[f'{key}_high'] = nan
        metrics['num_invalid'] = num_invalid
        self.last_arrays = {}
        self.last_details = dict(
            metrics=metrics, unit=unit,
            **{f'erroneous_{unit}': self._erroneous(unit)},
            num_landmarks=int(mask.sum()), num_invalid=num_invalid,
            intervals=intervals)
        if self.out_dir:
            base = osp.join(self.out_dir, self.prefix or 'uncertainty')
            write_json(f'{base}_uncertainty.json', self.last_details)
            self._write_landmarks(rows, cat, unit)
        MMLogger.get_current_instance().warning(
            f'{self.prefix}: {num_invalid} invalid landmark predictions; '
            'uncertainty metrics are NaN')
        return metrics

    def _write_landmarks(self, rows: Dict[str, np.ndarray], cat: dict,
                         unit: str) -> None:
        """``<prefix>_landmarks.npz``: every landmark of every sample,
        ``counted`` marking the measured ones and ``invalid`` the ones
        without a valid prediction (written on an invalid evaluation too,
        so an earlier run's file never stands for this one); ``unit`` (0-d)
        names the unit of ``error`` and ``ere``."""
        os.makedirs(self.out_dir, exist_ok=True)
        base = osp.join(self.out_dir, self.prefix or 'uncertainty')
        write_npz(
            f'{base}_landmarks.npz',
            dict(sample=rows['sample'], landmark=rows['landmark'],
                 unit=np.array(unit),
                 invalid=cat.get('invalid', np.zeros(len(rows['sample']),
                                                     bool)),
                 **{k: cat[k] for k in ('error', 'ere', 'confidence', 'hit',
                                        'nll', 'counted')}))

    def _write_outputs(self, rows: Dict[str, np.ndarray], cat: dict) -> None:
        """The JSON, the per-landmark ``.npz`` (every landmark of every
        sample, ``counted`` marking the ones measured) and the plots."""
        os.makedirs(self.out_dir, exist_ok=True)
        base = osp.join(self.out_dir, self.prefix or 'uncertainty')
        d, a = self.last_details, self.last_arrays
        self._write_landmarks(rows, cat, d['unit'])
        reliability_diagram_png(f'{base}_reliability.png', d['reliability'])
        ere_vs_error_png(f'{base}_ere_vs_error.png', a['ere'], a['error'],
                         d['binned_correlation'], unit=d['unit'])
        if d['roc'] is not None:
            roc_png(f'{base}_roc.png', d['roc'], unit=d['unit'])
        write_json(f'{base}_uncertainty.json', d)
