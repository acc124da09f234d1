# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The COCO-keypoint JSON of a conversion: records, splits, the marker.

Every image file name is relative to the output folder (use
``data_root=OUT_DIR`` and an empty image prefix). With ``resize`` the
records name the padded, resized PNG copies in ``images/`` and carry the
mapping (see :mod:`.resize`).
"""
import datetime
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..ceph_meta import CEPH_LANDMARK_NAMES, NUM_CEPH_LANDMARKS
from ..data_checks import check_image_size
from .resize import padded_resize_params, resize_keypoints
from .splits import SPLITS

__all__ = [
    'CONVERSION_MARKER', 'keypoints_field', 'coco_payloads',
    'conversion_marker', 'check_written_conversion'
]

#: Written last into every conversion: marks a folder as a complete
#: conversion (and says what was converted, how).
CONVERSION_MARKER = 'conversion.json'


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec='seconds')


def keypoints_field(points: np.ndarray) -> List[float]:
    """COCO ``keypoints``: x, y, visibility 2 per point, rounded to 1e-6.

    Note:
        - points: (K, 2)
    """
    kpts = np.concatenate([points, np.full((len(points), 1), 2.0)], axis=1)
    return [round(float(v), 6) for v in kpts.reshape(-1)]


def _image_entry(
        rec: dict, image_id: int, split: str, root: str, out_dir: str,
        spacing_xy: np.ndarray,
        resize: Optional[Tuple[int,
                               int]]) -> Tuple[dict, Dict[str, np.ndarray]]:
    """One image's COCO entry, and every annotator's points in its
    pixels."""
    w, h = rec['size']
    points = {a: ann.points for a, ann in rec['anns'].items()}
    image = dict(id=image_id,
                 file_name=osp.relpath(osp.abspath(rec['path']), out_dir),
                 width=w,
                 height=h,
                 split=split,
                 original_file=osp.relpath(rec['path'], root),
                 spacing=spacing_xy.tolist())
    if resize is not None:
        params = padded_resize_params(w, h, resize)
        sx, sy = params['scale']
        points = {a: resize_keypoints(p, (sx, sy)) for a, p in points.items()}
        image.update(file_name=osp.join('images', f'{rec["stem"]}.png'),
                     width=resize[0],
                     height=resize[1],
                     original_width=w,
                     original_height=h,
                     padded_size=list(params['padded_size']),
                     resize_scale=[sx, sy],
                     spacing=[spacing_xy[0] / sx, spacing_xy[1] / sy])
    # top-level labels: the first annotator's (the senior's in the
    # official release); every annotator's own under `labels`
    labels = next(
        (ann.labels for ann in rec['anns'].values() if ann.labels is not None),
        None)
    if labels is not None:
        image['labels'] = {
            a: ann.labels
            for a, ann in rec['anns'].items() if ann.labels
        }
        image.update(labels)
    return image, points


def _annotation_entry(image: dict, points: Dict[str, np.ndarray],
                      gt: str) -> dict:
    """The COCO annotation of ``image``: ``gt`` as ``keypoints``, each
    annotator's as ``keypoints_<annotator>``."""
    gt_points = np.mean(list(points.values()), axis=0) \
        if gt == 'mean' else points[gt]
    ann = dict(id=image['id'],
               image_id=image['id'],
               category_id=1,
               keypoints=keypoints_field(gt_points),
               num_keypoints=NUM_CEPH_LANDMARKS,
               bbox=[0, 0, image['width'], image['height']],
               area=image['width'] * image['height'],
               iscrowd=0)
    for a, p in points.items():
        ann[f'keypoints_{a}'] = keypoints_field(p)
    return ann


def _split_info(split: str, root: str, annotators: List[str], gt: str,
                spacing_xy: np.ndarray, split_seed: int, num_val: int,
                num_calib: int, resize: Optional[Tuple[int, int]]) -> dict:
    """The ``info`` block of one split's JSON."""
    info = dict(
        description=f'ISBI 2015 cephalometric landmarks, split {split}',
        source=osp.abspath(root),
        date_created=_now(),
        ground_truth=gt,
        annotators=annotators,
        spacing_mm=spacing_xy.tolist(),
        split=split,
        split_seed=split_seed,
        num_val=num_val,
        num_calib=num_calib,
        coordinates='0-based pixels of file_name; pixel centres at '
        'integers',
    )
    if resize is not None:
        info['resize'] = dict(
            size=list(resize),
            method='pad right/bottom with 0 to the target aspect, then '
            'cv2.INTER_AREA resize',
            keypoint_mapping="x' = (x + 0.5) * sx - 0.5, "
            "y' = (y + 0.5) * sy - 0.5 with (sx, sy) = resize_scale",
            spacing_mapping="spacing' = spacing / (sx, sy)")
    return info


def coco_payloads(root, out_dir, records, annotators, gt, spacing_xy,
                  split_seed, num_val, num_calib, resize,
                  skip) -> Dict[str, dict]:
    """The COCO JSON of every split (``skip``: splits not written), with
    file names relative to ``out_dir``; image ids run across splits."""
    payloads = {}
    image_id = 0
    for split in SPLITS:
        if split in skip:
            continue
        images, annotations = [], []
        for rec in records[split]:
            image_id += 1
            image, points = _image_entry(rec, image_id, split, root, out_dir,
                                         spacing_xy, resize)
            images.append(image)
            annotations.append(_annotation_entry(image, points, gt))
        payloads[split] = dict(info=_split_info(split, root, annotators, gt,
                                                spacing_xy, split_seed,
                                                num_val, num_calib, resize),
                               images=images,
                               annotations=annotations,
                               categories=[
                                   dict(id=1,
                                        name='cephalometric',
                                        supercategory='head',
                                        keypoints=list(CEPH_LANDMARK_NAMES),
                                        skeleton=[])
                               ])
    return payloads


def conversion_marker(summary, root: str, spacing_xy: np.ndarray,
                      split_seed: int) -> dict:
    """The content of :data:`CONVERSION_MARKER` for a
    :class:`~.isbi.ConversionSummary`."""
    return dict(tool='tools/convert_isbi.py',
                source=osp.abspath(root),
                date_created=_now(),
                resize=list(summary.resize) if summary.resize else None,
                spacing_mm=spacing_xy.tolist(),
                ground_truth=summary.gt,
                annotators=summary.annotators,
                split_seed=split_seed,
                images_per_split=summary.images_per_split,
                splits_written=summary.written,
                notes=summary.notes,
                skipped=[dict(file=p, reason=r) for p, r in summary.skipped])


def check_written_conversion(folder: str, written: Sequence[str]) -> None:
    """Re-reads each split JSON in ``folder``; each image it names must
    exist with the recorded size (header only)."""
    for split in written:
        path = osp.join(folder, f'{split}.json')
        with open(path) as f:
            data = json.load(f)
        for img in data['images']:
            check_image_size(osp.join(folder, img['file_name']), img['width'],
                             img['height'],
                             f'{split}.json of the new conversion')
