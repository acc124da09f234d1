# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Inference over files and folders, writing JSON, CSV and overlays.

The logic behind ``tools/infer.py``: every file of a folder (not only known
extensions, so a stray text file is reported rather than silently skipped)
is tried; files that cannot be read are reported with their reason and
skipped, the others are predicted in batches.
"""
import csv
import io
import json
import os
import os.path as osp
import sys
import tempfile
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from .inference import (ImageLoadError, LandmarkResult, load_xray,
                        predict_landmarks)

__all__ = ['list_inputs', 'infer_files', 'CSV_COLUMNS']

#: Columns of ``landmarks.csv``, one row per image x landmark.
CSV_COLUMNS = ('image', 'landmark', 'index', 'x', 'y', 'x_mm', 'y_mm',
               'probability', 'ere_mm', 'ere_px', 'flagged')


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


def _atomic_write_text(path: str, text: str) -> None:
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp_', dir=folder)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8', newline='') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def _csv_text(results: Sequence[LandmarkResult]) -> str:
    def cell(v):
        return '' if v is None else v

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(CSV_COLUMNS)
    for r in results:
        for lm in r.landmarks:
            writer.writerow([
                r.path, lm['name'], lm['index'], lm['x'], lm['y'],
                cell(lm['x_mm']), cell(lm['y_mm']), lm['probability'],
                cell(lm['ere_mm']), lm['ere_px'], cell(lm['flagged'])
            ])
    return buf.getvalue()


def _overlay_names(paths: Sequence[str]) -> Dict[str, str]:
    """``<stem>.png`` per image; the full file name where stems collide
    (a.bmp and a.png)."""
    stems = [osp.splitext(osp.basename(p))[0] for p in paths]
    names = {}
    for p, s in zip(paths, stems):
        names[p] = (s if stems.count(s) == 1 else
                    osp.basename(p).replace('.', '_')) + '.png'
    return names


def _progress(total: int, enabled: bool):
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
                err=None) -> Tuple[List[LandmarkResult], List[Dict[str, str]]]:
    """Predicts an image or every file of a folder and writes the outputs.

    Writes ``out_dir/landmarks.json`` (``results``, ``errors`` and the
    model's calibration state), ``out_dir/landmarks.csv`` (one row per
    image x landmark, columns :data:`CSV_COLUMNS`) and, with ``overlay``,
    ``out_dir/overlays/<stem>.png``. All files are written atomically.

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

    Returns:
        tuple: (results, errors) -- ``errors`` is a list of
        ``{path, reason}`` for files that were skipped.
    """
    from mmchh.visualization import draw_overlay

    err = sys.stderr if err is None else err
    paths = list_inputs(input_path)
    overlay_names = _overlay_names(paths)
    results: List[LandmarkResult] = []
    errors: List[Dict[str, str]] = []
    bar = _progress(len(paths), progress)

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
                return_heatmaps=overlay)
            for p, grey, r in zip(good, greys, batch):
                r.path = p
                if overlay:
                    draw_overlay(grey, r,
                                 osp.join(out_dir, 'overlays',
                                          overlay_names[p]))
                    r.heatmaps = None  # free the maps batch by batch
                results.append(r)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        if hasattr(bar, 'close'):
            bar.close()
        else:
            print(file=sys.stderr)

    head = model.head
    thr = getattr(head, 'flag_threshold', None)
    doc = dict(
        checkpoint=getattr(model, 'checkpoint_path', None),
        calibrated=bool(getattr(head, 'is_calibrated', False)),
        flag_threshold_mm=(float(thr) if thr is not None
                           and bool(np.isfinite(float(thr))) else None),
        results=[r.to_dict() for r in results],
        errors=errors)
    _atomic_write_text(osp.join(out_dir, 'landmarks.json'),
                       json.dumps(doc, indent=1))
    _atomic_write_text(osp.join(out_dir, 'landmarks.csv'), _csv_text(results))
    return results, errors
