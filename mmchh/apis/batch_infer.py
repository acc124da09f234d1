# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Inference over files and folders, writing JSON, CSV, overlays and,
for review, labelme files.

The logic behind ``tools/infer.py``: every file of a folder (not only known
extensions, so a stray text file is reported rather than silently skipped)
is tried; files that cannot be read are reported with their reason and
skipped, the others are predicted in batches.
"""
import json
import os
import os.path as osp
import sys
from typing import (Any, Dict, Iterator, List, Optional, Sequence, TextIO,
                    Tuple, Union)

import numpy as np

from mmchh.models.heads.flag_basis import describe_flag_status, flag_status
from mmchh.utils.io import (atomic_write_text, csv_text, to_jsonable,
                            write_json)

from .flag_reasons import (configuration_status,
                           describe_configuration_status, reasons_text)
from .image_loading import ImageLoadError, XRay, read_xray
from .image_spacing import RunSpacing
from .inference import predict_landmarks
from .labelme_export import LABELME_FOLDER, write_labelme
from .landmark_result import LandmarkResult
from .measurement_intervals import IntervalChoice, stored_interval_choice

__all__ = [
    'InferenceInterrupted', 'invalid_landmarks', 'list_inputs', 'infer_files', 'output_names', 'progress_bar',
    'CSV_COLUMNS', 'landmark_rows', 'MEASUREMENT_CSV_COLUMNS',
    'MEASUREMENT_SAMPLING_ASSUMPTION', 'measurement_rows'
]

#: Columns of ``landmarks.csv``, one row per image x landmark. The
#: ``region_*`` columns hold the landmark's conformal region at the model's
#: first coverage level (every level is in the JSON): ``region_level``,
#: ``region_area_px2``, ``region_area_mm2`` and ``region_outline``, its
#: rings as compact JSON (``[[[x, y], ...], ...]``, image pixels; a hole's
#: ring has a negative signed area, see
#: :func:`~mmchh.codecs.utils.region_outlines`); empty without a region.
#: ``flag_reasons`` says why a landmark is flagged (``invalid``, ``ere``,
#: ``implausible``, joined by ``;``, e.g. ``ere;implausible``; empty when
#: not flagged); ``plausibility_sigma``, ``plausibility_mm`` and
#: ``implausible`` are the configuration flag's (empty when the landmark
#: was not scored or the checkpoint has no configuration model).
CSV_COLUMNS = ('image', 'landmark', 'index', 'x', 'y', 'x_mm', 'y_mm',
               'probability', 'ere_mm', 'ere_px', 'flagged', 'flag_reasons',
               'plausibility_sigma', 'plausibility_mm', 'implausible',
               'valid', 'region_level', 'region_area_px2', 'region_area_mm2',
               'region_outline', 'spacing_x', 'spacing_y', 'spacing_source')

#: Columns of ``measurements.csv``, one row per image x measurement;
#: ``p_class1..4`` are the class probabilities (MW has 4 classes, the
#: others 3: their ``p_class4`` is empty); ``ci95_*`` the full-map draws'
#: 95 % interval; ``interval_*`` the reported interval at its level,
#: ``intervals`` its kind (``fitted`` or ``full-map``) and
#: ``interval_source`` what it rests on (``checkpoint``, ``requested``,
#: ``no stored scale``).
MEASUREMENT_CSV_COLUMNS = ('image', 'measurement', 'unit', 'value',
                           'value_class', 'mean', 'std', 'ci95_low',
                           'ci95_high', 'most_likely_class', 'p_class1',
                           'p_class2', 'p_class3', 'p_class4', 'num_valid',
                           'interval_low', 'interval_high', 'interval_level',
                           'intervals', 'interval_source')

#: How the measurements' uncertainty is sampled (recorded in the outputs of
#: :func:`infer_files` and :func:`~mmchh.apis.measure.evaluate_measurements`).
MEASUREMENT_SAMPLING_ASSUMPTION = ('landmarks drawn independently from their '
                                   'calibrated heatmaps, at heatmap pixel '
                                   'centres')


class InferenceInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`infer_files`, after the tables were rewritten
    for every image whose result file was written.

    Args:
        done (int): Images predicted (and written) before the interrupt.
        total (int): Inputs of the run.
    """

    def __init__(self, done: int, total: int):
        super().__init__(done, total)
        self.done, self.total = done, total


def invalid_landmarks(results: Sequence[LandmarkResult]) -> Tuple[int, int]:
    """(invalid, total) landmarks over ``results`` (a landmark is invalid
    when its heatmap was not finite: ``valid`` False, no position)."""
    flags = [bool(lm['valid']) for r in results for lm in r.landmarks]
    return flags.count(False), len(flags)


def list_inputs(input_path: str) -> List[str]:
    """The file itself, or every regular file of a folder (sorted, not
    recursive)."""
    if osp.isdir(input_path):
        return sorted(
            osp.join(input_path, n) for n in os.listdir(input_path)
            if osp.isfile(osp.join(input_path, n)))
    if osp.exists(input_path):
        return [input_path]
    raise FileNotFoundError(f'input {input_path} does not exist')


def _region_cells(lm: Dict[str, Any]) -> list:
    """The ``region_*`` cells of one landmark: its first-level region, or
    four empty cells."""
    regions = lm.get('regions')
    if not regions:
        return [None] * 4
    region = to_jsonable(regions[0])
    return [region['level'], region['area_px2'], region['area_mm2'],
            json.dumps(region['outline'], separators=(',', ':'),
                       allow_nan=False)]


def landmark_rows(results: Sequence[LandmarkResult]) -> Iterator[list]:
    """Rows of :data:`CSV_COLUMNS`, one per image x landmark."""
    for r in results:
        for lm in r.landmarks:
            yield [r.path, lm['name'], lm['index']] + [
                lm[k] for k in ('x', 'y', 'x_mm', 'y_mm', 'probability',
                                'ere_mm', 'ere_px', 'flagged')
            ] + [reasons_text(lm.get('flag_reasons') or [])] + [
                lm.get(k) for k in ('plausibility', 'plausibility_mm',
                                    'implausible')
            ] + [lm['valid']] + _region_cells(lm) + (
                list(r.spacing) if r.spacing is not None else [None, None]
            ) + [r.spacing_source]


def measurement_rows(image: Any, measurements: Dict[str, Dict],
                     intervals: Optional[Dict[str, Any]] = None
                     ) -> List[list]:
    """Rows of :data:`MEASUREMENT_CSV_COLUMNS` for one image (None cells
    become empty strings); ``intervals`` is the result's record of them
    (:attr:`~mmchh.apis.LandmarkResult.intervals`)."""
    def cell(v):
        return '' if v is None else v

    source = (intervals or {}).get('source')

    rows = []
    for name, m in measurements.items():
        ci = m.get('ci95') or (None, None)
        probs = m.get('class_probabilities') or {}
        rows.append([
            image, name, m['unit'],
            cell(m['value']),
            cell(m['value_class']),
            cell(m['mean']),
            cell(m['std']), cell(ci[0]), cell(ci[1]),
            cell(m['most_likely_class'])
        ] + [cell(probs.get(str(c))) for c in (1, 2, 3, 4)] +
                    [m['num_valid']] + _interval_cells(m, source))
    return rows


def _interval_cells(m: Dict[str, Any], source: Optional[str]) -> list:
    """The ``interval_*``, ``intervals`` and ``interval_source`` cells of
    one measurement (empty without an interval)."""
    iv = m.get('interval')
    if iv is None:
        return [''] * 5
    return ['' if v is None else v for v in (
        to_jsonable(iv['low']), to_jsonable(iv['high']), iv['level'],
        iv['kind'], source)]


def _measurement_table(results: Sequence[LandmarkResult]) -> Iterator[list]:
    """Rows of :data:`MEASUREMENT_CSV_COLUMNS` for every image measured."""
    for r in results:
        if r.measurements is not None:
            yield from measurement_rows(r.path, r.measurements, r.intervals)


def output_names(paths: Sequence[str]) -> Dict[str, str]:
    """A distinct output name (no extension) per input path.

    ``<stem>`` where the stem is unique among ``paths``, the whole file name
    where stems collide (``a.bmp`` and ``a.png`` give ``a.bmp`` and
    ``a.png``), and a ``~2``, ``~3``... suffix for anything still taken, so
    two inputs never share an overlay or a result file.
    """
    stems = [osp.splitext(osp.basename(p))[0] for p in paths]
    names, taken = {}, set()
    for p, s in zip(paths, stems):
        name = s if stems.count(s) == 1 else osp.basename(p)
        candidate, i = name, 1
        while candidate.lower() in taken:  # case-insensitive file systems
            i += 1
            candidate = f'{name}~{i}'
        taken.add(candidate.lower())
        names[p] = candidate
    return names


def progress_bar(total: int, enabled: bool):
    """tqdm if installed, else MMEngine's bar; None when disabled."""
    if not enabled or total <= 1:
        return None
    try:
        from tqdm import tqdm
        return tqdm(total=total, unit='img', file=sys.stderr)
    except ImportError:
        from mmengine.utils import ProgressBar
        return ProgressBar(total, file=sys.stderr)


def _run_header(model, measurements: bool, num_samples: int, seed: int,
                spacing: Dict[str, Any],
                intervals: Optional[IntervalChoice] = None
                ) -> Dict[str, Any]:
    """What ``landmarks.json`` says about the run before its results.

    Args:
        model: From :func:`~mmchh.apis.init_landmark_model`.
        measurements (bool): Whether the run computes the measurements.
        num_samples (int): Draws per landmark for the measurements.
        seed (int): Seed of the draws.
        spacing (dict): The run's spacing options
            (:meth:`~mmchh.apis.image_spacing.RunSpacing.record`).
        intervals (IntervalChoice, optional): The measurements' intervals.

    Returns:
        dict: ``checkpoint``, ``calibrated``, ``spacing``,
        ``flag_threshold`` and its
        ``flag_threshold_unit`` (``'mm'`` or ``'px'``, image pixels),
        ``flag_threshold_mm`` (None when the head has no finite threshold
        or it is in pixels), ``flag_status`` (what the threshold rests on
        and whether it flags:
        :func:`~mmchh.models.heads.flag_basis.flag_status`),
        ``configuration_status`` (the configuration flag's threshold in
        sigma, its ``alpha`` and ``num_scores``, or why it is not used:
        :func:`~mmchh.apis.flag_reasons.configuration_status`) and, with
        ``measurements``,
        ``measurement_sampling`` (``num_samples``, ``seed``, ``assumption``)
        and ``intervals`` (:meth:`~mmchh.apis.measurement_intervals.
        IntervalChoice.record`: ``kind`` ``fitted`` or ``full-map``,
        ``source``, ``note``, the fitted ``scale`` and its levels).
    """
    head = model.head
    thr = getattr(head, 'flag_threshold', None)
    thr = float(thr) if thr is not None and bool(np.isfinite(
        float(thr))) else None
    unit = getattr(head, 'flag_threshold_unit', 'mm')
    header = dict(
        checkpoint=getattr(model, 'checkpoint_path', None),
        calibrated=bool(getattr(head, 'is_calibrated', False)),
        spacing=spacing,
        # a threshold fitted in image pixels is never labelled as mm
        flag_threshold_mm=thr if unit == 'mm' else None,
        flag_threshold=thr,
        flag_threshold_unit=None if thr is None else unit,
        flag_status=flag_status(head),
        configuration_status=configuration_status(head))
    if measurements:
        header['measurement_sampling'] = dict(
            num_samples=int(num_samples), seed=int(seed),
            assumption=MEASUREMENT_SAMPLING_ASSUMPTION)
        header['intervals'] = None if intervals is None else \
            intervals.record()
    return header


class _FolderRun:
    """The outputs of one :func:`infer_files` run, written as they come.

    Args:
        out_dir (str): The run's output folder.
        paths (list[str]): Every input of the run, in order.
        header (dict): what :func:`_run_header` says of ``landmarks.json``.
        measurements (bool): Whether ``measurements.csv`` is written.
        err (TextIO): Stream for the per-file error lines.
        labelme (bool): Whether a labelme file is written per image.
        report (bool): Whether the review report is written (its crops
            as each image is predicted, ``report.html`` at the end).
    """

    def __init__(self, out_dir: str, paths: Sequence[str],
                 header: Dict[str, Any], measurements: bool, err: TextIO,
                 labelme: bool = False, report: bool = False):
        self.out_dir = out_dir
        self.paths = paths
        self.names = output_names(paths)
        self.header = header
        self.measurements = measurements
        self.err = err
        self.labelme = labelme
        self.report = report
        self.review: list = []  # the report's entries, no pixels
        self.results: List[LandmarkResult] = []
        self.docs: List[Dict[str, Any]] = []
        self.errors: List[Dict[str, str]] = []

    def read_images(self, paths: Sequence[str]
                    ) -> Tuple[List[str], List[XRay]]:
        """The readable ``paths`` and their X-rays (grey pixels and the
        header's spacing); the others are reported on ``err`` and listed in
        ``errors``.
        """
        readable, greys = [], []
        for path in paths:
            try:
                greys.append(read_xray(path))
                readable.append(path)
            except ImageLoadError as e:
                self.errors.append(dict(path=path, reason=e.reason))
                print(f'skipping {path}: {e.reason}', file=self.err,
                      flush=True)
        return readable, greys

    def add_result(self, path: str, grey: np.ndarray, result: LandmarkResult,
                   overlay: Union[bool, str]) -> None:
        """Writes one image's result file (overlay, labelme file) as soon
        as it is predicted, and keeps it for the tables.

        Note:
            Shapes: ``grey`` (H, W) uint8, the image ``result`` is for.
        """
        from mmchh.visualization import draw_overlay
        from mmchh.visualization.review_report import (REPORT_FOLDER,
                                                       review_image)

        result.path = path
        files = dict(result_file=f'results/{self.names[path]}.json')
        if overlay:
            files['overlay'] = f'overlays/{self.names[path]}.png'
        if self.labelme:
            files['labelme_file'] = f'{LABELME_FOLDER}/{self.names[path]}.json'
        crops = [f'{REPORT_FOLDER}/{self.names[path]}-{k + 1:02d}.png'
                 for k in range(len(result.landmarks))] if self.report else []
        try:
            if overlay:
                draw_overlay(grey, result,
                             osp.join(self.out_dir, files['overlay']),
                             show=overlay if isinstance(overlay, str)
                             else 'all')
                result.heatmaps = None  # free the maps batch by batch
            if self.labelme:
                write_labelme(result,
                              osp.join(self.out_dir, files['labelme_file']))
            if self.report:
                self.review.append(review_image(
                    result, self.names[path], self.out_dir, grey,
                    overlay=files.get('overlay')))
            doc = dict(result.to_dict(), **files)
            write_json(osp.join(self.out_dir, files['result_file']), doc)
        except BaseException:
            # an image's files exist only with its entry in the tables
            for name in list(files.values()) + crops:
                if osp.isfile(osp.join(self.out_dir, name)):
                    os.remove(osp.join(self.out_dir, name))
            raise
        self.results.append(result)
        self.docs.append(doc)

    def write_report(self) -> str:
        """Writes ``report.html`` (:mod:`~mmchh.visualization.
        review_report`) for the images predicted; returns its path."""
        from mmchh.visualization.review_report import write_report
        head = self.header
        notes = [f'checkpoint: {head["checkpoint"]}'
                 + ('' if head['calibrated'] else ' (UNCALIBRATED)'),
                 describe_flag_status(head['flag_status']),
                 describe_configuration_status(head['configuration_status'])]
        if self.errors:
            notes.append(f'{len(self.errors)} file(s) skipped (unreadable): '
                         + ', '.join(osp.basename(e['path'])
                                     for e in self.errors))
        return write_report(self.out_dir, self.review,
                            'Review report: landmark predictions', notes)

    def finish(self) -> None:
        """The tables of a complete run, then (with ``report`` and at least
        one image predicted) the review report."""
        self.write_tables(complete=True)
        if self.report and self.results:
            self.write_report()

    def write_tables(self, complete: bool) -> None:
        """(Re)writes ``landmarks.json``, ``landmarks.csv`` and, with the
        measurements, ``measurements.csv``."""
        # rewritten (atomically) after every batch: an interrupted run keeps
        # everything finished so far, marked "complete": false
        write_json(
            osp.join(self.out_dir, 'landmarks.json'),
            dict(self.header, complete=complete, num_inputs=len(self.paths),
                 results=self.docs, errors=self.errors))
        atomic_write_text(
            osp.join(self.out_dir, 'landmarks.csv'),
            csv_text(CSV_COLUMNS, landmark_rows(self.results)))
        if self.measurements:
            atomic_write_text(
                osp.join(self.out_dir, 'measurements.csv'),
                csv_text(MEASUREMENT_CSV_COLUMNS,
                         _measurement_table(self.results)))


def infer_files(model,
                input_path: str,
                out_dir: str,
                spacing: Any = None,
                batch_size: int = 4,
                overlay: Union[bool, str] = True,
                progress: bool = True,
                err: Optional[TextIO] = None,
                measurements: bool = False,
                num_samples: int = 1000,
                seed: int = 0,
                labelme: bool = False,
                spacing_file: Optional[str] = None,
                spacing_overrides_header: bool = False,
                intervals: str = 'fitted', report: bool = False
                ) -> Tuple[List[LandmarkResult], List[Dict[str, str]]]:
    """Predicts an image or every file of a folder and writes the outputs.

    Writes ``out_dir/landmarks.json`` (``results``, ``errors``, the
    model's calibration state and ``complete``; with a model whose
    calibration fitted conformal regions, each landmark's ``regions``:
    area and outline per coverage level), ``out_dir/landmarks.csv``
    (one row per image x landmark, columns :data:`CSV_COLUMNS`: the
    region at the first level),
    ``out_dir/results/<name>.json`` per image and, with ``overlay``,
    ``out_dir/overlays/<name>.png`` (with the region outlines, see
    :func:`~mmchh.visualization.draw_overlay`); with ``measurements`` also
    the eight
    ISBI 2015 measurements with their uncertainty, in each result of the
    JSON and in ``out_dir/measurements.csv`` (one row per image x
    measurement, columns :data:`MEASUREMENT_CSV_COLUMNS`); with ``labelme``
    also ``out_dir/labelme/<name>.json`` per image, the prediction as a
    labelme file for review (:mod:`~mmchh.apis.labelme_export`).

    Nothing finished is lost: each image's result file (overlay, labelme
    file) is written as soon as it is predicted, and the tables are
    rewritten after every batch with ``"complete": false`` until the last
    one. Every file is written atomically, JSON strictly (NaN/inf become
    null). ``<name>`` is the file's stem, or its whole name where stems
    collide (see :func:`output_names`); each result names its
    ``result_file``, ``overlay`` and ``labelme_file`` (relative to
    ``out_dir``). Files of an earlier run in the same ``out_dir`` are
    replaced when this run writes the same name and left alone otherwise;
    ``landmarks.json`` lists this run only.

    Args:
        model: From :func:`~mmchh.apis.init_landmark_model`.
        input_path (str): An image file or a folder (not recursive).
        out_dir (str): Output folder (created).
        spacing: mm per pixel for every image (number or (x, y)), or None;
            a file whose header has a spacing keeps its own (see
            :mod:`~mmchh.apis.image_spacing`).
        batch_size (int): Images per forward pass.
        overlay (bool | str): Write overlays (a str: what they draw, see
            ``draw_overlay``'s ``show``; the maps stay in memory a batch).
        progress (bool): Show a progress bar over a folder.
        err: Stream for per-file error lines (default ``sys.stderr``).
        measurements (bool): Compute the measurements (19-landmark ISBI
            models only; see :func:`~mmchh.apis.predict_landmarks`).
        num_samples (int): Draws per landmark for the measurements.
        seed (int): Seed of the draws: the ``i``-th readable file of the
            batch that starts at position ``j0`` of the sorted file list
            draws from ``np.random.default_rng([seed, j0, i])``.
        labelme (bool): Also write a labelme file per image (exact
            coordinates, flagged landmarks marked, ``imagePath`` relative
            to it; a landmark without a prediction has no point).
        spacing_file (str, optional): A CSV ``image,spacing_x,spacing_y``
            giving images their spacing (not with ``spacing``); read and
            checked before anything is predicted
            (:func:`~mmchh.apis.image_spacing.read_spacing_file`).
        spacing_overrides_header (bool): A given spacing wins over a
            header's that differs (a warning says so either way).
        intervals (str): The measurements' intervals, ``'fitted'``
            (default: the scale stored by calibration; without one, one
            warning and the full-map ones, labelled so) or ``'full-map'``
            (see :func:`~mmchh.apis.predict_landmarks`); recorded in the
            header, each result and ``measurements.csv``.
        report (bool): Also write ``out_dir/report.html``, the review
            report, at the end (:mod:`~mmchh.visualization.review_report`).

    Returns:
        tuple: (results, errors) -- ``errors`` is a list of
        ``{path, reason}`` for files that were skipped.

    Raises:
        SpacingFileError: for a bad ``spacing_file`` (nothing predicted).
        ValueError: with both ``spacing`` and ``spacing_file``.
        InferenceInterrupted: on Ctrl-C, after ``landmarks.json`` and the
            CSVs were rewritten (``"complete": false``) for exactly the
            images whose result files exist (an image interrupted halfway
            leaves no file).
    """
    err = sys.stderr if err is None else err
    paths = list_inputs(input_path)
    spacing = RunSpacing.of(spacing, spacing_file, paths,
                            spacing_overrides_header)
    # resolved once: one warning for the run without a stored scale
    choice = stored_interval_choice(model, intervals, stacklevel=3) \
        if measurements else None
    run = _FolderRun(out_dir, paths,
                     _run_header(model, measurements, num_samples, seed,
                                 spacing.record(), choice), measurements,
                     err, labelme, report)
    os.makedirs(out_dir, exist_ok=True)
    bar = progress_bar(len(paths), progress)
    try:
        _predict_all(run, model, spacing, batch_size, overlay,
                     choice, num_samples, seed, bar)
    except KeyboardInterrupt:
        run.write_tables(complete=False)  # what the folder holds, no more
        raise InferenceInterrupted(len(run.results), len(paths)) from None
    finally:
        if bar is not None:
            if hasattr(bar, 'close'):
                bar.close()
            else:
                print(file=sys.stderr)
    run.finish()
    return run.results, run.errors


def _predict_all(run: _FolderRun, model, spacing: RunSpacing,
                 batch_size: int, overlay: Union[bool, str],
                 measurements: Optional[IntervalChoice], num_samples: int,
                 seed: int, bar) -> None:
    """Predicts ``run.paths`` batch by batch, writing as it goes (see
    :func:`infer_files` for the arguments; ``measurements`` is the
    intervals' choice, None without measurements)."""
    paths = run.paths
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        readable, greys = run.read_images(chunk)
        if greys:
            given, source = spacing.given(readable)
            batch = predict_landmarks(
                model,
                greys,
                spacing=given,
                spacing_source=source,
                spacing_overrides_header=spacing.overrides_header,
                batch_size=batch_size,
                return_heatmaps=bool(overlay),
                measurements=measurements is not None,
                num_samples=num_samples,
                seed=(int(seed), start),
                intervals=measurements or 'fitted')
            for path, xray, result in zip(readable, greys, batch):
                run.add_result(path, xray.grey, result, overlay)
        run.write_tables(complete=False)
        if bar is not None:
            bar.update(len(chunk))
