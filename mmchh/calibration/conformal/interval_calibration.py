# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The measurement interval scale, fitted during calibration.

When the calibration split holds the 19 ISBI 2015 landmarks the
measurements need (:data:`~mmchh.datasets.ceph_meta.CEPH_LANDMARK_NAMES`,
in order), :func:`~mmchh.calibration.calibrate_model` also fits the scale of
the measurement intervals there, after the conformal regions: every
calibration image's eight measurements get a center and a spread from
landmarks drawn within their regions
(:func:`~mmchh.evaluation.functional.region_draws.region_measurement_center_spread`,
the computation the API's intervals use), their true values come from the
ground-truth keypoints; the landmarks' jitter and the pooled normalised
residuals' scale are fitted on them
(:func:`~mmchh.calibration.conformal.split_draws.fit_intervals_from_draws`).
The scale, its level, the region level and the jitter are stored in the
head's calibration state (sealed with the rest), so ``tools/measure.py``,
``predict_landmarks(measurements=True)`` and ``tools/infer.py
--measurements`` use it by default.
"""
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import collect_results, is_main_process

from mmchh.codecs.utils.frame import HeatmapFrame
from mmchh.datasets.ceph_meta import CEPH_LANDMARK_NAMES
from mmchh.evaluation.functional.region_draws import region_draw_seed
from mmchh.utils.spacing import Spacing
from ..evaluation_pass import broadcast_from_main, changed_test_cfg
from ..settings import CalibrationError
from .landmark_jitter import MIN_JITTER_IMAGES
from .split_draws import ImageDraws, fit_intervals_from_draws, image_draws

__all__ = ['calibration_image_draws', 'fit_calibration_intervals',
           'has_measurement_landmarks']


def has_measurement_landmarks(metainfo: Optional[dict]) -> bool:
    """Whether a dataset's landmarks are the 19 ISBI 2015 ones, in order."""
    names = (metainfo or {}).get('keypoint_id2name') or {}
    return [names.get(k) for k in range(len(names))] == list(
        CEPH_LANDMARK_NAMES)


def calibration_image_draws(sample, head, level_index: int,
                            num_samples: int, seed: int,
                            index: int) -> ImageDraws:
    """One predicted calibration sample's landmark draws and truth.

    Args:
        sample (PoseDataSample): From ``model.test_step`` with
            ``output_heatmaps`` (``pred_fields.heatmaps`` (19, H, W)) and
            the ground truth (``gt_instances.keypoints`` (1, 19, 2) in image
            pixels, ``keypoints_visible``).
        head (nn.Module): The calibrated head (its conformal regions).
        level_index (int): The region level's index in
            ``head.conformal_level``.
        num_samples (int): Draws per landmark.
        seed (int): Seed; the image draws from ``region_draw_seed(seed,
            index)``.
        index (int): The image's index in the split.
    """
    pred, gt = sample.pred_instances, sample.gt_instances
    maps = sample.pred_fields.heatmaps
    maps = (maps.detach().cpu().numpy() if isinstance(maps, torch.Tensor)
            else np.asarray(maps)).astype(np.float32)
    valid = np.isfinite(maps).all(axis=(1, 2))
    if 'keypoint_valid' in pred:
        valid &= np.asarray(pred.keypoint_valid, bool)[0]
    spacing = sample.metainfo.get('spacing')
    spacing = None if spacing is None else Spacing.parse(
        spacing, f'{sample.metainfo.get("img_path", "a sample")}: '
        '"spacing"', error=CalibrationError).array()
    frame = HeatmapFrame.from_codec(head.decoder, sample.metainfo)
    points = np.asarray(gt.keypoints, np.float64)[0, :, :2]
    visible = np.asarray(
        gt.get('keypoints_visible', np.ones((1, len(points)))))[0] > 0
    return image_draws(maps, valid, head.conformal_threshold[level_index],
                       head.conformal_score, num_samples,
                       region_draw_seed(seed, index), frame, spacing,
                       np.where(visible[:, None], points, np.nan))


def fit_calibration_intervals(model, loader, level: float = 0.95,
                              num_samples: int = 1000,
                              seed: int = 0,
                              min_jitter_images: int = MIN_JITTER_IMAGES
                              ) -> Optional[Dict]:
    """Fits and stores the head's measurement interval scale and jitter.

    Call inside :func:`~mmchh.calibration.calibrate_model`'s frozen evaluation,
    after the conformal regions (the landmarks are drawn within the
    highest level's). Does nothing (returns None) unless the split's
    landmarks are the 19 ISBI ones.

    Args:
        model: The pose estimator (unwrapped) with a calibrated head.
        loader (DataLoader): The calibration split (ground truth encoded).
        level (float): Coverage level of the intervals.
        num_samples (int): Draws per landmark.
        seed (int): Seed of the draws (image ``j`` of the split:
            ``region_draw_seed(seed, j)``).
        min_jitter_images (int): See
            :func:`~mmchh.calibration.conformal.split_draws.fit_intervals_from_draws`.

    Returns:
        dict | None: On the main process the fit
        (:meth:`~mmchh.calibration.conformal.measurement_intervals.MeasurementIntervalFit.to_dict`,
        ``scale`` None when the split is too small for ``level``: then the
        head stores NaN and the tools say so; ``jitter`` None with too few
        images for it); None elsewhere or without the landmarks.

    Note:
        Shapes: per image the draws (N, 19, 2) float32 travel to the main
        process (no heatmap does); the fit broadcast back is ``1 + 19 * 4``
        floats (the scale, then the jitter, NaN when not fitted).
    """
    head = model.head
    if not has_measurement_landmarks(
            getattr(loader.dataset, 'metainfo', None)) or \
            not bool(getattr(head, 'has_conformal_regions', False)):
        return None
    level_index = int(torch.argmax(head.conformal_level))
    region_level = round(float(head.conformal_level[level_index]), 6)
    rows: List[ImageDraws] = []
    with changed_test_cfg(model, output_heatmaps=True), torch.no_grad():
        for data in loader:
            for sample in model.test_step(data):
                rows.append(calibration_image_draws(
                    sample, head, level_index, num_samples, seed,
                    len(rows)))
    rows = collect_results(rows, len(loader.dataset), device='cpu')
    num_maps = head.measurement_jitter.shape[0]
    values = torch.full((1 + num_maps * 4, ), float('nan'),
                        dtype=torch.float64)
    fit = None
    if is_main_process():
        fit = fit_intervals_from_draws(
            rows, level=level, region_level=region_level,
            min_jitter_images=min_jitter_images,
            num_samples=int(num_samples), seed=int(seed),
            calib_file=getattr(loader.dataset, 'ann_file', None))
        values[0] = fit.scale if np.isfinite(fit.scale) else float('nan')
        if fit.jitter is not None:
            values[1:] = torch.as_tensor(fit.jitter_array).reshape(-1)
    values = broadcast_from_main(values,
                                 head.measurement_interval_scale.device)
    values = values.cpu().numpy()
    jitter = values[1:].reshape(num_maps, 2, 2)
    head.set_measurement_interval(
        float(values[0]), level, region_level,
        jitter if np.isfinite(jitter).all() else None)
    return None if fit is None else fit.to_dict()
