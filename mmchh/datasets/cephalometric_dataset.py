# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
import os.path as osp
from typing import Optional

import numpy as np
from mmpose.datasets.datasets.base import BaseCocoStyleDataset
from mmpose.registry import DATASETS

from .ceph_meta import NUM_CEPH_LANDMARKS

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
    '--cfg-options).')


@DATASETS.register_module()
class CephalometricDataset(BaseCocoStyleDataset):
    """Lateral cephalograms in the COCO layout written by ``convert_isbi``.

    One instance per image (bbox = the whole image), 19 landmarks in ISBI
    2015 order. On top of MMPose's COCO fields each sample carries:

    - ``spacing`` (np.ndarray): (2,) mm per pixel (x, y) of the image file,
      read from the image record (required: radial errors are in mm).
    - ``annotator_keypoints`` (dict): annotator name -> (K, 2) points of
      every annotator stored in the annotation (``keypoints_<name>``), in the
      same coordinates as ``keypoints``.

    List both in ``PackPoseInputs(meta_keys=...)`` to reach the metrics.

    Args:
        See :class:`mmpose.datasets.BaseCocoStyleDataset`. ``metainfo``
        defaults to the shipped ISBI 2015 metainfo.
    """

    METAINFO: dict = dict(from_file=CEPH_METAINFO_FILE)

    def _load_annotations(self):
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'CephalometricDataset: annotation file {self.ann_file} does '
                f'not exist. {MISSING_DATA_HINT}')
        return super()._load_annotations()

    def parse_data_info(self, raw_data_info: dict) -> Optional[dict]:
        ann = raw_data_info['raw_ann_info']
        img = raw_data_info['raw_img_info']
        where = f'{self.ann_file} (image {img.get("file_name")})'
        num = len(ann.get('keypoints', [])) // 3
        if num != NUM_CEPH_LANDMARKS or len(ann.get('keypoints',
                                                     [])) % 3:
            raise ValueError(f'{where}: expected {NUM_CEPH_LANDMARKS} '
                             f'keypoints [x, y, v], found '
                             f'{len(ann.get("keypoints", []))} values')
        if 'spacing' not in img:
            raise ValueError(
                f'{where}: image record has no "spacing" (mm/pixel); '
                'convert the data with tools/convert_isbi.py')
        data_info = super().parse_data_info(raw_data_info)
        spacing = np.asarray(img['spacing'], dtype=np.float32).reshape(-1)
        if spacing.size == 1:
            spacing = np.repeat(spacing, 2)
        if spacing.size != 2 or not (np.isfinite(spacing).all()
                                     and (spacing > 0).all()):
            raise ValueError(f'{where}: "spacing" must be a positive number '
                             f'or [x, y]; got {img["spacing"]}')
        data_info['spacing'] = spacing
        data_info['annotator_keypoints'] = {
            key[len('keypoints_'):]:
            np.asarray(value, dtype=np.float32).reshape(-1, 3)[:, :2]
            for key, value in ann.items() if key.startswith('keypoints_')
        }
        return data_info
