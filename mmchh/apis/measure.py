# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Evaluates predicted cephalometric measurements on a converted split.

The logic behind ``tools/measure.py``: every image of a COCO-keypoint JSON
written by :func:`~mmchh.datasets.converters.convert_isbi` is predicted
with its own pixel spacing, its eight ISBI 2015 measurements are sampled
from the calibrated heatmaps (:func:`~mmchh.apis.predict_landmarks` with
``measurements=True``), and they are compared with

* the **label lines** of the annotation files (the JSON's top-level
  ``ANB`` ... ``MW`` keys of each image, the first annotator's): accuracy of
  the most likely class;
* the **true value**, computed with the same definitions from the JSON's
  ground-truth ``keypoints`` (by default the mean of the annotators): how
  often it lies inside the predicted 95 % interval (coverage, near 0.95 when
  calibration works), and the mean absolute error of the point value.

It also reports how often the class of the true value equals the label line
(``label_agreement``): a check of the measurement definitions against the
labels, independent of the model (below 1 where the label was computed from
other landmark positions, e.g. one annotator's instead of the mean).

Invisible means absent: a ground-truth landmark with visibility 0 (the
converters write a missing point as ``0,0,0``) has no position, and a
measurement that needs it has no true value for that image -- it is
reported missing (``missing.truth`` of the image, ``n_missing_truth`` and
``missing_reasons`` of the summary), left out of coverage, MAE and label
agreement, never computed from (0, 0). The same for a landmark the model
could not predict (``missing.prediction``, ``n_missing_prediction``).
"""
import json
import os.path as osp
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Union

import numpy as np

from mmchh.calibration.conformal.measurement_intervals import (
    MEASUREMENT_INTERVAL_FILE, MeasurementIntervalFit)
from mmchh.calibration.conformal.landmark_jitter import MIN_JITTER_IMAGES
from mmchh.calibration.conformal.split_draws import fit_intervals_from_draws
from mmchh.datasets.ceph_meta import CEPH_LABEL_NAMES, NUM_CEPH_LANDMARKS
from mmchh.evaluation.functional import (ceph_measurements, classify_ceph,
                                         scaled_intervals)
from mmchh.evaluation.functional.cephalometric import \
    missing_measurement_landmarks
from mmchh.utils.errors import InputError
from mmchh.utils.io import atomic_write_text, csv_text, write_json
from mmchh.utils.spacing import Spacing

from .batch_infer import MEASUREMENT_SAMPLING_ASSUMPTION, progress_bar
from .inference import check_measurement_model, predict_landmarks
from .measure_report import (EVAL_CSV_COLUMNS, eval_rows, format_table,
                             summarize_measurements)
from .measurement_intervals import interval_kind, stored_interval_choice
from .region_measurements import (RegionDraws, region_center_spread,
                                  region_image_draws)

__all__ = ['EVAL_CSV_COLUMNS', 'evaluate_measurements',
           'fit_split_intervals', 'format_table', 'load_measurement_split']

@dataclass(frozen=True)
class SplitPrediction:
    """How every image of a split is predicted and its measurements drawn
    (the settings :func:`evaluate_measurements` and
    :func:`fit_split_intervals` pass to each step).

    Attributes:
        num_samples (int): Landmark draws per heatmap.
        seed (int): Seed; image ``j`` of a split draws from
            ``default_rng([seed, j])``.
        batch_size (int): Images per forward pass.
        img_root (str, optional): See :func:`load_measurement_split`.
        progress (bool): Progress bar on stderr.
    """
    num_samples: int = 1000
    seed: int = 0
    batch_size: int = 4
    img_root: Optional[str] = None
    progress: bool = True


@dataclass(frozen=True)
class IntervalRequest:
    """Which measurement intervals :func:`evaluate_measurements` reports
    and where their scale comes from.

    Attributes:
        intervals (str): ``'fitted'`` or ``'full-map'``.
        calib_file (str, optional): A calibration split to fit on first.
        interval_fit (str | MeasurementIntervalFit, optional): A fit made
            before (or its JSON file).
        level (float): Coverage level of the fitted intervals.
        region_level (float, optional): The conformal region level the
            landmarks are drawn within; None: the head's highest.
    """
    intervals: str = 'fitted'
    calib_file: Optional[str] = None
    interval_fit: Union[None, str, MeasurementIntervalFit] = None
    level: float = 0.95
    region_level: Optional[float] = None


def load_measurement_split(ann_file: str,
                           img_root: Optional[str] = None) -> List[Dict]:
    """Reads what :func:`evaluate_measurements` needs from a converted JSON.

    Args:
        ann_file (str): A JSON written by ``tools/convert_isbi.py``.
        img_root (str, optional): Folder the images' ``file_name`` is
            relative to; default the JSON's folder.

    Returns:
        list[dict]: per image ``id``, ``file_name``, ``path``, ``spacing``
        (x, y), ``labels`` (name -> class code), ``keypoints`` (19, 2; NaN
        where not annotated) and ``visible`` (19,) bool (visibility > 0).

    Raises:
        FileNotFoundError: If the JSON is missing.
        ValueError: Naming the file, the image and the field, when an image
            lacks ``spacing`` (or has one that is not one or two positive
            finite numbers: a ``SpacingError``), a label key, or a 19-point
            ``keypoints`` annotation.
    """
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'annotation file {ann_file} does not exist')
    with open(ann_file, encoding='utf-8') as f:
        doc = json.load(f)
    images = doc.get('images')
    if not images:
        raise ValueError(f'{ann_file}: no "images" in the file')
    root = osp.dirname(osp.abspath(ann_file)) if img_root is None else \
        img_root
    anns = {}
    for ann in doc.get('annotations', []):
        anns.setdefault(ann.get('image_id'), ann)
    out = []
    for im in images:
        where = f'{ann_file}: image id={im.get("id")} ' \
                f'({im.get("file_name")})'
        spacing = im.get('spacing')
        if spacing is None:
            raise ValueError(
                f'{where} has no "spacing" (mm/pixel); measurements need it. '
                'Convert with tools/convert_isbi.py, which writes it')
        sp = Spacing.parse(spacing, f'{where}: "spacing"', source='record')
        missing = [n for n in CEPH_LABEL_NAMES if n not in im]
        if missing:
            raise ValueError(
                f'{where} has no label field(s) {", ".join(missing)}: the '
                'annotation files had no classification lines (the 8 lines '
                'after the 19 points)')
        ann = anns.get(im.get('id'))
        kpts = None if ann is None else ann.get('keypoints')
        if kpts is None or len(kpts) != 3 * NUM_CEPH_LANDMARKS:
            raise ValueError(
                f'{where}: its annotation has no "keypoints" field with '
                f'{NUM_CEPH_LANDMARKS} (x, y, v) triples')
        xyv = np.asarray(kpts, np.float64).reshape(-1, 3)
        visible = xyv[:, 2] > 0
        # an invisible point's coordinates (0, 0 from the converters) are
        # never read: it has no position
        points = np.where(visible[:, None], xyv[:, :2], np.nan)
        out.append(
            dict(
                id=im.get('id'),
                file_name=im['file_name'],
                path=osp.join(root, im['file_name']),
                spacing=sp.xy,
                labels={n: int(im[n])
                        for n in CEPH_LABEL_NAMES},
                keypoints=points,
                visible=visible))
    return out


def evaluate_measurements(
        model,
        ann_file: str,
        num_samples: int = 1000,
        seed: int = 0,
        batch_size: int = 4,
        img_root: Optional[str] = None,
        out_dir: Optional[str] = None,
        progress: bool = True,
        calib_file: Optional[str] = None,
        interval_fit: Union[None, str, MeasurementIntervalFit] = None,
        level: float = 0.95,
        region_level: Optional[float] = None,
        intervals: str = 'fitted') -> Dict[str, Any]:
    """Accuracy, coverage and error of predicted measurements on a split.

    By default the fitted intervals use the scale calibration stored in the
    checkpoint (:meth:`~mmchh.calibration.conformal.measurement_intervals.
    MeasurementIntervalFit.from_head`); ``calib_file`` / ``interval_fit``
    replace it; ``intervals='full-map'`` asks for the full-map intervals
    only. Without a stored scale one warning says so and the intervals are
    the full-map ones, labelled as such (``result['intervals']``).

    Args:
        model: From :func:`~mmchh.apis.init_landmark_model` (19 ISBI
            landmarks).
        ann_file (str): Converted split JSON (``test1.json``...).
        num_samples (int): Landmark draws per heatmap.
        seed (int): Seed; image ``j`` of the JSON draws from
            ``default_rng([seed, j])``.
        batch_size (int): Images per forward pass.
        img_root (str, optional): See :func:`load_measurement_split`.
        out_dir (str, optional): Writes ``measurements_eval.json`` (summary
            and per-image entries) and ``measurements_eval.csv`` (columns
            :data:`EVAL_CSV_COLUMNS`) there, atomically; with
            ``calib_file`` also the fit,
            :data:`~mmchh.calibration.conformal.measurement_intervals.MEASUREMENT_INTERVAL_FILE`.
        progress (bool): Progress bar on stderr.
        calib_file (str, optional): A calibration split (never the
            evaluated one) to fit the interval scale on first
            (:func:`fit_split_intervals`).
        interval_fit (str | MeasurementIntervalFit, optional): A fit made
            before (or its JSON file), instead of ``calib_file``.
        level (float): Coverage level of the fitted intervals.
        region_level (float, optional): The head's conformal region level
            the landmarks are drawn within; default its highest.
        intervals (str): ``'fitted'`` (default) or ``'full-map'``.

    Returns:
        dict: ``summary`` (per measurement: ``accuracy`` of the most likely
        class vs the label, ``accuracy_point`` (class of the point value vs
        the label), ``coverage95`` (and ``coverage95_low`` / ``_high``,
        its 95 % bootstrap interval over images), ``mean_ci95_width`` (the
        full-map interval ``ci95``), ``mae`` (point value vs true value),
        ``mean_std``, ``label_agreement``, ``unit``, ``count`` (images),
        ``n_missing_truth`` / ``n_missing_prediction`` (images where a
        landmark it needs is not annotated / not predicted: left out of
        coverage, MAE and label agreement; a missing prediction counts as
        wrong in the accuracies) and ``missing_reasons``; with a fit
        also ``coverage_interval`` (and ``_low`` / ``_high``),
        ``mean_interval_width`` and
        ``width_over_mae`` of the fitted interval; and ``mean`` over the
        eight of the accuracies and the coverages), ``images`` (per image
        and measurement: label, true value (None when missing), ``missing``
        (None, or per side ``truth`` / ``prediction`` the landmarks
        absent), the prediction's entry and,
        with a fit, ``interval``: ``center``, ``spread``, ``low``,
        ``high``), ``interval_fit`` (the fit's dict, or None),
        ``ann_file``, ``num_images``, ``num_samples``, ``seed``.

    Raises:
        InputError: If ``calib_file`` shares images with ``ann_file``, the
            model has no conformal regions (with a fit), or the fit was made
            for other weights.

    Note:
        Shapes: each image's 19 keypoints (19, 2) in the converted image's
        pixels, its spacing (x, y) mm/pixel; the model predicts in the same
        pixels, so predicted and true values share units.
    """
    check_measurement_model(model)
    prediction = SplitPrediction(num_samples=num_samples, seed=seed,
                                 batch_size=batch_size, img_root=img_root,
                                 progress=progress)
    split = load_measurement_split(ann_file, img_root)
    fit, kind = _resolve_fit(
        model, split, ann_file,
        IntervalRequest(intervals=intervals, calib_file=calib_file,
                        interval_fit=interval_fit, level=level,
                        region_level=region_level), prediction)
    draws = None if fit is None else RegionDraws.of_model(
        model, fit.region_level, num_samples, seed, fit.jitter_array)
    images = _predict_split(model, split, prediction, draws)
    if fit is not None:
        _add_intervals(images, fit.scale)
    result = dict(
        ann_file=ann_file,
        checkpoint=getattr(model, 'checkpoint_path', None),
        num_images=len(images),
        num_samples=int(num_samples),
        seed=int(seed),
        assumption=MEASUREMENT_SAMPLING_ASSUMPTION,
        interval_fit=None if fit is None else fit.to_dict(),
        intervals=kind,
        summary=summarize_measurements(images),
        images=images)
    if out_dir is not None:
        # strict JSON: NaN (e.g. MW without spacing) is written as null
        write_json(osp.join(out_dir, 'measurements_eval.json'), result)
        atomic_write_text(
            osp.join(out_dir, 'measurements_eval.csv'),
            csv_text(EVAL_CSV_COLUMNS, eval_rows(images)))
        if calib_file is not None:
            fit.save(osp.join(out_dir, MEASUREMENT_INTERVAL_FILE))
    return result


def _resolve_fit(model, split: List[Dict], ann_file: str,
                 request: IntervalRequest, prediction: SplitPrediction):
    """The interval fit of :func:`evaluate_measurements` (or None) and
    which intervals it reports
    (:func:`~mmchh.apis.measurement_intervals.interval_kind`)."""
    fit = None
    calib_file, interval_fit = request.calib_file, request.interval_fit
    kind = interval_kind(request.intervals, calib_file, interval_fit)
    if calib_file is not None:
        if interval_fit is not None:
            raise InputError('give calib_file (fit now) or interval_fit (a '
                             'fit made before), not both')
        _check_disjoint(calib_file, prediction.img_root, split, ann_file)
        fit = _fit_split(model, calib_file, request.level,
                         request.region_level, prediction)
    elif interval_fit is not None:
        fit = interval_fit if isinstance(
            interval_fit, MeasurementIntervalFit) else \
            MeasurementIntervalFit.load(interval_fit)
        fit.check_model(_fingerprint(model))
    if kind['source'] == 'checkpoint':
        choice = stored_interval_choice(model, stacklevel=4)
        fit = choice.fit
        kind = dict(kind=choice.kind, source=choice.source, note=choice.note)
    return fit, kind


def fit_split_intervals(model,
                        calib_file: str,
                        level: float = 0.95,
                        region_level: Optional[float] = None,
                        num_samples: int = 1000,
                        seed: int = 0,
                        batch_size: int = 4,
                        img_root: Optional[str] = None,
                        progress: bool = True,
                        min_jitter_images: int = MIN_JITTER_IMAGES
                        ) -> MeasurementIntervalFit:
    """Fits the measurement interval scale on a calibration split.

    Every image of ``calib_file`` is predicted; its landmarks are drawn
    within the conformal regions
    (:func:`~mmchh.apis.region_measurements.region_image_draws`) beside
    the JSON's keypoints; the calibration room fits the landmarks' jitter
    and the scale on them
    (:func:`~mmchh.calibration.conformal.split_draws.fit_intervals_from_draws`:
    the normalised residuals of all measurements and images pooled, each
    image's drawn with the jitter fitted without it).

    Args:
        model: As for :func:`evaluate_measurements` (with conformal
            regions).
        calib_file (str): The calibration split JSON (``calib.json``).
        level, region_level, num_samples, seed, batch_size, img_root,
            progress: As for :func:`evaluate_measurements`.
        min_jitter_images (int): See
            :func:`~mmchh.calibration.conformal.split_draws.fit_intervals_from_draws`.

    Returns:
        MeasurementIntervalFit: The fit, with the calibration split, the
        model's fingerprint and the per-measurement calibration coverage.
    """
    check_measurement_model(model)
    return _fit_split(
        model, calib_file, level, region_level,
        SplitPrediction(num_samples=num_samples, seed=seed,
                        batch_size=batch_size, img_root=img_root,
                        progress=progress), min_jitter_images)


def _fit_split(model, calib_file: str, level: float,
               region_level: Optional[float],
               prediction: SplitPrediction,
               min_jitter_images: int = MIN_JITTER_IMAGES
               ) -> MeasurementIntervalFit:
    """:func:`fit_split_intervals` with its prediction settings in one."""
    num_samples, seed = prediction.num_samples, prediction.seed
    split = load_measurement_split(calib_file, prediction.img_root)
    draws = RegionDraws.of_model(model, region_level, num_samples, seed)
    calibration: List = []
    _predict_split(model, split, prediction, draws, calibration)
    return fit_intervals_from_draws(
        calibration, level=level, region_level=draws.level,
        min_jitter_images=min_jitter_images, calib_file=calib_file,
        weights_fingerprint=_fingerprint(model),
        num_samples=int(num_samples), seed=int(seed))


def _fingerprint(model) -> Optional[str]:
    return getattr(model.head, 'calibration_fingerprint_hex', None)


def _check_disjoint(calib_file: str, img_root: Optional[str],
                    split: List[Dict], ann_file: str) -> None:
    """Refuses a calibration split that shares an image (by its resolved
    path) with the evaluated one: a scale fitted on the evaluated images
    covers them by construction, and says nothing."""
    calib = load_measurement_split(calib_file, img_root)
    shared = {osp.realpath(s['path']) for s in calib} & {
        osp.realpath(s['path']) for s in split}
    if shared or osp.realpath(calib_file) == osp.realpath(ann_file):
        raise InputError(
            f'the calibration split {calib_file} is (or shares '
            f'{len(shared)} image(s) with) the evaluated split {ann_file}: '
            'fit the interval scale on the calibration split only '
            '(e.g. calib.json) and evaluate on another split')


def _predict_split(model, split: List[Dict], prediction: SplitPrediction,
                   draws: Optional[RegionDraws] = None,
                   calibration: Optional[List] = None) -> List[Dict]:
    """Per image of ``split`` (from :func:`load_measurement_split`) its
    ``id``, ``file_name`` and ``measurements`` (per name: ``label``,
    ``true_value``, ``true_class``, the predicted ``prediction`` and, with
    ``draws``, ``interval``: ``center`` and ``spread`` of the region
    draws). With ``calibration`` (a list, and ``draws``), each image's
    landmark draws and truth are appended to it instead
    (:func:`~mmchh.apis.region_measurements.region_image_draws`), for
    fitting."""
    num_samples, seed = prediction.num_samples, prediction.seed
    batch_size = prediction.batch_size
    bar = progress_bar(len(split), prediction.progress)
    images = []
    for start in range(0, len(split), batch_size):
        chunk = split[start:start + batch_size]
        preds = predict_landmarks(
            model, [s['path'] for s in chunk],
            spacing=[tuple(s['spacing']) for s in chunk],
            batch_size=batch_size,
            measurements=True,
            num_samples=num_samples,
            seed=(int(seed), start),
            return_heatmaps=draws is not None,
            # the intervals are drawn here, fitted or not
            intervals='full-map')
        for i, (s, r) in enumerate(zip(chunk, preds)):
            entry = _image_entry(s, r)
            if draws is not None and calibration is not None:
                calibration.append(region_image_draws(
                    r, model.head, draws, start + i, s['keypoints']))
                r.heatmaps = None
            elif draws is not None:
                stats = region_center_spread(r, model.head, draws, start + i)
                for name, (center, spread) in stats.items():
                    entry['measurements'][name]['interval'] = dict(
                        center=center, spread=spread)
                r.heatmaps = None  # memory: one image's maps at a time
            images.append(entry)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None and hasattr(bar, 'close'):
        bar.close()
    return images


def _add_intervals(images: List[Dict], scale: float) -> None:
    """Fills each ``interval`` with ``low``, ``high`` (``center +- scale *
    spread``) in place."""
    for im in images:
        for r in im['measurements'].values():
            iv = r['interval']
            lo, hi = scaled_intervals([iv['center']], [iv['spread']], scale)
            iv.update(low=float(lo[0]), high=float(hi[0]))


def _image_entry(item: Dict, result) -> Dict:
    """One image's labels and true values beside its predicted measurements.

    A measurement needing a landmark that is not annotated has
    ``true_value`` and ``true_class`` None and ``missing['truth']`` naming
    the landmarks; one needing a landmark the model did not predict has
    ``missing['prediction']`` (its prediction's numbers are None);
    ``missing`` is None when both sides are complete.

    Note:
        Shapes: ``item['keypoints']`` (19, 2) in the image's pixels (NaN
        where not annotated), ``item['spacing']`` (x, y) mm/pixel.
    """
    truth = ceph_measurements(item['keypoints'], item['spacing'])
    absent = dict(
        truth=missing_measurement_landmarks(item['visible']),
        prediction=missing_measurement_landmarks(
            [lm['valid'] for lm in result.landmarks]))
    why = dict(truth='not annotated', prediction='not predicted (invalid)')
    entry = dict(id=item['id'], file_name=item['file_name'], measurements={})
    for name in CEPH_LABEL_NAMES:
        missing = {
            side: f'landmark(s) {", ".join(gone[name])} {why[side]}'
            for side, gone in absent.items() if gone[name]
        }
        t = None if 'truth' in missing else float(truth[name])
        entry['measurements'][name] = dict(
            label=item['labels'][name],
            true_value=t,
            true_class=None if t is None else int(classify_ceph(name, t)),
            prediction=result.measurements[name],
            missing=missing or None)
    return entry
