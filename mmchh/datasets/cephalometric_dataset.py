# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
import json
import os.path as osp
from typing import List, Optional

import numpy as np
from mmpose.datasets.datasets.base import BaseCocoStyleDataset
from mmpose.registry import DATASETS

from mmchh.utils.spacing import Spacing

from .conversion_folder import CONVERSION_MARKER, find_interrupted_conversion
from .data_checks import DatasetError, MissingDataError, check_image_size
from .whole_image_box import whole_image_bbox

#: Metainfo shipped inside the package, so it resolves wherever mmchh is
#: installed (MMPose resolves a missing relative ``from_file`` against its own
#: folder, not ours).
CEPH_METAINFO_FILE = osp.join(
    osp.dirname(osp.abspath(__file__)), 'metainfo', 'isbi2015_ceph.py')

MISSING_DATA_HINT = (
    'Create it with tools/convert_isbi.py: for the ISBI 2015 release\n'
    '    python tools/convert_isbi.py /path/to/ISBI2015 data/isbi2015_coco '
    '--resize 640 800\n'
    'or, for the embedded synthetic set (what `make demo` does),\n'
    '    python tools/make_synthetic_ceph.py data/synthetic_ceph '
    '--num-train 24 --num-test1 8\n'
    '    python tools/convert_isbi.py data/synthetic_ceph '
    'data/synthetic_ceph_coco --num-val 4 --num-calib 4 --resize 128 160 '
    '--spacing 0.6047 0.6\n'
    '(or point data_root / ann_file at your converted data with '
    '--cfg-options). For your own annotated images: '
    'tools/convert_landmarks.py, see docs/own_data.md.')


@DATASETS.register_module()
class CephalometricDataset(BaseCocoStyleDataset):
    """Landmark images in the COCO layout written by ``convert_isbi`` or
    ``convert_landmarks``.

    One instance per image (bbox = the whole image, the box inference uses:
    :func:`~mmchh.datasets.whole_image_box.whole_image_bbox`, not MMPose's
    box clipped to ``w - 1``), K landmarks in the
    order of the metainfo (by default the shipped ISBI 2015 metainfo, 19
    cephalometric landmarks; a converted folder's own ``metainfo.py`` with
    ``metainfo=dict(from_file='metainfo.py')``: a relative ``from_file`` is
    read from ``data_root``). On top of MMPose's COCO fields each sample
    carries:

    - ``spacing`` (np.ndarray): (2,) mm per pixel (x, y) of the image file,
      read from the image record (required: radial errors are in mm).
    - ``annotator_keypoints`` (dict): annotator name -> (K, 2) points of
      every annotator stored in the annotation (``keypoints_<name>``), in the
      same coordinates as ``keypoints``.

    List both in ``PackPoseInputs(meta_keys=...)`` to reach the metrics.

    Nothing inconsistent is scored: when the dataset is built, every record
    is checked (K keypoints, a bbox, positive ``width``/``height``, a valid
    ``spacing``, exactly one annotation per image) and every image file must
    exist with the record's size (read from its header only, see
    :mod:`mmchh.datasets.data_checks`); otherwise a
    :class:`~mmchh.datasets.data_checks.DatasetError` (an ``InputError``)
    names the JSON, the image and both values. Images whose spacing is
    unknown (``null``: the file had none and no ``--spacing`` was given at
    conversion) are refused together, all named in one error. An empty
    split is refused the same way.

    Args:
        metainfo (dict, optional): As in MMPose; defaults to the shipped
            ISBI 2015 metainfo. A relative ``from_file`` is read from
            ``data_root``.
        data_root (str, optional): The converted folder.
        num_keypoints (int, optional): The landmark count the model is
            built for (``model.head.out_channels``); when given, a metainfo
            with another count is an error naming both numbers.
        **kwargs: See :class:`mmpose.datasets.BaseCocoStyleDataset`.

    Note:
        Per sample: ``keypoints`` (1, K, 2), ``keypoints_visible`` (1, K),
        ``spacing`` (2, ), ``annotator_keypoints`` name -> (K, 2).
    """

    METAINFO: dict = dict(from_file=CEPH_METAINFO_FILE)

    def __init__(self,
                 metainfo: Optional[dict] = None,
                 data_root: Optional[str] = None,
                 num_keypoints: Optional[int] = None,
                 **kwargs) -> None:
        self.expected_num_keypoints = num_keypoints
        super().__init__(
            metainfo=_metainfo_under(metainfo, data_root),
            data_root=data_root,
            **kwargs)

    def _load_annotations(self):
        if not osp.isfile(self.ann_file):
            raise MissingDataError(
                f'CephalometricDataset: annotation file {self.ann_file} does '
                f'not exist. {_missing_split_hint(self.ann_file)}')
        num = self.metainfo['num_keypoints']
        if self.expected_num_keypoints is not None and \
                num != self.expected_num_keypoints:
            raise DatasetError(
                f'CephalometricDataset: the data in {self.data_root} has '
                f'{num} landmarks (its metainfo), but the config builds a '
                f'model for {self.expected_num_keypoints} '
                '(model.head.out_channels and the datasets\' num_keypoints):'
                ' write the config for this data with python '
                f'tools/landmark_config.py {self.data_root} CONFIG (it sets '
                f'model.head.out_channels={num} and num_keypoints={num})')
        self.images_without_spacing = []
        instances, images = super()._load_annotations()
        per_image = {}
        for inst in instances:
            per_image[inst['img_id']] = per_image.get(inst['img_id'], 0) + 1
        for img in images:
            n = per_image.get(img['img_id'], 0)
            if n != 1:
                raise DatasetError(
                    f'{self.ann_file} (image {img.get("file_name")}): '
                    f'expected exactly 1 annotation per image, found {n}')
        if self.images_without_spacing:
            raise DatasetError(_no_spacing_message(
                self.ann_file, self.images_without_spacing))
        return instances, images

    def _get_topdown_data_infos(self, instance_list: List[dict]) -> List[dict]:
        # MMPose silently drops "invalid" instances (zero-size box, no
        # visible keypoint): here every image must be scored
        for info in instance_list:
            if not self._is_valid_instance(info):
                raise DatasetError(
                    f'{self.ann_file} (image {info["img_path"]}): the '
                    'annotation would be dropped (crowd, zero-size bbox or '
                    'no visible keypoint)')
        return list(instance_list)

    def _serialize_data(self):
        # MMEngine fails with "need at least one array to concatenate" here
        if not self.data_list:
            raise DatasetError(
                f'CephalometricDataset: {self.ann_file} holds no images; an '
                'empty split cannot be trained, validated, calibrated or '
                'tested (tools/convert_isbi.py and tools/convert_landmarks.py'
                ' hold out --num-val and --num-calib >= 1 images)')
        return super()._serialize_data()

    def parse_data_info(self, raw_data_info: dict) -> Optional[dict]:
        """Parses one image's record, refusing inconsistent ones.

        Besides MMPose's fields, adds ``spacing`` and
        ``annotator_keypoints`` (see the class docstring). A record with
        ``spacing`` null is collected (``images_without_spacing``) and
        refused with the others once all are read.

        Raises:
            DatasetError: naming the JSON and the image, when the record has
                not the metainfo's K keypoints, no bbox, no positive
                ``width``/``height`` or no valid ``spacing``, or when the
                image file's size (read from its header) is not the record's
                ``width`` x ``height``, or when its ``bbox`` is not the
                whole image ``[0, 0, width, height]``.
            MissingDataError: the image file does not exist.
        """
        ann = raw_data_info['raw_ann_info']
        img = raw_data_info['raw_img_info']
        where = f'{self.ann_file} (image {img.get("file_name")})'
        expected = self.metainfo['num_keypoints']
        num = len(ann.get('keypoints', [])) // 3
        if num != expected or len(ann.get('keypoints', [])) % 3:
            raise DatasetError(f'{where}: expected {expected} '
                               f'keypoints [x, y, v] (the metainfo\'s), found '
                               f'{len(ann.get("keypoints", []))} values')
        if 'bbox' not in ann:
            raise DatasetError(f'{where}: the annotation has no "bbox"')
        if 'spacing' not in img:
            raise DatasetError(
                f'{where}: image record has no "spacing" (mm/pixel); '
                'convert the data with tools/convert_isbi.py or '
                'tools/convert_landmarks.py')
        size = (img.get('width'), img.get('height'))
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                   and v > 0 and float(v).is_integer() for v in size):
            raise DatasetError(f'{where}: "width" and "height" must be '
                               f'positive integers; got {size[0]!r} x '
                               f'{size[1]!r}')
        check_image_size(img['img_path'], int(size[0]), int(size[1]),
                         self.ann_file)
        data_info = super().parse_data_info(raw_data_info)
        # MMPose clips the box to [0, 0, w - 1, h - 1]; testing must use
        # the affine inference uses (see whole_image_box)
        data_info['bbox'] = _whole_image_box(ann['bbox'], size, where)
        if img['spacing'] is None:
            self.images_without_spacing.append(img.get('file_name'))
            data_info['spacing'] = None
        else:
            # float32, as samples have always carried it in their
            # metainfo: a checkpoint's metrics stay the numbers they were
            field = f'{where}: "spacing"'
            data_info['spacing'] = Spacing.parse(
                img['spacing'], field, source='record',
                error=DatasetError).array(np.float32, field, DatasetError)
        data_info['annotator_keypoints'] = {
            key[len('keypoints_'):]: _annotator_points(value)
            for key, value in ann.items() if key.startswith('keypoints_')
        }
        return data_info


def _annotator_points(coco_keypoints) -> np.ndarray:
    """(K, 2) float32 points of one annotator; NaN where the annotator
    did not mark the landmark (v = 0), so no target is ever drawn towards
    a placeholder (0, 0): the annotator codec drops non-finite points."""
    triplets = np.asarray(coco_keypoints, dtype=np.float32).reshape(-1, 3)
    return np.where(triplets[:, 2:] > 0, triplets[:, :2], np.nan)


def _metainfo_under(metainfo: Optional[dict],
                    data_root: Optional[str]) -> Optional[dict]:
    """``metainfo`` with a relative ``from_file`` read from ``data_root``
    (where ``tools/convert_landmarks.py`` writes ``metainfo.py``)."""
    if not isinstance(metainfo, dict) or not isinstance(
            metainfo.get('from_file'), str) or osp.isabs(
                metainfo['from_file']) or data_root is None:
        return metainfo
    path = osp.join(data_root, metainfo['from_file'])
    if not osp.isfile(path):
        raise MissingDataError(
            f'CephalometricDataset: metainfo file {path} does not exist. '
            'Convert your annotated images with tools/convert_landmarks.py '
            '(it writes metainfo.py into its output folder) and set '
            'data_root to that folder (tools/landmark_config.py writes a '
            'config for it); see docs/own_data.md.')
    return dict(metainfo, from_file=path)


def _whole_image_box(bbox, size, where: str) -> np.ndarray:
    """The record's COCO ``bbox`` (x, y, w, h) as the whole-image box
    (x1, y1, x2, y2), refusing any other box (a landmark image is used
    whole, as at inference)."""
    width, height = int(size[0]), int(size[1])
    try:
        same = np.allclose(np.asarray(bbox, dtype=np.float64).reshape(-1),
                           [0, 0, width, height], rtol=0, atol=1e-6)
    except (TypeError, ValueError):
        same = False
    if not same:
        raise DatasetError(
            f'{where}: "bbox" must be the whole image [0, 0, {width}, '
            f'{height}] (a landmark image is used whole, as at inference); '
            f'got {bbox!r}')
    return whole_image_bbox(width, height)


def _no_spacing_message(ann_file: str, images: List[str]) -> str:
    """Why images without spacing are refused, and the fix."""
    shown = ', '.join(str(i) for i in images[:10])
    more = f' and {len(images) - 10} more' if len(images) > 10 else ''
    return (
        f'{ann_file}: {len(images)} image(s) have no pixel spacing '
        f'("spacing": null): {shown}{more}. Radial errors, MRE, SDR and the '
        'erroneous threshold are in mm, so every image needs its mm/pixel: '
        'convert again with tools/convert_landmarks.py ... --spacing MM '
        '[MM] (images whose DICOM/MetaImage header has a spacing keep '
        'theirs). Metrics in pixels for images without spacing are not '
        'supported yet (a later issue).')


def _missing_split_hint(ann_file: str) -> str:
    """Why a split's JSON may be missing, and how to make it."""
    folder = osp.dirname(osp.abspath(ann_file))
    marker = osp.join(folder, CONVERSION_MARKER)
    if osp.isfile(marker):
        try:
            with open(marker) as f:
                notes = json.load(f).get('notes', {})
        except (OSError, ValueError):
            notes = {}
        split = osp.splitext(osp.basename(ann_file))[0]
        if split in notes:
            return (f'The conversion in {folder} wrote no {split} split: '
                    f'{notes[split]}.')
    aside = find_interrupted_conversion(folder)
    if aside is not None:
        return (f'A conversion into {folder} was interrupted and left the '
                f'previous one at {aside}; run the converter '
                '(tools/convert_isbi.py or tools/convert_landmarks.py) into '
                f'{folder} again (it puts it back, then converts).')
    return MISSING_DATA_HINT
