# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""MMPose's ``Pose2DInferencer`` for every X-ray file our reader reads.

Why a subclass: ``Pose2DInferencer`` (and ``MMPoseInferencer``, which
builds one) lists a folder by ``mimetypes`` (``.mha`` has none: an
``AttributeError``; ``.dcm`` is ``application/dicom``: skipped), sizes the
whole-image box with ``mmcv.imread`` and draws on ``mmcv.imread``'s image,
both OpenCV, which reads no DICOM, MetaImage, NRRD or NIfTI.
:class:`XrayInferencer` changes exactly those steps and nothing else, so
its constructor, ``__call__`` and results are ``Pose2DInferencer``'s:

- inputs: a file, a folder (every regular file in it, sorted as MMPose
  sorts; a file whose extension is not one of
  ``image_reader.ALL_IMAGE_EXTENSIONS`` is an ``ImageLoadError`` naming it
  before anything is predicted, never skipped), a list of paths and
  arrays, or an array;
- the whole-image box (no detector): ``[0, 0, w, h]`` of the pixels
  :func:`~mmchh.datasets.image_reader.read_image` gives, i.e.
  :func:`~mmchh.datasets.whole_image_box.whole_image_bbox`, the box of the
  dataset and of :func:`~mmchh.apis.predict_landmarks`; a file that cannot
  be read is the reader's ``ImageLoadError`` naming it;
- the drawn image: :func:`~mmchh.apis.read_xray`'s 8-bit grey (the one
  16-to-8-bit rule) as RGB;
- output names for files OpenCV cannot write: the whole file name plus
  ``.png`` for the drawing and plus ``.json`` for the predictions
  (``a.dcm.png``, ``a.dcm.json``), so ``a.dcm`` and ``a.png`` in one folder
  never overwrite each other; PNG/JPEG/BMP/TIFF inputs keep MMPose's
  names.

Predictions carry the uncertainty, not only MMPose's keys: each instance's
dict adds ``keypoint_ere`` with ``keypoint_ere_unit`` (``'mm'`` with a
spacing, else ``'px'``, original-image pixels), ``keypoint_flagged`` (None
where the model cannot flag this image: uncalibrated, or a threshold in mm
and no spacing; ``flag_unavailable`` then says why), ``keypoint_valid``,
``keypoint_mode_prob`` and ``keypoint_score_meaning``: ``keypoint_scores``
are the calibrated probability that each landmark lies within a radius of
the prediction (2 mm with a spacing, else 5 % of the box; see
:class:`~mmchh.codecs.utils.ScoreRadius`), so MMPose's default
``kpt_thr`` (0.3) draws the landmarks the model is fairly sure of. A
``spacing`` call argument (mm per pixel, one number or ``(x, y)``) gives
file inputs a spacing their header lacks.

The model's test pipeline still reads each file from its path: for a
DICOM/MetaImage/NRRD/NIfTI file its first step must be
``LoadFullRangeImage`` (it sets the header's spacing, so the head gives ERE
in mm); with MMPose's ``LoadImage`` such a file is refused with a message
saying so.

Importing this module registers the class in MMPose's ``INFERENCERS``
under ``'XrayInferencer'``; :mod:`mmchh.apis` imports it on first use of
``mmchh.apis.XrayInferencer`` (``mmpose.apis`` takes 1-2 s to import,
which every ``import mmchh`` would otherwise pay).
"""
import os
import os.path as osp
from pathlib import Path
from typing import List, Sequence, Union

import cv2
import mmengine
import numpy as np
from mmengine.fileio import join_path
from mmpose.apis.inferencers import Pose2DInferencer
from mmpose.registry import INFERENCERS, TRANSFORMS

from mmchh.codecs.utils import ScoreRadius
from mmchh.datasets.image_reader import (ALL_IMAGE_EXTENSIONS,
                                         DICOM_EXTENSIONS, ITK_EXTENSIONS,
                                         RASTER_EXTENSIONS, ImageLoadError,
                                         read_image, split_image_name)
from mmchh.datasets.transforms import LoadFullRangeImage
from mmchh.datasets.whole_image_box import whole_image_bbox
from mmchh.utils.errors import InputError
from mmchh.utils.spacing import Spacing
from .image_loading import read_xray

__all__ = ['XrayInferencer', 'output_name']

InputType = Union[str, np.ndarray]


def _extension(path: str) -> str:
    return split_image_name(osp.basename(path))[1].lower()


def output_name(img_path: str, suffix: str) -> str:
    """The file name MMPose would write for ``img_path`` (``stem + .json``,
    the name itself for a drawing), or, for a file OpenCV cannot write or
    MMPose cannot read, the whole name plus ``suffix``."""
    name = osp.basename(img_path)
    if _extension(name) in RASTER_EXTENSIONS:
        return osp.splitext(name)[0] + '.json' if suffix == '.json' else name
    return name + suffix


def _checked_file(path: str) -> str:
    """``path`` when it names a file of a kind the reader reads."""
    if not osp.isfile(path):
        raise ImageLoadError(
            path, 'no such file' if not osp.exists(path) else 'not a file')
    if _extension(path) not in ALL_IMAGE_EXTENSIONS:
        raise ImageLoadError(
            path, f'not an image kind mmchh reads (extension '
            f'{_extension(path)!r}; supported: '
            f'{", ".join(ALL_IMAGE_EXTENSIONS)}); remove it from the folder '
            'or pass a list of files')
    return path


def _row(instances, key: str, index: int) -> list:
    """Row ``index`` of an instance field as a JSON list."""
    return np.asarray(instances[key])[index].tolist()


def uncertainty_fields(sample, score_radius: ScoreRadius) -> List[dict]:
    """The uncertainty of each instance of a predicted sample, as the
    JSON-ready keys :class:`XrayInferencer` adds to MMPose's (see the
    module).

    Args:
        sample (PoseDataSample): A predicted sample (``pred_instances``
            from ``SoftmaxHeatmapHead``).
        score_radius (ScoreRadius): The model's score radius.

    Returns:
        list[dict]: One dict per instance.
    """
    pred = sample.pred_instances
    in_mm = 'keypoint_ere_mm' in pred
    unit = 'mm' if in_mm else 'px'
    out = []
    for i in range(len(pred)):
        fields = dict(
            keypoint_ere=_row(pred, f'keypoint_ere_{unit}', i),
            keypoint_ere_unit=unit,
            keypoint_valid=_row(pred, 'keypoint_valid', i),
            keypoint_mode_prob=_row(pred, 'keypoint_mode_prob', i),
            keypoint_score_meaning=score_radius.describe(in_mm),
            keypoint_flagged=None)
        if 'keypoint_flagged' in pred:
            fields['keypoint_flagged'] = _row(pred, 'keypoint_flagged', i)
        else:
            fields['flag_unavailable'] = (
                'no flag threshold in this model\'s calibration, or a '
                'threshold in mm and no spacing for this image (give one: '
                'spacing=...)')
        out.append(fields)
    return out


@INFERENCERS.register_module()
class XrayInferencer(Pose2DInferencer):
    """``Pose2DInferencer`` reading every X-ray kind mmchh reads: PNG,
    JPEG, BMP, TIFF (8/16-bit), DICOM, MetaImage, NRRD, NIfTI.

    Args:
        As :class:`mmpose.apis.Pose2DInferencer`: ``model`` (config),
        ``weights`` (checkpoint), ``device``, ``scope``, ``det_model``
        (None or ``'whole_image'`` for a landmark model: the whole image
        is the box), ``det_weights``, ``det_cat_ids``, ``show_progress``.

    Note:
        Calling it yields one dict per input, in input order (a folder:
        sorted paths), as ``Pose2DInferencer``: ``predictions`` (per image
        a list of instances with ``keypoints`` (K, 2) in image pixels,
        ``keypoint_scores`` (K,), ``bbox`` and the uncertainty keys of
        :func:`uncertainty_fields`) and ``visualization`` (a list of
        (H, W, 3) uint8 RGB drawings with ``return_vis=True``).
    """

    preprocess_kwargs: set = Pose2DInferencer.preprocess_kwargs | {
        'spacing'
    }

    # ------------------------------------------------------------------
    # inputs
    # ------------------------------------------------------------------
    def _inputs_to_list(self, inputs) -> List[InputType]:
        """Every input as a path or an array, checked (see the module)."""
        self._video_input = False
        if isinstance(inputs, np.ndarray):
            return [inputs]
        if isinstance(inputs, (str, Path)):
            path = str(inputs)
            if osp.isdir(path):
                names = sorted(
                    osp.join(path, n) for n in os.listdir(path)
                    if not osp.isdir(osp.join(path, n)))
                return [_checked_file(p) for p in names]
            return [_checked_file(path)]
        return [
            _checked_file(str(x)) if isinstance(x, (str, Path)) else x
            for x in inputs
        ]

    def _pipeline_reads_medical_files(self) -> bool:
        """Whether the test pipeline's load step is LoadFullRangeImage."""
        steps = self.cfg.test_dataloader.dataset.pipeline
        kind = steps[0].get('type') if steps else None
        if isinstance(kind, str):
            kind = TRANSFORMS.get(kind)
        return isinstance(kind, type) and issubclass(kind, LoadFullRangeImage)

    def preprocess_single(self,
                          input: InputType,
                          index: int,
                          bbox_thr: float = 0.3,
                          nms_thr: float = 0.3,
                          bboxes: Union[List[List], List[np.ndarray],
                                        np.ndarray] = [],
                          spacing=None):
        """As ``Pose2DInferencer.preprocess_single``; without a detector a
        file's box is the whole image as our reader reads it; ``spacing``
        (mm per pixel, file inputs only) is the sample's ``spacing``.

        Raises:
            ImageLoadError: naming the file, when it cannot be read, or it
                is a DICOM/MetaImage/NRRD/NIfTI file and the test
                pipeline does not load with ``LoadFullRangeImage``.
        """
        if spacing is not None:
            if not isinstance(input, str) or \
                    self.cfg.data_mode != 'topdown' or \
                    self.detector is not None:
                raise InputError(
                    'XrayInferencer: spacing=... applies to image files '
                    'with the whole image as the box; got an array or a '
                    'detector')
            spacing = Spacing.parse(spacing, 'XrayInferencer: spacing',
                                    error=InputError).array()
        if not isinstance(input, str):
            return super().preprocess_single(input, index, bbox_thr, nms_thr,
                                             bboxes)
        if _extension(input) in DICOM_EXTENSIONS + ITK_EXTENSIONS and \
                not self._pipeline_reads_medical_files():
            raise ImageLoadError(
                input, 'the model\'s test pipeline does not load with '
                'LoadFullRangeImage, so it cannot read DICOM, MetaImage, '
                'NRRD or NIfTI files; use dict(type=\'LoadFullRangeImage\') '
                'as the first step of test_dataloader.dataset.pipeline')
        if self.cfg.data_mode != 'topdown' or self.detector is not None:
            return super().preprocess_single(input, index, bbox_thr, nms_thr,
                                             bboxes)
        # as Pose2DInferencer (which ignores ``bboxes`` here as well), with
        # the size from the reader instead of mmcv.imread
        w, h = read_image(input).size
        data_info = dict(img_path=input)
        data_info.update(self.model.dataset_meta)
        data_info['bbox'] = whole_image_bbox(w, h)
        data_info['bbox_score'] = np.ones(1, dtype=np.float32)
        if spacing is not None:
            data_info['spacing'] = spacing
        return [self.pipeline(data_info)]

    # ------------------------------------------------------------------
    # outputs
    # ------------------------------------------------------------------
    def visualize(self,
                  inputs: list,
                  preds: list,
                  return_vis: bool = False,
                  show: bool = False,
                  draw_bbox: bool = False,
                  wait_time: float = 0,
                  radius: int = 3,
                  thickness: int = 1,
                  kpt_thr: float = 0.3,
                  vis_out_dir: str = '',
                  window_name: str = '',
                  black_background: bool = False,
                  **kwargs) -> List[np.ndarray]:
        """As ``Pose2DInferencer.visualize`` (the same arguments), drawing
        on a file's 8-bit grey (:func:`~mmchh.apis.read_xray`) as RGB."""
        if return_vis or show or vis_out_dir:
            # a BGR array: the parent converts it to RGB (grey stays grey)
            inputs = [
                cv2.cvtColor(read_xray(x).grey, cv2.COLOR_GRAY2BGR)
                if isinstance(x, str) else x for x in inputs
            ]
        return super().visualize(inputs, preds, return_vis, show, draw_bbox,
                                 wait_time, radius, thickness, kpt_thr,
                                 vis_out_dir, window_name, black_background,
                                 **kwargs)

    def save_visualization(self, visualization, vis_out_dir, img_name=None):
        """As MMPose, the name ``+ '.png'`` where OpenCV cannot write it."""
        if img_name and not self._video_input:
            img_name = output_name(img_name, '.png')
        return super().save_visualization(visualization, vis_out_dir, img_name)

    def postprocess(self,
                    preds: Sequence,
                    visualization: List[np.ndarray],
                    return_datasample=None,
                    return_datasamples: bool = False,
                    pred_out_dir: str = '') -> dict:
        """As ``Pose2DInferencer.postprocess``, each instance with its
        uncertainty (:func:`uncertainty_fields`); a DICOM/MetaImage/NRRD/
        NIfTI file's predictions go to its whole name ``+ '.json'``."""
        if self._video_input:
            return super().postprocess(preds, visualization, return_datasample,
                                       return_datasamples, pred_out_dir)
        result = super().postprocess(preds, visualization, return_datasample,
                                     return_datasamples, '')
        if not (return_datasamples or return_datasample):
            radius = ScoreRadius.from_test_cfg(
                self.cfg.model.get('test_cfg'))
            for instances, sample in zip(result['predictions'], preds):
                for instance, extra in zip(
                        instances, uncertainty_fields(sample, radius)):
                    instance.update(extra)
        if not pred_out_dir:
            return result
        for pred, sample in zip(result['predictions'], preds):
            name = output_name(sample.metainfo['img_path'], '.json')
            mmengine.dump(pred, join_path(pred_out_dir, name), indent='  ')
        return result
