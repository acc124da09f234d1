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
"""
import json
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional

import numpy as np

from mmchh.datasets.ceph_meta import CEPH_LABEL_NAMES, NUM_CEPH_LANDMARKS
from mmchh.evaluation.functional import (CEPH_MEASUREMENT_UNITS,
                                         ceph_measurements, classify_ceph,
                                         interval_coverage)
from mmchh.utils.io import atomic_write_text, csv_text, write_json

from .batch_infer import MEASUREMENT_SAMPLING_ASSUMPTION, progress_bar
from .inference import check_measurement_model, predict_landmarks

__all__ = ['EVAL_CSV_COLUMNS', 'evaluate_measurements', 'format_table',
           'load_measurement_split']

#: Columns of ``measurements_eval.csv``, one row per image x measurement.
EVAL_CSV_COLUMNS = ('image', 'measurement', 'unit', 'label', 'true_value',
                    'true_class', 'value', 'mean', 'std', 'ci95_low',
                    'ci95_high', 'covered', 'most_likely_class', 'correct',
                    'p_label')


def load_measurement_split(ann_file: str,
                           img_root: Optional[str] = None) -> List[Dict]:
    """Reads what :func:`evaluate_measurements` needs from a converted JSON.

    Args:
        ann_file (str): A JSON written by ``tools/convert_isbi.py``.
        img_root (str, optional): Folder the images' ``file_name`` is
            relative to; default the JSON's folder.

    Returns:
        list[dict]: per image ``id``, ``file_name``, ``path``, ``spacing``
        (x, y), ``labels`` (name -> class code) and ``keypoints`` (19, 2).

    Raises:
        FileNotFoundError: If the JSON is missing.
        ValueError: Naming the file, the image and the field, when an image
            lacks ``spacing``, a label key, or a 19-point ``keypoints``
            annotation.
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
        sp = np.broadcast_to(np.asarray(spacing, np.float64), (2, ))
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
        out.append(
            dict(
                id=im.get('id'),
                file_name=im['file_name'],
                path=osp.join(root, im['file_name']),
                spacing=(float(sp[0]), float(sp[1])),
                labels={n: int(im[n])
                        for n in CEPH_LABEL_NAMES},
                keypoints=np.asarray(kpts, np.float64).reshape(-1, 3)[:, :2]))
    return out


def _nan(v):
    return float('nan') if v is None else float(v)


def evaluate_measurements(model,
                          ann_file: str,
                          num_samples: int = 1000,
                          seed: int = 0,
                          batch_size: int = 4,
                          img_root: Optional[str] = None,
                          out_dir: Optional[str] = None,
                          progress: bool = True) -> Dict[str, Any]:
    """Accuracy, coverage and error of predicted measurements on a split.

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
            :data:`EVAL_CSV_COLUMNS`) there, atomically.
        progress (bool): Progress bar on stderr.

    Returns:
        dict: ``summary`` (per measurement: ``accuracy`` of the most likely
        class vs the label, ``accuracy_point`` (class of the point value vs
        the label), ``coverage95``, ``mean_ci95_width``, ``mae`` (point
        value vs true value), ``mean_std``, ``label_agreement``, ``unit``,
        ``count``; and ``mean`` over the eight of the accuracies and the
        coverage), ``images`` (per image and measurement: label, true value
        and the prediction's entry), ``ann_file``, ``num_images``,
        ``num_samples``, ``seed``.

    Note:
        Shapes: each image's 19 keypoints (19, 2) in the converted image's
        pixels, its spacing (x, y) mm/pixel; the model predicts in the same
        pixels, so predicted and true values share units.
    """
    check_measurement_model(model)
    split = load_measurement_split(ann_file, img_root)
    images = _predict_split(model, split, num_samples, seed, batch_size,
                            progress)
    result = dict(
        ann_file=ann_file,
        checkpoint=getattr(model, 'checkpoint_path', None),
        num_images=len(images),
        num_samples=int(num_samples),
        seed=int(seed),
        assumption=MEASUREMENT_SAMPLING_ASSUMPTION,
        summary=_summary(images),
        images=images)
    if out_dir is not None:
        # strict JSON: NaN (e.g. MW without spacing) is written as null
        write_json(osp.join(out_dir, 'measurements_eval.json'), result)
        atomic_write_text(
            osp.join(out_dir, 'measurements_eval.csv'),
            csv_text(EVAL_CSV_COLUMNS, _eval_rows(images)))
    return result


def _predict_split(model, split: List[Dict], num_samples: int, seed: int,
                   batch_size: int, progress: bool) -> List[Dict]:
    """Per image of ``split`` (from :func:`load_measurement_split`) its
    ``id``, ``file_name`` and ``measurements`` (per name: ``label``,
    ``true_value``, ``true_class`` and the predicted ``prediction``)."""
    bar = progress_bar(len(split), progress)
    images = []
    for start in range(0, len(split), batch_size):
        chunk = split[start:start + batch_size]
        preds = predict_landmarks(
            model, [s['path'] for s in chunk],
            spacing=[tuple(s['spacing']) for s in chunk],
            batch_size=batch_size,
            measurements=True,
            num_samples=num_samples,
            seed=(int(seed), start))
        images += [_image_entry(s, r) for s, r in zip(chunk, preds)]
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None and hasattr(bar, 'close'):
        bar.close()
    return images


def _image_entry(item: Dict, result) -> Dict:
    """One image's labels and true values beside its predicted measurements.

    Note:
        Shapes: ``item['keypoints']`` (19, 2) in the image's pixels,
        ``item['spacing']`` (x, y) mm/pixel.
    """
    truth = ceph_measurements(item['keypoints'], item['spacing'])
    entry = dict(id=item['id'], file_name=item['file_name'], measurements={})
    for name in CEPH_LABEL_NAMES:
        t = float(truth[name])
        entry['measurements'][name] = dict(
            label=item['labels'][name],
            true_value=t,
            true_class=int(classify_ceph(name, t)),
            prediction=result.measurements[name])
    return entry


def _summary(images: List[Dict]) -> Dict[str, Dict]:
    """Per measurement name its scores (see :func:`evaluate_measurements`),
    and ``mean``: the mean over the eight of ``accuracy``,
    ``accuracy_point``, ``coverage95`` and ``label_agreement``."""
    summary = {
        name: _measurement_summary(
            name, [im['measurements'][name] for im in images])
        for name in CEPH_LABEL_NAMES
    }
    keys = ('accuracy', 'accuracy_point', 'coverage95', 'label_agreement')
    summary['mean'] = {
        k: float(np.nanmean([summary[n][k] for n in CEPH_LABEL_NAMES]))
        for k in keys
    }
    return summary


def _measurement_summary(name: str, rows: List[Dict]) -> Dict[str, Any]:
    """The scores of one measurement over its per-image ``rows``.

    Note:
        Shapes: every per-image array below is (N, ), the interval (N, 2);
        a missing prediction counts as NaN.
    """
    label = np.array([r['label'] for r in rows])
    best = np.array([_nan(r['prediction']['most_likely_class'])
                     for r in rows])
    point_cls = np.array([_nan(r['prediction']['value_class'])
                          for r in rows])
    truth = np.array([r['true_value'] for r in rows])
    value = np.array([_nan(r['prediction']['value']) for r in rows])
    ci = np.array([r['prediction']['ci95'] or (np.nan, np.nan)
                   for r in rows], dtype=np.float64)
    std = np.array([_nan(r['prediction']['std']) for r in rows])
    cov = interval_coverage(ci[:, 0], ci[:, 1], truth)
    err = np.abs(value - truth)
    return dict(
        unit=CEPH_MEASUREMENT_UNITS[name],
        count=len(rows),
        accuracy=float(np.mean(best == label)),
        accuracy_point=float(np.mean(point_cls == label)),
        coverage95=cov['coverage'],
        mean_ci95_width=cov['mean_width'],
        mae=float(np.nanmean(err)) if np.isfinite(err).any() else
        float('nan'),
        mean_std=float(np.nanmean(std)) if np.isfinite(std).any() else
        float('nan'),
        label_agreement=float(np.mean(
            np.array([r['true_class'] for r in rows]) == label)))


def _eval_rows(images: List[Dict]) -> Iterator[list]:
    """Rows of :data:`EVAL_CSV_COLUMNS`, one per image x measurement."""
    for im in images:
        for name, r in im['measurements'].items():
            p = r['prediction']
            ci = p['ci95'] or (None, None)
            covered = None if p['ci95'] is None else bool(
                ci[0] <= r['true_value'] <= ci[1])
            correct = None if p['most_likely_class'] is None else \
                p['most_likely_class'] == r['label']
            probs = p['class_probabilities'] or {}
            yield [
                im['file_name'], name, p['unit'], r['label'],
                r['true_value'], r['true_class'], p['value'], p['mean'],
                p['std'], ci[0], ci[1], covered, p['most_likely_class'],
                correct, probs.get(str(r['label']))
            ]


def format_table(result: Dict[str, Any]) -> str:
    """The summary as a fixed-width text table."""
    s = result['summary']
    head = (f'{"measure":8s} {"unit":5s} {"acc":>6s} {"acc_pt":>6s} '
            f'{"cov95":>6s} {"width95":>8s} {"MAE":>8s} {"std":>8s} '
            f'{"lab_ag":>6s}')
    lines = [head, '-' * len(head)]
    for name in CEPH_LABEL_NAMES:
        r = s[name]
        lines.append(f'{name:8s} {r["unit"]:5s} {r["accuracy"]:6.3f} '
                     f'{r["accuracy_point"]:6.3f} {r["coverage95"]:6.3f} '
                     f'{r["mean_ci95_width"]:8.3f} {r["mae"]:8.3f} '
                     f'{r["mean_std"]:8.3f} {r["label_agreement"]:6.3f}')
    m = s['mean']
    lines.append('-' * len(head))
    lines.append(f'{"mean":8s} {"":5s} {m["accuracy"]:6.3f} '
                 f'{m["accuracy_point"]:6.3f} {m["coverage95"]:6.3f} '
                 f'{"":8s} {"":8s} {"":8s} {m["label_agreement"]:6.3f}')
    return '\n'.join(lines)
