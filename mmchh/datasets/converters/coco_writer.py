# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The COCO-keypoint JSON of a conversion: records, splits, the marker.

Each image record carries ``pixel_sha256`` and ``phash`` of its pixels as
read (:mod:`.duplicates`), and its ``group``/``duplicate_cluster`` when it
has one; each split's ``info.role`` says what it is for (``train``,
``val``, ``calib``, ``test``), which the tools' leak check reads
(:mod:`~mmchh.datasets.split_leaks`).

Every image file name is relative to the output folder (use
``data_root=OUT_DIR`` and an empty image prefix). With ``resize`` the
records name the padded, resized PNG copies in ``images/`` and carry the
mapping (see :mod:`.resize`). What differs between converters (keypoint
names, splits, wording, rounding) is a :class:`CocoLayout`; what one
conversion writes into every split (source, annotators, ground truth,
spacing, hold-out sizes, resize) is its :class:`ConversionPlan`; a record may
carry its own ``spacing`` (None: unknown, written as ``null``), the
``file_name`` of its copy in the output folder and a visibility per point
(an invisible point is written ``0, 0, 0``; the ground truth ``mean``
averages the annotators who marked each point).
"""
import datetime
import json
import os.path as osp
from dataclasses import dataclass
from typing import AbstractSet, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..ceph_meta import CEPH_LANDMARK_NAMES
from ..conversion_folder import CONVERSION_MARKER, split_role
from ..data_checks import check_image_size
from .records import Annotation
from .resize import padded_resize_params, resize_keypoints
from .splits import SPLITS

__all__ = [
    'CONVERSION_MARKER', 'CocoLayout', 'ConversionPlan', 'ISBI_LAYOUT',
    'keypoints_field',
    'ground_truth', 'coco_payloads', 'conversion_marker',
    'check_written_conversion'
]

@dataclass(frozen=True)
class CocoLayout:
    """What a converter's COCO files say about themselves.

    Attributes:
        keypoint_names (tuple[str]): The K keypoints, in order.
        splits (tuple[str]): Every split the converter may write, in order.
        tool (str): The converter, named in the marker.
        description (str): Start of each split's ``info.description``.
        category (str): The COCO category's ``name``.
        supercategory (str): Its ``supercategory``.
        coordinates (str): The coordinate convention (``info``).
        decimals (int, optional): Keypoint rounding; None keeps every
            coordinate exactly as given.
    """
    keypoint_names: Tuple[str, ...]
    splits: Tuple[str, ...]
    tool: str
    description: str
    category: str
    supercategory: str
    coordinates: str
    decimals: Optional[int] = 6


#: The ISBI 2015 converter's layout.
ISBI_LAYOUT = CocoLayout(
    keypoint_names=tuple(CEPH_LANDMARK_NAMES),
    splits=SPLITS,
    tool='tools/convert_isbi.py',
    description='ISBI 2015 cephalometric landmarks',
    category='cephalometric',
    supercategory='head',
    coordinates='0-based pixels of file_name; pixel centres at integers')


@dataclass(frozen=True)
class ConversionPlan:
    """What one conversion writes into every split's JSON and its marker,
    fixed once its options, annotators and hold-outs are known.

    Attributes:
        root (str): The source folder (``info.source``, the marker's
            ``source``; each image's ``original_file`` is relative to it).
        out_dir (str): The folder the records' file names are relative to
            (the output folder's real path).
        annotators (list[str]): Every annotator, in order.
        gt (str): The ground truth: ``'mean'`` or an annotator.
        spacing_xy (np.ndarray, optional): (2,) mm per pixel of records
            without their own; None: unknown.
        split_seed (int): Seed of the held-out splits.
        num_val (int): Images held out for validation.
        num_calib (int): Images held out for calibration.
        resize (tuple, optional): (W, H) of the resized copies; None: the
            original images.
        skip (set[str]): Splits not written.
        layout (CocoLayout): The converter's keypoints, splits and wording.
        info_extra (dict, optional): Added to every split's ``info``.
    """
    root: str
    out_dir: str
    annotators: List[str]
    gt: str
    spacing_xy: Optional[np.ndarray]
    split_seed: int
    num_val: int
    num_calib: int
    resize: Optional[Tuple[int, int]]
    skip: AbstractSet[str] = frozenset()
    layout: CocoLayout = ISBI_LAYOUT
    info_extra: Optional[dict] = None


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec='seconds')


def keypoints_field(points: np.ndarray,
                    visible: Optional[np.ndarray] = None,
                    decimals: Optional[int] = 6) -> List[float]:
    """COCO ``keypoints``: x, y, visibility per point (2 visible; an
    invisible point is ``0, 0, 0``), rounded to ``decimals`` (None: as
    given).

    Note:
        - points: (K, 2)
        - visible: (K, ) bool, None for all visible
    """
    vis = np.ones(len(points), bool) if visible is None else visible
    kpts = np.concatenate(
        [np.where(vis[:, None], points, 0.0),
         np.where(vis, 2.0, 0.0)[:, None]], axis=1)
    if decimals is None:
        return [float(v) for v in kpts.reshape(-1)]
    return [round(float(v), decimals) for v in kpts.reshape(-1)]


def _visible(ann: Annotation) -> np.ndarray:
    return np.ones(len(ann.points), bool) if ann.visible is None \
        else ann.visible


def ground_truth(anns: Dict[str, Annotation], gt: str) -> Annotation:
    """The ground truth of one image: one annotator's points, or (``gt``
    ``'mean'``) per point the mean of the annotators who marked it
    (invisible when none did).

    Note:
        - each annotation: points (K, 2), visible (K, ) or None
    """
    if gt != 'mean':
        return Annotation(anns[gt].points, visible=_visible(anns[gt]))
    points = np.stack([a.points for a in anns.values()])  # (A, K, 2)
    weight = np.stack([_visible(a) for a in anns.values()]).astype(float)
    count = weight.sum(0)  # (K, )
    total = (points * weight[..., None]).sum(0)
    mean = np.where(count[:, None] > 0,
                    total / np.maximum(count, 1)[:, None], 0.0)
    return Annotation(mean, visible=count > 0)


def _add_identity(image: dict, rec: dict) -> None:
    """The record's fingerprints (hashes of the pixels as read, before any
    resize), its patient group and its duplicate cluster, when known."""
    hashes = rec.get('hashes')
    if hashes is not None:
        image.update(pixel_sha256=hashes.pixel_sha256, phash=hashes.phash)
    for key in ('group', 'duplicate_cluster'):
        if rec.get(key) is not None:
            image[key] = rec[key]


def _image_entry(rec: dict, image_id: int, split: str, plan: ConversionPlan
                 ) -> Tuple[dict, Dict[str, Annotation]]:
    """One image's COCO entry, and every annotator's points in its
    pixels."""
    root, out_dir, resize = plan.root, plan.out_dir, plan.resize
    spacing_xy = plan.spacing_xy
    w, h = rec['size']
    anns = dict(rec['anns'])
    spacing = rec.get('spacing', spacing_xy)
    spacing = None if spacing is None else np.asarray(spacing, float)
    image = dict(id=image_id,
                 file_name=rec.get('file_name') or osp.relpath(
                     osp.abspath(rec['path']), out_dir),
                 width=w,
                 height=h,
                 split=split,
                 original_file=osp.relpath(rec['path'], root),
                 spacing=None if spacing is None else spacing.tolist())
    if 'spacing_source' in rec:
        image['spacing_source'] = rec['spacing_source']
    _add_identity(image, rec)
    if resize is not None:
        params = padded_resize_params(w, h, resize)
        sx, sy = params['scale']
        anns = {
            a: Annotation(resize_keypoints(ann.points, (sx, sy)),
                          ann.labels, ann.visible)
            for a, ann in anns.items()
        }
        image.update(file_name=osp.join('images', f'{rec["stem"]}.png'),
                     width=resize[0],
                     height=resize[1],
                     original_width=w,
                     original_height=h,
                     padded_size=list(params['padded_size']),
                     resize_scale=[sx, sy],
                     spacing=None if spacing is None else
                     [spacing[0] / sx, spacing[1] / sy])
    # top-level labels: the first annotator's (the senior's in the
    # official release); every annotator's own under `labels`
    labels = next(
        (ann.labels for ann in anns.values() if ann.labels is not None),
        None)
    if labels is not None:
        image['labels'] = {
            a: ann.labels
            for a, ann in anns.items() if ann.labels
        }
        image.update(labels)
    return image, anns


def _annotation_entry(image: dict, anns: Dict[str, Annotation], gt: str,
                      decimals: Optional[int]) -> dict:
    """The COCO annotation of ``image``: ``gt`` as ``keypoints``, each
    annotator's as ``keypoints_<annotator>``."""
    truth = ground_truth(anns, gt)
    ann = dict(id=image['id'],
               image_id=image['id'],
               category_id=1,
               keypoints=keypoints_field(truth.points, truth.visible,
                                         decimals),
               num_keypoints=int(truth.visible.sum()),
               bbox=[0, 0, image['width'], image['height']],
               area=image['width'] * image['height'],
               iscrowd=0)
    for a, p in anns.items():
        ann[f'keypoints_{a}'] = keypoints_field(p.points, p.visible,
                                                decimals)
    return ann


def _split_info(split: str, plan: ConversionPlan) -> dict:
    """The ``info`` block of one split's JSON."""
    info = dict(
        description=f'{plan.layout.description}, split {split}',
        source=osp.abspath(plan.root),
        date_created=_now(),
        ground_truth=plan.gt,
        annotators=plan.annotators,
        spacing_mm=None
        if plan.spacing_xy is None else plan.spacing_xy.tolist(),
        split=split,
        role=split_role(split),
        split_seed=plan.split_seed,
        num_val=plan.num_val,
        num_calib=plan.num_calib,
        coordinates=plan.layout.coordinates,
    )
    if plan.resize is not None:
        info['resize'] = dict(
            size=list(plan.resize),
            method='pad right/bottom with 0 to the target aspect, then '
            'cv2.INTER_AREA resize',
            keypoint_mapping="x' = (x + 0.5) * sx - 0.5, "
            "y' = (y + 0.5) * sy - 0.5 with (sx, sy) = resize_scale",
            spacing_mapping="spacing' = spacing / (sx, sy)")
    info.update(plan.info_extra or {})
    return info


def coco_payloads(records: Dict[str, List[dict]],
                  plan: ConversionPlan) -> Dict[str, dict]:
    """The COCO JSON of every split of ``plan`` (but ``plan.skip``), with
    file names relative to ``plan.out_dir``; image ids run across splits.

    Args:
        records (dict): split -> the records of its images, in order.
        plan (ConversionPlan): What every split says about the conversion.

    Returns:
        dict: split -> its JSON payload (``info``, ``images``,
        ``annotations``, ``categories``).
    """
    layout = plan.layout
    payloads = {}
    image_id = 0
    for split in layout.splits:
        if split in plan.skip:
            continue
        images, annotations = [], []
        for rec in records[split]:
            image_id += 1
            image, anns = _image_entry(rec, image_id, split, plan)
            images.append(image)
            annotations.append(
                _annotation_entry(image, anns, plan.gt, layout.decimals))
        payloads[split] = dict(info=_split_info(split, plan),
                               images=images,
                               annotations=annotations,
                               categories=[
                                   dict(id=1,
                                        name=layout.category,
                                        supercategory=layout.supercategory,
                                        keypoints=list(layout.keypoint_names),
                                        skeleton=[])
                               ])
    return payloads


def conversion_marker(summary,
                      plan: ConversionPlan,
                      extra: Optional[dict] = None) -> dict:
    """The content of :data:`CONVERSION_MARKER` for a conversion summary
    (e.g. :class:`~.isbi.ConversionSummary`) of ``plan`` (its tool, source,
    spacing and seed); ``extra`` is appended."""
    marker = dict(
        tool=plan.layout.tool,
        source=osp.abspath(plan.root),
        date_created=_now(),
        resize=list(summary.resize) if summary.resize else None,
        spacing_mm=None
        if plan.spacing_xy is None else plan.spacing_xy.tolist(),
        ground_truth=summary.gt,
        annotators=summary.annotators,
        split_seed=plan.split_seed,
        images_per_split=summary.images_per_split,
        splits_written=summary.written,
        split_roles={s: split_role(s)
                     for s in summary.written},
        notes=summary.notes,
        skipped=[dict(file=p, reason=r) for p, r in summary.skipped])
    marker.update(extra or {})
    return marker


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
