# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Reading the keypoints of an existing COCO-keypoint file.

Each annotation's ``keypoints`` (x, y, v per point) are named by its
category's ``keypoints`` list and paired with an image of the images folder
by the stem of the image record's ``file_name``. A point with ``v == 0`` is
not marked. When annotations carry per-annotator fields
``keypoints_<NAME>`` (as mmchh's converters write them), each is read as
annotator ``NAME`` and ``keypoints`` itself (a ground truth derived from
them) is not; otherwise ``keypoints`` is annotator ``coco``. ``width`` and
``height`` of the image record, when given, must match the paired image.

Coordinate convention: COCO keypoints are image pixels; MMPose (and the
data written here) reads them with pixel centres at integers. They are
kept exactly as given.

Faults (reported with the file, annotation and label): a keypoint name
that is not one of the names (the point is ignored), an annotation whose
image or category is unknown, or whose keypoint list does not fit its
category (the annotation is ignored). Two annotations of one image giving
the same keypoint make it labelled twice (see :mod:`.landmarks`).
"""
import json
import math
import os.path as osp
from typing import Dict, List, Sequence

from .errors import ConversionError
from .records import Marks, split_image_name
from .validation import BadInputPolicy

__all__ = ['COCO_ANNOTATOR', 'read_coco_marks']

#: The annotator of a file without ``keypoints_<NAME>`` fields.
COCO_ANNOTATOR = 'coco'
_PREFIX = 'keypoints_'


def _load(path: str) -> dict:
    try:
        with open(path, 'rb') as f:
            data = json.loads(f.read().decode('utf-8-sig'))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConversionError(f'{path}: cannot read COCO JSON ({e})') from e
    if not isinstance(data, dict) or not all(
            isinstance(data.get(k), list)
            for k in ('images', 'annotations', 'categories')):
        raise ConversionError(f'{path}: not a COCO file (needs "images", '
                              '"annotations" and "categories" lists)')
    return data


def _annotator_fields(annotations: List[dict]) -> Dict[str, str]:
    """annotator -> the annotation field holding its points."""
    names = sorted({
        k[len(_PREFIX):]
        for ann in annotations if isinstance(ann, dict) for k in ann
        if k.startswith(_PREFIX) and len(k) > len(_PREFIX)
    })
    if names:
        return {n: _PREFIX + n for n in names}
    return {COCO_ANNOTATOR: 'keypoints'}


def _add_points(marks: Marks, values, names: Sequence[str], ann_id,
                keypoints: Sequence[str], policy: BadInputPolicy) -> None:
    """Adds the marked (v > 0) points of one keypoint list."""
    where = f'annotation id {ann_id}'
    for k, name in enumerate(names):
        x, y, v = values[3 * k:3 * k + 3]
        if not v:
            continue
        if name not in keypoints:
            policy.report(marks.file,
                          f'{marks.file} ({where}): unknown keypoint {name!r} '
                          '(not one of '
                          f'{", ".join(keypoints)})',
                          label=name,
                          action='point ignored')
            continue
        marks.add(name, float(x), float(y), where)


def _check_values(values, names: Sequence[str]) -> bool:
    return isinstance(values, list) and len(values) == 3 * len(names) and all(
        isinstance(v, (int,
                       float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in values)


def read_coco_marks(path: str, keypoints: Sequence[str],
                    policy: BadInputPolicy) -> Dict[str, Dict[str, Marks]]:
    """Reads a COCO-keypoint file (see the module docstring).

    Returns:
        dict: image stem -> annotator -> :class:`~.records.Marks`.

    Raises:
        ConversionError: the file cannot be read or is not COCO.
        BadImageError: for the first fault, unless ``policy`` skips.
    """
    data = _load(path)
    categories = {
        c.get('id'): list(c.get('keypoints') or [])
        for c in data['categories'] if isinstance(c, dict)
    }
    images = {
        im.get('id'): im
        for im in data['images']
        if isinstance(im, dict) and isinstance(im.get('file_name'), str)
    }
    fields = _annotator_fields(data['annotations'])
    found: Dict[str, Dict[str, Marks]] = {}
    for ann in data['annotations']:
        ann = ann if isinstance(ann, dict) else {}
        where = f'{path} (annotation id {ann.get("id")})'
        image = images.get(ann.get('image_id'))
        names = categories.get(ann.get('category_id'))
        if image is None or names is None:
            policy.report(path, f'{where}: unknown image_id '
                          f'{ann.get("image_id")!r} or category_id '
                          f'{ann.get("category_id")!r}',
                          action='annotation ignored')
            continue
        stem = split_image_name(
            osp.basename(image['file_name'].replace('\\', '/')))[0]
        for annotator, key in fields.items():
            if key not in ann:
                continue
            if not _check_values(ann[key], names):
                policy.report(path, f'{where}: "{key}" must hold '
                              f'{3 * len(names)} finite numbers (x, y, v '
                              f'for each of the category\'s {len(names)} '
                              'keypoints)',
                              action='annotation ignored')
                continue
            marks = found.setdefault(stem,
                                     {}).setdefault(annotator, Marks(path))
            size = (image.get('width'), image.get('height'))
            if all(isinstance(v, int) and v > 0 for v in size):
                marks.image_size = size
            _add_points(marks, ann[key], names, ann.get('id'), keypoints,
                        policy)
    return found
