# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The per-landmark uncertainty fields a softmax heatmap head predicts in
the original image's units: ERE in image pixels and mm, flags, and the
conformal regions.

:class:`UncertaintyFieldsMixin` holds them for ``SoftmaxHeatmapHead`` (it
is listed before ``HeatmapHead`` in the head's bases). Every unit goes
through each sample's :class:`~mmchh.codecs.utils.HeatmapFrame`: heatmap
pixel -> model-input pixels -> original-image pixels (``input_scale /
input_size``) -> mm (``spacing``).
"""
from typing import List, Optional

import numpy as np
import torch
from mmpose.utils.typing import OptSampleList
from torch import Tensor

from mmchh.codecs.utils import (HeatmapFrame, conformal_regions,
                                expected_radial_error)
from mmchh.utils.errors import InputError


def _has_encoded_truth(batch_data_samples: OptSampleList) -> bool:
    """Whether some sample carries the ground truth on the model's grid
    (``gt_instance_labels.heatmap_indices``: evaluation or calibration)."""
    return any('heatmap_indices' in s.get('gt_instance_labels', {})
               for s in batch_data_samples or [])


def _sample_name(sample) -> str:
    """The sample's image, for error messages."""
    meta = sample.metainfo
    return str(meta.get('img_path', meta.get('img_id', '<no img_path>')))


class UncertaintyFieldsMixin:
    """ERE in image pixels and mm, flags and conformal regions of a head.

    Mixed into a heatmap head that has a ``decoder`` (``SoftmaxHeatmap``)
    and the calibration state of
    :class:`~mmchh.models.heads.calibration_state.CalibrationStateMixin`
    (``flag_threshold``, ``flag_threshold_in_mm``, ``conformal_*``).

    Flags: the threshold's unit is part of the calibration state
    (``flag_threshold_in_mm``). A threshold in image pixels flags on
    ``keypoint_ere_px``, with or without ``spacing``; one in mm flags on
    ``keypoint_ere_mm`` and so needs every sample's ``spacing``. Without
    it, samples that carry the encoded ground truth (evaluation,
    calibration: a Good/Erroneous table would silently vanish) raise
    :class:`~mmchh.utils.errors.InputError`; inference samples (no ground
    truth) get no ``keypoint_flagged`` and the mmchh API reports flagging
    as unavailable.

    Note:
        - probs: (B, K, H, W) probability maps; ere, valid: (B, K)
        - ``keypoint_ere_px``, ``keypoint_ere_mm``, ``keypoint_flagged``:
          (B, K)
        - conformal fields: (B, K, L), ``keypoint_region_level`` (B, L)
    """

    def _frames(self,
                batch_data_samples: OptSampleList) -> List[HeatmapFrame]:
        """Each sample's :class:`HeatmapFrame` on the decoder's grid."""
        return [
            HeatmapFrame.from_codec(self.decoder, sample.metainfo)
            for sample in batch_data_samples or []
        ]

    def heatmap_pixel_mm(self, batch_data_samples: OptSampleList,
                         device=None) -> Optional[Tensor]:
        """(B, 1, 2) mm per heatmap pixel (x, y) of each sample, or None
        when a sample has no ``spacing`` (each sample's
        :class:`~mmchh.codecs.utils.HeatmapFrame`)."""
        if not batch_data_samples:
            return None
        sizes = [f.heatmap_pixel_mm() for f in self._frames(
            batch_data_samples)]
        if any(size is None for size in sizes):
            return None
        return torch.as_tensor(
            np.stack(sizes)[:, None, :], dtype=torch.float32, device=device)

    def heatmap_pixel_image(self, batch_data_samples: OptSampleList,
                            device=None) -> Optional[Tensor]:
        """(B, 1, 2) original-image pixels per heatmap pixel (x, y) of each
        sample (``heatmap_scale * input_scale / input_size``), or None when
        a sample has no ``input_scale``."""
        frames = self._frames(batch_data_samples)
        if not frames or any(f.input_scale is None for f in frames):
            return None
        sizes = [f.heatmap_pixel_image() for f in frames]
        return torch.as_tensor(
            np.stack(sizes)[:, None, :], dtype=torch.float32, device=device)

    def _ere_at_pixel_size(self, probs: Tensor, ere: Tensor, valid: Tensor,
                           pixel_size: Tensor) -> Tensor:
        """(B, K) ERE in the unit of ``pixel_size`` ((B, 1, 2) per heatmap
        pixel), NaN for invalid maps.

        Unit per heatmap pixel = ratio * input pixels per heatmap pixel;
        when the ratio is the same along x and y (square pixels after the
        affine: the usual case) the ERE is the input-pixel ERE times it,
        and the maps need not be walked a second time.
        """
        scale = torch.as_tensor(
            self.decoder.scale_factor, dtype=pixel_size.dtype,
            device=pixel_size.device)
        ratio = (pixel_size / scale)[:, 0]  # (B, 2)
        if bool(torch.allclose(ratio[:, 0], ratio[:, 1], rtol=1e-6,
                               atol=0.0)):
            return ere * ratio.mean(-1, keepdim=True).to(ere.dtype)
        return torch.where(
            valid,
            expected_radial_error(
                probs, threshold=self.decoder.ere_threshold,
                pixel_size=pixel_size), torch.full_like(ere, float('nan')))

    def _physical_fields(self, probs: Tensor, ere: Tensor, valid: Tensor,
                         batch_data_samples: OptSampleList) -> dict:
        """ERE in the original image's units and the flags, (B, K) each.

        Returns:
            dict: ``keypoint_ere_px`` (original-image pixels) when every
            sample has ``input_scale``; ``keypoint_ere_mm`` when every
            sample also has ``spacing``; ``keypoint_flagged`` (ERE in the
            threshold's unit > ``flag_threshold``, and every invalid map)
            once a threshold is set and the samples have its unit.

        Raises:
            InputError: when a threshold is set, the samples lack its unit
                and carry the encoded ground truth (see the class
                docstring).
        """
        fields = {}
        for unit, sizes in (
                ('px', self.heatmap_pixel_image(batch_data_samples,
                                                probs.device)),
                ('mm', self.heatmap_pixel_mm(batch_data_samples,
                                             probs.device))):
            if sizes is not None:
                fields[f'keypoint_ere_{unit}'] = self._ere_at_pixel_size(
                    probs, ere, valid, sizes)
        if not torch.isfinite(self.flag_threshold):
            return fields
        unit = self.flag_threshold_unit
        key = f'keypoint_ere_{unit}'
        if key in fields:
            # an invalid landmark is always flagged
            fields['keypoint_flagged'] = (
                fields[key] > self.flag_threshold) | ~valid
        elif _has_encoded_truth(batch_data_samples):
            self._raise_missing_unit(unit, batch_data_samples)
        return fields

    @staticmethod
    def _raise_missing_unit(unit: str,
                            batch_data_samples: OptSampleList) -> None:
        """InputError: the samples cannot be flagged in ``unit``."""
        meta = 'spacing' if unit == 'mm' else 'input_scale'
        name = next(
            (_sample_name(s) for s in batch_data_samples
             if s.metainfo.get(meta) is None), '<a sample>')
        where = ('calibrated on images with a pixel spacing' if unit == 'mm'
                 else 'calibrated in original-image pixels')
        fix = ('list "spacing" in PackPoseInputs(meta_keys=...) and give '
               'every image one, or re-run tools/calibrate.py on a split '
               'without spacing to fit a threshold in image pixels'
               if unit == 'mm' else 'keep TopdownAffine and "input_scale" '
               'in PackPoseInputs(meta_keys=...)')
        raise InputError(
            f'SoftmaxHeatmapHead: the flag threshold is in {unit} ({where}) '
            f'but sample {name} has no "{meta}" in its metainfo, so its '
            f'landmarks cannot be flagged; {fix}')

    def conformal_fields(self, probs: Tensor, valid: Tensor,
                         batch_data_samples: OptSampleList) -> dict:
        """Per landmark and level: the conformal region's area, whether
        it holds the ground truth, and the disc baseline's radius.

        Args:
            probs (Tensor): (B, K, H, W) probability maps.
            valid (Tensor): (B, K) bool map validity.
            batch_data_samples (list[PoseDataSample]): The batch; their
                ``input_scale`` maps heatmap pixels to image pixels.

        Returns:
            dict: Empty without fitted thresholds or samples. Otherwise
            ``keypoint_region_area`` (B, K, L) in original-image px², NaN
            for an invalid map; ``keypoint_region_area_mm2`` (B, K, L) when
            every sample has ``spacing``; ``keypoint_in_region`` (B, K, L)
            bool (never for an invalid map) when the ground truth is
            encoded; ``keypoint_disc_radius`` (B, K, L) image pixels and
            ``keypoint_region_level`` (B, L).
        """
        if not batch_data_samples or not self.has_conformal_regions:
            return {}
        frames = self._frames(batch_data_samples)
        # image px^2 (and mm^2) covered by one heatmap pixel of each sample
        pixel_area = torch.as_tensor(
            [float(np.prod(f.heatmap_pixel_image()))
             for f in frames], dtype=torch.float64, device=probs.device)
        mm2 = [f.heatmap_pixel_mm() for f in frames]
        truth = self.target_indices(probs, batch_data_samples)
        index = None if truth is None else truth[0]
        areas, inside = [], []
        for threshold in self.conformal_threshold:  # (K,) per level
            area, hit = conformal_regions(probs, threshold, index,
                                          self.conformal_score)
            areas.append(torch.where(valid, area,
                                     torch.full_like(area, float('nan'))))
            if hit is not None:
                inside.append(hit & valid)
        area = torch.stack(areas, dim=-1)  # (B, K, L) heatmap pixels
        num_levels = area.shape[-1]
        fields = dict(
            keypoint_region_area=area * pixel_area[:, None, None],
            keypoint_disc_radius=self.conformal_disc_radius.T[None].expand(
                len(probs), -1, -1),
            keypoint_region_level=self.conformal_level[None].expand(
                len(probs), num_levels))
        if all(m is not None for m in mm2):
            area_mm2 = torch.as_tensor(
                [float(np.prod(m)) for m in mm2], dtype=torch.float64,
                device=probs.device)
            fields['keypoint_region_area_mm2'] = \
                area * area_mm2[:, None, None]
        if inside:
            fields['keypoint_in_region'] = torch.stack(inside, dim=-1)
        return fields
