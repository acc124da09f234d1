# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Inference over files and folders, writing JSON, CSV and overlays.

The logic behind ``tools/infer.py``: every file of a folder (not only known
extensions, so a stray text file is reported rather than silently skipped)
is tried; files that cannot be read are reported with their reason and
skipped, the others are predicted in batches.
"""
import csv
import io
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from mmchh.utils.io import atomic_write_text, write_json

from .inference import (ImageLoadError, LandmarkResult, load_xray,
                        predict_landmarks)

__all__ = [
    'list_inputs', 'infer_files', 'output_names', 'progress_bar',
    'CSV_COLUMNS', 'MEASUREMENT_CSV_COLUMNS', 'measurement_rows'
]

#: Columns of ``landmarks.csv``, one row per image x landmark.
CSV_COLUMNS = ('image', 'landmark', 'index', 'x', 'y', 'x_mm', 'y_mm',
               'probability', 'ere_mm', 'ere_px', 'flagged', 'valid')

#: Columns of ``measurements.csv``, one row per image x measurement;
#: ``p_class1..4`` are the class probabilities (MW has 4 classes, the
#: others 3: their ``p_class4`` is empty).
MEASUREMENT_CSV_COLUMNS = ('image', 'measurement', 'unit', 'value',
                           'value_class', 'mean', 'std', 'ci95_low',
                           'ci95_high', 'most_likely_class', 'p_class1',
                           'p_class2', 'p_class3', 'p_class4', 'num_valid')


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


def _csv_text(results: Sequence[LandmarkResult]) -> str:
    def cell(v):
        return '' if v is None else v

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(CSV_COLUMNS)
    for r in results:
        for lm in r.landmarks:
            writer.writerow([
                r.path, lm['name'], lm['index'],
                cell(lm['x']), cell(lm['y']),
                cell(lm['x_mm']), cell(lm['y_mm']), cell(lm['probability']),
                cell(lm['ere_mm']), cell(lm['ere_px']), cell(lm['flagged']),
                lm['valid']
            ])
    return buf.getvalue()


def measurement_rows(image: Any, measurements: Dict[str, Dict]) -> List[list]:
    """Rows of :data:`MEASUREMENT_CSV_COLUMNS` for one image (None cells
    become empty strings)."""
    def cell(v):
        return '' if v is None else v

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
                    [m['num_valid']])
    return rows


def _measurement_csv_text(results: Sequence[LandmarkResult]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(MEASUREMENT_CSV_COLUMNS)
    for r in results:
        if r.measurements is not None:
            writer.writerows(measurement_rows(r.path, r.measurements))
    return buf.getvalue()


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


def infer_files(model,
                input_path: str,
                out_dir: str,
                spacing: Any = None,
                batch_size: int = 4,
                overlay: bool = True,
                progress: bool = True,
                err=None,
                measurements: bool = False,
                num_samples: int = 1000,
                seed: int = 0
                ) -> Tuple[List[LandmarkResult], List[Dict[str, str]]]:
    """Predicts an image or every file of a folder and writes the outputs.

    Writes ``out_dir/landmarks.json`` (``results``, ``errors``, the
    model's calibration state and ``complete``), ``out_dir/landmarks.csv``
    (one row per image x landmark, columns :data:`CSV_COLUMNS`),
    ``out_dir/results/<name>.json`` per image and, with ``overlay``,
    ``out_dir/overlays/<name>.png``; with ``measurements`` also the eight
    ISBI 2015 measurements with their uncertainty, in each result of the
    JSON and in ``out_dir/measurements.csv`` (one row per image x
    measurement, columns :data:`MEASUREMENT_CSV_COLUMNS`).

    Nothing finished is lost: each image's result file (and overlay) is
    written as soon as it is predicted, and the tables are rewritten after
    every batch with ``"complete": false`` until the last one. Every file
    is written atomically, JSON strictly (NaN/inf become null). ``<name>``
    is the file's stem, or its whole name where stems collide (see
    :func:`output_names`); each result names its ``result_file`` and
    ``overlay`` (relative to ``out_dir``). Files of an earlier run in the
    same ``out_dir`` are replaced when this run writes the same name and
    left alone otherwise; ``landmarks.json`` lists this run only.

    Args:
        model: From :func:`~mmchh.apis.init_landmark_model`.
        input_path (str): An image file or a folder (not recursive).
        out_dir (str): Output folder (created).
        spacing: mm per pixel for every image (number or (x, y)), or None.
        batch_size (int): Images per forward pass.
        overlay (bool): Write overlays (needs the heatmaps in memory for
            one batch at a time).
        progress (bool): Show a progress bar over a folder.
        err: Stream for per-file error lines (default ``sys.stderr``).
        measurements (bool): Compute the measurements (19-landmark ISBI
            models only; see :func:`~mmchh.apis.predict_landmarks`).
        num_samples (int): Draws per landmark for the measurements.
        seed (int): Seed of the draws: the ``i``-th readable file of the
            batch that starts at position ``j0`` of the sorted file list
            draws from ``np.random.default_rng([seed, j0, i])``.

    Returns:
        tuple: (results, errors) -- ``errors`` is a list of
        ``{path, reason}`` for files that were skipped.
    """
    from mmchh.visualization import draw_overlay

    err = sys.stderr if err is None else err
    paths = list_inputs(input_path)
    names = output_names(paths)
    results: List[LandmarkResult] = []
    docs: List[Dict[str, Any]] = []
    errors: List[Dict[str, str]] = []
    os.makedirs(out_dir, exist_ok=True)
    bar = progress_bar(len(paths), progress)

    head = model.head
    thr = getattr(head, 'flag_threshold', None)
    header = dict(
        checkpoint=getattr(model, 'checkpoint_path', None),
        calibrated=bool(getattr(head, 'is_calibrated', False)),
        flag_threshold_mm=(float(thr) if thr is not None
                           and bool(np.isfinite(float(thr))) else None),
        **({} if not measurements else dict(
            measurement_sampling=dict(
                num_samples=int(num_samples), seed=int(seed),
                assumption='landmarks drawn independently from their '
                'calibrated heatmaps, at heatmap pixel centres'))))

    def write_tables(complete: bool) -> None:
        # rewritten (atomically) after every batch: an interrupted run keeps
        # everything finished so far, marked "complete": false
        write_json(
            osp.join(out_dir, 'landmarks.json'),
            dict(header, complete=complete, num_inputs=len(paths),
                 results=docs, errors=errors))
        atomic_write_text(osp.join(out_dir, 'landmarks.csv'),
                          _csv_text(results))
        if measurements:
            atomic_write_text(
                osp.join(out_dir, 'measurements.csv'),
                _measurement_csv_text(results))

    def report(path, reason):
        errors.append(dict(path=path, reason=reason))
        print(f'skipping {path}: {reason}', file=err, flush=True)

    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        good, greys = [], []
        for p in chunk:
            try:
                greys.append(load_xray(p))
                good.append(p)
            except ImageLoadError as e:
                report(p, e.reason)
        if greys:
            batch = predict_landmarks(
                model,
                greys,
                spacing=spacing,
                batch_size=batch_size,
                return_heatmaps=overlay,
                measurements=measurements,
                num_samples=num_samples,
                seed=(int(seed), start))
            for p, grey, r in zip(good, greys, batch):
                r.path = p
                files = dict(result_file=f'results/{names[p]}.json')
                if overlay:
                    files['overlay'] = f'overlays/{names[p]}.png'
                    draw_overlay(grey, r, osp.join(out_dir,
                                                   files['overlay']))
                    r.heatmaps = None  # free the maps batch by batch
                doc = dict(r.to_dict(), **files)
                # each image's result as soon as it is done
                write_json(osp.join(out_dir, files['result_file']), doc)
                results.append(r)
                docs.append(doc)
        write_tables(complete=False)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        if hasattr(bar, 'close'):
            bar.close()
        else:
            print(file=sys.stderr)
    write_tables(complete=True)
    return results, errors
