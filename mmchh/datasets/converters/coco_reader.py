# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Reading the keypoints of an existing COCO-keypoint file.

Each annotation's ``keypoints`` (x, y, v per point) are named by its
category's ``keypoints`` list and paired with an image of the images folder
by the stem of the image record's ``file_name``. A point with ``v == 0`` is
not marked (``v`` must be 0, 1 or 2). When annotations carry per-annotator
fields ``keypoints_<NAME>`` (as mmchh's converters write them), each is
read as annotator ``NAME`` and ``keypoints`` itself (a ground truth derived
from them) is not; otherwise ``keypoints`` is annotator ``coco``.
``width`` and ``height`` of the image record, when given (not null), must
be positive whole numbers (``640``, ``640.0`` or ``"640"``) and match the
paired image. An image record's ``group`` (a string, as mmchh's converters
write it) is the image's patient group (:attr:`~.records.Marks.group`).

Coordinate convention: COCO keypoints are image pixels; MMPose (and the
data written here) reads them with pixel centres at integers. They are
kept exactly as given; each must be a finite JSON number (not a string,
not ``true``: :mod:`.strict_values`).

The file's structure is checked before any point is read, and a fault
there stops the conversion (:class:`~.errors.ConversionError`, even with
``skip_bad``: the file cannot be trusted) naming the file, the record and
the key: a key given twice in one object; an image record without an
integer ``id`` and a ``file_name``, or with a bad ``width``/``height``; two
image records (or two annotations, or two categories) with one ``id``
(``images[0]`` and ``images[3]`` would otherwise both claim the points of
that id); a key outside the COCO keypoint format and what mmchh's own
converters write (:data:`COCO_IMAGE_KEYS`, :data:`COCO_ANNOTATION_KEYS`
plus ``keypoints_<NAME>``, :data:`COCO_CATEGORY_KEYS`), since an unknown
key may change what a record means. Top-level blocks other than
``images``, ``annotations`` and ``categories`` (``info``, ``licenses``) are
not read.

Faults (reported with the file, annotation and label): a keypoint name
that is not one of the names (the point is ignored), an annotation whose
image or category is unknown, or whose keypoint list does not fit its
category (the annotation is ignored). Two annotations of one image giving
the same keypoint make it labelled twice (see :mod:`.landmarks`).
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence

from ..ceph_meta import CEPH_LABEL_NAMES
from .errors import ConversionError
from .records import Marks, split_image_name
from .strict_values import json_number, json_size, load_json
from .validation import BadInputPolicy

__all__ = [
    'COCO_ANNOTATOR', 'COCO_IMAGE_KEYS', 'COCO_ANNOTATION_KEYS',
    'COCO_CATEGORY_KEYS', 'read_coco_marks'
]

#: The annotator of a file without ``keypoints_<NAME>`` fields.
COCO_ANNOTATOR = 'coco'
#: Keys of an image record: COCO's, then what mmchh's converters write
#: (:mod:`.coco_writer`: split, provenance, spacing, resize, hashes, ISBI
#: classification labels).
COCO_IMAGE_KEYS = ('id', 'width', 'height', 'file_name', 'license',
                   'flickr_url', 'coco_url', 'date_captured', 'split',
                   'original_file', 'spacing', 'spacing_source',
                   'original_width', 'original_height', 'padded_size',
                   'resize_scale', 'pixel_sha256', 'phash', 'group',
                   'duplicate_cluster', 'labels') + CEPH_LABEL_NAMES
#: Keys of an annotation (COCO keypoints; ``keypoints_<NAME>`` also).
COCO_ANNOTATION_KEYS = ('id', 'image_id', 'category_id', 'segmentation',
                        'area', 'bbox', 'iscrowd', 'keypoints',
                        'num_keypoints')
#: Keys of a category.
COCO_CATEGORY_KEYS = ('id', 'name', 'supercategory', 'keypoints', 'skeleton')
_PREFIX = 'keypoints_'


def _load(path: str) -> dict:
    try:
        with open(path, 'rb') as f:
            data = load_json(f.read())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConversionError(f'{path}: cannot read COCO JSON ({e})') from e
    if not isinstance(data, dict) or not all(
            isinstance(data.get(k), list)
            for k in ('images', 'annotations', 'categories')):
        raise ConversionError(f'{path}: not a COCO file (needs "images", '
                              '"annotations" and "categories" lists)')
    return data


def _int_id(value) -> Optional[int]:
    """``value`` when it is an integer id (not a bool, not 7.0)."""
    return value if isinstance(value, int) and not isinstance(
        value, bool) else None


def _check_records(path: str, block: str, records: list,
                   known: Sequence[str]) -> None:
    """Each record an object with only ``known`` keys; ids unique."""
    seen: Dict[int, int] = {}
    for i, rec in enumerate(records):
        where = f'{path} ({block}[{i}])'
        if not isinstance(rec, dict):
            raise ConversionError(f'{where}: not an object: {rec!r}')
        unknown = [
            k for k in rec if k not in known and not (
                block == 'annotations' and k.startswith(_PREFIX)
                and len(k) > len(_PREFIX))
        ]
        if unknown:
            raise ConversionError(
                f'{where}: unknown key(s) {", ".join(map(repr, unknown))} '
                f'(a COCO keypoint {block[:-1]} has {", ".join(known)})')
        rec_id = rec.get('id')
        if rec_id is None and block == 'annotations':
            continue
        if _int_id(rec_id) is None:
            raise ConversionError(f'{where}: "id" must be an integer, got '
                                  f'{rec_id!r}')
        if rec_id in seen:
            names = ''
            if block == 'images':
                names = (f' ({records[seen[rec_id]].get("file_name")!r} and '
                         f'{rec.get("file_name")!r})')
            raise ConversionError(
                f'{path}: {block}[{seen[rec_id]}] and {block}[{i}] have one '
                f'id {rec_id}{names}; ids must be unique')
        seen[rec_id] = i


def _images(path: str, records: list) -> Dict[int, dict]:
    """id -> image record, each checked (see the module docstring)."""
    _check_records(path, 'images', records, COCO_IMAGE_KEYS)
    for i, im in enumerate(records):
        where = f'{path} (images[{i}], id {im["id"]})'
        if not isinstance(im.get('file_name'), str) or not im['file_name']:
            raise ConversionError(f'{where}: "file_name" must be a non-empty '
                                  f'string, got {im.get("file_name")!r}')
        if im.get('group') is not None and not (isinstance(
                im['group'], str) and im['group']):
            raise ConversionError(f'{where}: "group" must be a non-empty '
                                  f'string, got {im["group"]!r}')
        if (im.get('width') is None) != (im.get('height') is None):
            raise ConversionError(f'{where}: "width" and "height" must both '
                                  'be given (or both be null)')
        for key in ('width', 'height'):
            if im.get(key) is not None and json_size(im[key]) is None:
                raise ConversionError(f'{where}: "{key}" must be a positive '
                                      f'whole number, got {im[key]!r}')
    return {im['id']: im for im in records}


def _categories(path: str, records: list) -> Dict[int, List[str]]:
    """id -> keypoint names, each category checked."""
    _check_records(path, 'categories', records, COCO_CATEGORY_KEYS)
    names = {}
    for i, cat in enumerate(records):
        kpts = cat.get('keypoints')
        if not isinstance(kpts, list) or not all(
                isinstance(k, str) for k in kpts):
            raise ConversionError(f'{path} (categories[{i}], id {cat["id"]})'
                                  ': "keypoints" must be a list of names, '
                                  f'got {kpts!r}')
        names[cat['id']] = kpts
    return names


def _annotator_fields(annotations: List[dict]) -> Dict[str, str]:
    """annotator -> the annotation field holding its points."""
    names = sorted({
        k[len(_PREFIX):]
        for ann in annotations for k in ann
        if k.startswith(_PREFIX) and len(k) > len(_PREFIX)
    })
    if names:
        return {n: _PREFIX + n for n in names}
    return {COCO_ANNOTATOR: 'keypoints'}


def _add_points(marks: Marks, values: List[float], names: Sequence[str],
                ann_id, keypoints: Sequence[str],
                policy: BadInputPolicy) -> None:
    """Adds the marked (v > 0) points of one checked keypoint list."""
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
        marks.add(name, x, y, where)


def _values(values, names: Sequence[str]) -> Optional[List[float]]:
    """x, y, v of each keypoint as floats: finite JSON numbers, v in
    {0, 1, 2}; None when the list is not that."""
    if not isinstance(values, list) or len(values) != 3 * len(names):
        return None
    numbers = [json_number(v) for v in values]
    if any(v is None for v in numbers) or any(v not in (0, 1, 2)
                                              for v in numbers[2::3]):
        return None
    return numbers


def read_coco_marks(path: str, keypoints: Sequence[str],
                    policy: BadInputPolicy) -> Dict[str, Dict[str, Marks]]:
    """Reads a COCO-keypoint file (see the module docstring).

    Returns:
        dict: image stem -> annotator -> :class:`~.records.Marks`.

    Raises:
        ConversionError: the file cannot be read, is not COCO, or its
            records are malformed (duplicate ids, unknown keys, ...).
        BadImageError: for the first fault, unless ``policy`` skips.
    """
    data = _load(path)
    images = _images(path, data['images'])
    categories = _categories(path, data['categories'])
    _check_records(path, 'annotations', data['annotations'],
                   COCO_ANNOTATION_KEYS)
    fields = _annotator_fields(data['annotations'])
    found: Dict[str, Dict[str, Marks]] = {}
    for ann in data['annotations']:
        where = f'{path} (annotation id {ann.get("id")})'
        image = images.get(_int_id(ann.get('image_id')))
        names = categories.get(_int_id(ann.get('category_id')))
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
            values = _values(ann[key], names)
            if values is None:
                policy.report(path, f'{where}: "{key}" must hold '
                              f'{3 * len(names)} finite JSON numbers (x, y, '
                              'v with v in 0, 1, 2 for each of the '
                              f'category\'s {len(names)} keypoints)',
                              action='annotation ignored')
                continue
            marks = found.setdefault(stem, {}).setdefault(
                annotator, Marks(path, group=image.get('group')))
            size = (image.get('width'), image.get('height'))
            if all(v is not None for v in size):
                marks.image_size = (json_size(size[0]), json_size(size[1]))
            _add_points(marks, values, names, ann.get('id'), keypoints,
                        policy)
    return found
