# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What a user gets for one image: :class:`LandmarkResult`, and how it is
built from one predicted ``PoseDataSample``.

:func:`predict_landmarks` builds every result here, and so can code that
runs the model itself (:func:`landmark_result`, e.g. a hook on a test
Runner): invalid landmarks, names, calibration state and the mapping back
to the image are then the same everywhere.
"""
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from mmchh.codecs.utils import (HeatmapFrame, conformal_region_masks,
                                region_outlines, ring_area)
from mmchh.datasets.ceph_meta import CEPH_LANDMARK_NAMES
from mmchh.evaluation.functional import (ceph_measurements,
                                         sample_ceph_measurements,
                                         summarize_measurement_samples)
from mmchh.models.heads.flag_basis import flag_status as head_flag_status
from mmchh.models.heads.flag_basis import image_flag_status
from mmchh.utils.io import to_jsonable
from .flag_reasons import configuration_status, landmark_flag_fields
from .measurement_intervals import IntervalChoice, measurement_intervals

__all__ = [
    'LandmarkResult', 'MeasureSettings', 'ResultContext', 'SourceImage',
    'build_landmark_result', 'landmark_names', 'landmark_result'
]


@dataclass
class LandmarkResult:
    """Landmarks predicted for one image.

    Attributes:
        path (str | None): The image file, None for an array.
        image_size (tuple[int, int]): (w, h) of the image passed in.
        landmarks (list[dict]): One dict per landmark, in model order:
            ``name``, ``index``, ``x``, ``y`` (pixels of the image passed
            in), ``x_mm``, ``y_mm`` (``x * spacing_x``...; None without
            spacing), ``probability`` (probability of the mode pixel),
            ``ere_px`` (ERE in pixels of the image passed in: the
            model-input ERE times the mean input-to-image scale),
            ``ere_mm`` (exact ERE in mm, None without spacing), ``flagged``
            (``ere_mm > flag_threshold_mm`` or implausible; None when it
            could not be flagged: no threshold at all, or an mm ERE
            threshold without spacing, and not implausible),
            ``flag_reasons`` (why it is
            flagged: a list from ``'invalid'``, ``'ere'``,
            ``'implausible'``; empty when not flagged),
            ``plausibility`` (sigma: the Mahalanobis distance of the
            landmark from where the others place it; None when not scored
            or without a configuration model), ``plausibility_mm`` (that
            residual's length in mm; None without spacing),
            ``implausible`` (``plausibility`` above the configuration
            threshold; None without one or when not scored; see
            :mod:`~mmchh.apis.flag_reasons`), ``constrained_xy`` (only
            when the model's ``test_cfg`` sets ``plausibility_decode``:
            an implausible landmark's plausibility-constrained ``[x, y]``,
            image pixels, beside ``x, y``; None for the others),
            ``valid`` (False when the
            model gave no answer for it: a non-finite or degenerate
            heatmap; then ``x``, ``y``, ``x_mm``, ``y_mm``,
            ``probability``, ``ere_px``, ``ere_mm`` and the plausibility
            fields are None, ``flagged`` is True and ``flag_reasons``
            ``['invalid']``) and ``regions``
            (the landmark's conformal regions, one dict per coverage level,
            see Note; None for an invalid landmark and for a model without
            fitted conformal regions).
        calibrated (bool): Whether the model's temperatures were fitted
            (a calibration fitted for other weights is never loaded).
        flag_threshold_mm (float | None): The model's ERE flag threshold.
        frame (HeatmapFrame): The image's frames: heatmap, model input,
            image and mm (``spacing``); read through the properties
            ``spacing`` (mm per pixel (x, y) or None), ``input_center``,
            ``input_scale`` (the box, in image pixels, that the model input
            covers), ``input_size`` (model input (w, h)) and
            ``heatmap_scale`` (model-input pixels per heatmap pixel).
        heatmaps (np.ndarray | None): (K, H, W) float32 probability maps in
            heatmap space, only with ``return_heatmaps=True``.
        measurements (dict | None): With ``measurements=True``: the eight
            ISBI 2015 measurements (``ANB`` ... ``MW``), each a dict from
            :func:`~mmchh.evaluation.functional.summarize_measurement_samples`:
            ``value`` (from the predicted landmarks), ``value_class``,
            ``mean``, ``std``, ``ci95`` ([lo, hi]), ``most_likely_class``,
            ``class_probabilities``, ``class_names``, ``unit``,
            ``num_valid`` and ``interval`` (the reported interval: ``low``,
            ``high``, ``level``, ``kind`` -- ``'fitted'`` or ``'full-map'``
            -- and, fitted, ``center`` and ``spread``; see
            :mod:`~mmchh.apis.measurement_intervals`). ``ci95`` is always
            the full-map draws' 95 % interval. MW (mm) is None throughout
            without spacing.
        intervals (dict | None): With the measurements, which intervals
            they report (:meth:`~mmchh.apis.measurement_intervals.
            IntervalChoice.record`: ``kind``, ``source``, ``note``, and
            the fitted ``scale``, ``level``, ``region_level``).
        spacing_source (str): Where ``spacing`` came from: ``'header'``
            (the image file's), ``'argument'`` (given for the call, e.g.
            ``--spacing``), ``'file'`` (a ``--spacing-file`` row) or
            ``'none'`` (no spacing); see :mod:`mmchh.apis.image_spacing`.
        flag_status (dict | None): What the flags rest on
            (:func:`~mmchh.models.heads.flag_basis.image_flag_status`):
            the model's threshold, its 95 % bootstrap interval, the
            calibration images and erroneous landmarks it came from,
            ``status`` (``'used'``, ``'not_used'``, ``'none'``),
            ``applied`` (this image's landmarks were flagged) and the
            ``reason`` when they were not.
        configuration_status (dict | None): What the configuration
            (plausibility) flag rests on
            (:func:`~mmchh.apis.flag_reasons.configuration_status`):
            ``status`` (``'used'``, ``'not_used'``, ``'none'``: not
            fitted), ``reason``, ``threshold`` (sigma), ``alpha``,
            ``num_scores``.

    Note:
        Heatmap pixel (u, v) -> image pixel is
        :meth:`HeatmapFrame.heatmap_to_image`: the model-input centre of
        the pixel on the codec's grid, then the mapping MMPose applies to
        keypoints (``x = x_in / input_size[0] * input_scale[0] +
        input_center[0] - input_scale[0] / 2``, same for y).

        A region (``landmarks[k]['regions'][l]``, the head's split-conformal
        region at level ``l``: it holds the true landmark with probability
        >= ``level``) is a dict: ``level`` (coverage ``1 - alpha``),
        ``area_px2`` (image px²), ``area_mm2`` (None without spacing),
        ``disc_radius_px`` (the radius, image pixels, of the disc around
        the prediction that would give the same coverage: the baseline;
        ``inf``, null in JSON, when the calibration split was too small
        to bound it),
        ``outline`` (closed rings, each a list of ``[x, y]`` image pixels,
        the last vertex joining the first: the boundary of the region's
        heatmap pixel squares, :func:`~mmchh.codecs.utils.region_outlines`)
        and ``outline_holes`` (one bool per ring: True for the boundary of
        a hole). The area enclosed (outer rings minus holes) is
        ``area_px2``. Regions need the probability maps:
        :func:`predict_landmarks` always asks the head for them when the
        model has regions; :func:`landmark_result` gives no regions for a
        sample without ``pred_fields.heatmaps``.
    """
    path: Optional[str]
    image_size: Tuple[int, int]
    landmarks: List[Dict[str, Any]]
    calibrated: bool
    flag_threshold_mm: Optional[float]
    frame: HeatmapFrame
    heatmaps: Optional[np.ndarray] = field(default=None, repr=False)
    measurements: Optional[Dict[str, Dict[str, Any]]] = None
    spacing_source: str = 'none'
    flag_status: Optional[Dict[str, Any]] = None
    intervals: Optional[Dict[str, Any]] = None
    configuration_status: Optional[Dict[str, Any]] = None

    @property
    def spacing(self) -> Optional[Tuple[float, float]]:
        """mm per image pixel (x, y), or None."""
        return self.frame.spacing

    @property
    def input_center(self) -> Tuple[float, float]:
        """Centre (x, y) of the box the model input covers (image px)."""
        return self.frame.input_center

    @property
    def input_scale(self) -> Tuple[float, float]:
        """Size (w, h) of that box, in image pixels."""
        return self.frame.input_scale

    @property
    def input_size(self) -> Tuple[int, int]:
        """Model input size (w, h)."""
        return self.frame.input_size

    @property
    def heatmap_scale(self) -> Tuple[float, float]:
        """Model-input pixels per heatmap pixel (x, y)."""
        return tuple(float(v) for v in self.frame.heatmap_scale)

    def heatmap_to_image(self, xy: np.ndarray) -> np.ndarray:
        """Maps (..., 2) heatmap-pixel coordinates to image pixels."""
        return self.frame.heatmap_to_image(xy)

    def to_dict(self) -> Dict[str, Any]:
        """Strict-JSON-ready dict (everything except the heatmaps).

        Plain Python types only; a NaN or infinite number anywhere becomes
        None, so ``json.dumps(..., allow_nan=False)`` always works.
        """
        return to_jsonable(dict(
            path=self.path,
            image_size=list(self.image_size),
            spacing=None if self.spacing is None else list(self.spacing),
            spacing_source=self.spacing_source,
            calibrated=self.calibrated,
            flag_threshold_mm=self.flag_threshold_mm,
            flag_status=self.flag_status,
            configuration_status=self.configuration_status,
            input_center=list(self.input_center),
            input_scale=list(self.input_scale),
            input_size=list(self.input_size),
            landmarks=[dict(lm) for lm in self.landmarks],
            **({} if self.measurements is None else dict(
                intervals=self.intervals,
                measurements={k: dict(v)
                              for k, v in self.measurements.items()}))))


def landmark_names(model: nn.Module, num: int) -> List[str]:
    """The names of a model's ``num`` landmarks: its ``dataset_meta``'s,
    else the ISBI 2015 names for 19, else ``landmark_<i>``."""
    meta = getattr(model, 'dataset_meta', None) or {}
    id2name = meta.get('keypoint_id2name')
    if id2name and len(id2name) == num:
        return [str(id2name[i]) for i in range(num)]
    if num == len(CEPH_LANDMARK_NAMES):
        return list(CEPH_LANDMARK_NAMES)
    return [f'landmark_{i}' for i in range(num)]


def _flag_threshold_mm(model: nn.Module) -> Optional[float]:
    """The head's flag threshold when it is in mm; None without one or
    when it was fitted in image pixels (never relabelled as mm; the flags
    themselves come from the head, in its threshold's unit)."""
    t = getattr(model.head, 'flag_threshold', None)
    if t is None or not bool(torch.isfinite(t)):
        return None
    if getattr(model.head, 'flag_threshold_unit', 'mm') != 'mm':
        return None
    return float(t)


@dataclass(frozen=True)
class MeasureSettings:
    """How the measurements' distributions are drawn.

    Attributes:
        num_samples (int): Draws per landmark.
        seed (tuple[int, ...]): Image ``i`` draws from
            ``np.random.default_rng([*seed, i])`` (its region draws: see
            :func:`~mmchh.apis.measurement_intervals.region_seed`).
        intervals (IntervalChoice | None): The intervals reported (None:
            only ``ci95``).
    """
    num_samples: int
    seed: Tuple[int, ...]
    intervals: Optional[IntervalChoice] = None


@dataclass(frozen=True)
class ResultContext:
    """What every result of one call shares: the model and the options.

    Attributes:
        model (nn.Module): The model that predicted the samples.
        calibrated (bool): Its head's temperatures were fitted.
        flag_threshold_mm (float | None): Its ERE flag threshold.
        return_heatmaps (bool): Keep the (K, H, W) probability maps.
        measure (MeasureSettings | None): Also compute the measurements.
        regions (bool): Its head has fitted conformal regions: each
            landmark gets their outlines (needs the probability maps).
        flag_status (dict | None): Its head's
            :func:`~mmchh.models.heads.flag_basis.flag_status`.
        configuration_status (dict | None): Its head's
            :func:`~mmchh.apis.flag_reasons.configuration_status`.
    """
    model: nn.Module
    calibrated: bool
    flag_threshold_mm: Optional[float]
    return_heatmaps: bool = False
    measure: Optional[MeasureSettings] = None
    regions: bool = False
    flag_status: Optional[Dict[str, Any]] = None
    configuration_status: Optional[Dict[str, Any]] = None

    @property
    def needs_heatmaps(self) -> bool:
        """Whether the head must return its probability maps."""
        return self.return_heatmaps or self.measure is not None or \
            self.regions

    @classmethod
    def of_model(cls,
                 model: nn.Module,
                 return_heatmaps: bool = False,
                 measure: Optional[MeasureSettings] = None
                 ) -> 'ResultContext':
        """The context of ``model``, its calibration state read from its
        head."""
        head = model.head
        return cls(model, bool(getattr(head, 'is_calibrated', False)),
                   _flag_threshold_mm(model), bool(return_heatmaps), measure,
                   bool(getattr(head, 'has_conformal_regions', False)),
                   head_flag_status(head), configuration_status(head))


@dataclass(frozen=True)
class SourceImage:
    """The image one sample was predicted on.

    Attributes:
        shape (tuple[int, int]): (h, w) of the image.
        path (str | None): The image file, None for an array.
        spacing (tuple[float, float] | None): mm per pixel (x, y).
        index (int): Its position in the call (seeds its measurement draws).
        spacing_source (str): Where ``spacing`` came from (``'header'``,
            ``'argument'``, ``'file'``, ``'none'``).
    """
    shape: Tuple[int, int]
    path: Optional[str] = None
    spacing: Optional[Tuple[float, float]] = None
    index: int = 0
    spacing_source: str = 'none'


def _landmark_dicts(pred, frame: HeatmapFrame, names: List[str],
                    valid: np.ndarray) -> List[Dict[str, Any]]:
    """One dict per landmark (see :class:`LandmarkResult`)."""
    kpts = np.asarray(pred.keypoints, np.float64)[0]
    scores = np.asarray(pred.keypoint_mode_prob, np.float64)[0]
    ere_in = np.asarray(pred.keypoint_ere, np.float64)[0]
    # one number for an isotropic quantity: the aspect-preserving affine
    # scales x and y (almost) equally
    px_per_input = float(np.mean(frame.input_pixel_size()))
    mm = None if frame.spacing is None else frame.image_to_mm(kpts)
    ere_mm = (np.asarray(pred.keypoint_ere_mm, np.float64)[0]
              if 'keypoint_ere_mm' in pred else None)
    # flagged, flag_reasons and the plausibility fields
    flags = landmark_flag_fields(pred, valid)
    landmarks = []
    for k, name in enumerate(names):
        if not valid[k]:
            # no answer: nothing that looks like a position or a certainty
            landmarks.append(
                dict(
                    name=name, index=k, x=None, y=None, x_mm=None,
                    y_mm=None, probability=None, ere_px=None, ere_mm=None,
                    **flags[k], valid=False))
            continue
        landmarks.append(
            dict(
                name=name,
                index=k,
                x=float(kpts[k, 0]),
                y=float(kpts[k, 1]),
                x_mm=None if mm is None else float(mm[k, 0]),
                y_mm=None if mm is None else float(mm[k, 1]),
                probability=float(scores[k]),
                ere_px=float(ere_in[k]) * px_per_input,
                ere_mm=None if ere_mm is None else float(ere_mm[k]),
                **flags[k],
                valid=True))
    return landmarks


def _sample_heatmaps(sample) -> Optional[np.ndarray]:
    """The sample's (K, H, W) probability maps as float32, or None."""
    if 'pred_fields' not in sample:
        return None
    heatmaps = sample.pred_fields.heatmaps
    if isinstance(heatmaps, torch.Tensor):
        heatmaps = heatmaps.detach().cpu().numpy()
    return np.asarray(heatmaps, dtype=np.float32)


def _region_masks(maps: torch.Tensor, head: nn.Module,
                  keep: np.ndarray) -> np.ndarray:
    """The conformal region masks of the ``keep`` landmarks of one image,
    computed on the maps' device; only the booleans reach the host.

    Note:
        Shapes: ``maps`` (K, H, W), ``keep`` (K',) indices, result
        (L, K', H, W) bool with L = the head's levels.
    """
    index = torch.as_tensor(keep, dtype=torch.long, device=maps.device)
    probs = maps[index]
    threshold = head.conformal_threshold.to(maps.device)[:, index]  # (L, K')
    masks = conformal_region_masks(
        probs[None].expand(len(threshold), *probs.shape), threshold,
        head.conformal_score)
    return masks.cpu().numpy()


def _outline(mask: np.ndarray, frame: HeatmapFrame) -> Dict[str, list]:
    """``outline`` (rings of [x, y] image pixels) and ``outline_holes`` of
    one (H, W) region mask."""
    rings = region_outlines(mask)
    if not rings:
        return dict(outline=[], outline_holes=[])
    # every vertex through the frame at once
    image = frame.heatmap_to_image(np.concatenate(rings))
    ends = np.cumsum([len(r) for r in rings])[:-1]
    return dict(
        outline=[r.tolist() for r in np.split(image, ends)],
        outline_holes=[ring_area(r) < 0 for r in rings])


def _landmark_regions(sample, context: ResultContext, frame: HeatmapFrame,
                      valid: np.ndarray) -> Optional[List[Optional[list]]]:
    """Each landmark's conformal regions (see :class:`LandmarkResult`):
    None for an invalid landmark; None for all without fitted regions or
    without the maps in the sample.

    Note:
        Shapes: ``valid`` (K,) bool; the head's ``keypoint_region_area``
        and ``keypoint_disc_radius`` (1, K, L), ``keypoint_region_level``
        (1, L); ``pred_fields.heatmaps`` (K, H, W).
    """
    pred = sample.pred_instances
    if not (context.regions and 'keypoint_region_area' in pred
            and 'pred_fields' in sample
            and 'heatmaps' in sample.pred_fields):
        return None
    area = np.asarray(pred.keypoint_region_area, np.float64)[0]  # (K, L)
    # in mm² when the head had the sample's spacing (as ``ere_mm``)
    area_mm2 = (np.asarray(pred.keypoint_region_area_mm2, np.float64)[0]
                if 'keypoint_region_area_mm2' in pred else None)
    radius = np.asarray(pred.keypoint_disc_radius, np.float64)[0]
    # float32's largest value stands for an unbounded disc (the whole image)
    radius[radius >= np.finfo(np.float32).max] = np.inf
    # the float32 levels as typed (0.9, not 0.8999999761581421)
    level = [float(str(v)) for v in np.asarray(
        pred.keypoint_region_level, np.float32)[0]]  # (L,)
    # a region is an answer only for a valid map (its area is then finite)
    keep = np.flatnonzero(valid & np.isfinite(area).all(-1))
    regions: List[Optional[list]] = [None] * len(valid)
    if not len(keep):
        return regions
    maps = torch.as_tensor(sample.pred_fields.heatmaps)
    masks = _region_masks(maps, context.model.head, keep)
    for j, k in enumerate(keep):
        regions[k] = [
            dict(level=level[lv],
                 area_px2=float(area[k, lv]),
                 area_mm2=(None if area_mm2 is None else
                           float(area_mm2[k, lv])),
                 disc_radius_px=float(radius[k, lv]),
                 **_outline(masks[lv, j], frame))
            for lv in range(len(level))
        ]
    return regions


def _measure(frame: HeatmapFrame, heatmaps: np.ndarray, kpts: np.ndarray,
             settings: MeasureSettings, index: int) -> Dict[str, Dict]:
    """The eight measurements of one image: value from the decoded
    landmarks, distribution from the heatmaps (image pixels, then mm).

    A measurement that needs an invalid landmark (NaN position) has no
    value and no distribution: every number of it is None."""
    rng = np.random.default_rng([*settings.seed, int(index)])
    invalid = ~np.isfinite(np.asarray(kpts, np.float64)).all(-1)
    if invalid.any():
        # the draws of the other landmarks stay as they are; the maps of
        # invalid ones are replaced by a point mass only to keep the draw
        # going, and every measurement using them is voided below
        heatmaps = np.array(heatmaps, dtype=np.float32, copy=True)
        heatmaps[invalid] = 0.0
        heatmaps[invalid, 0, 0] = 1.0
    samples = sample_ceph_measurements(
        heatmaps,
        settings.num_samples,
        seed=rng,
        heatmap_to_image=frame.heatmap_to_image,
        spacing=frame.spacing)
    point = {
        k: float(v)
        for k, v in ceph_measurements(kpts, frame.spacing).items()
    }
    summary = summarize_measurement_samples(samples, point)
    if invalid.any():
        for name, value in point.items():
            if not np.isfinite(value) and name in summary:
                keep = ('class_names', 'unit')
                summary[name] = {
                    k: (v if k in keep else
                        0 if k == 'num_valid' else None)
                    for k, v in summary[name].items()
                }
    return summary


def build_landmark_result(sample, context: ResultContext,
                          image: SourceImage) -> LandmarkResult:
    """The :class:`LandmarkResult` of one predicted data sample.

    Args:
        sample (PoseDataSample): A sample returned by ``model.test_step``
            (with ``pred_fields.heatmaps`` when the context keeps heatmaps,
            measures or has regions: ``context.needs_heatmaps``).
        context (ResultContext): The model and the options of the call.
        image (SourceImage): The image the sample was predicted on.

    Returns:
        LandmarkResult: Its landmarks in the pixels of ``image``.
    """
    pred = sample.pred_instances
    frame = replace(
        HeatmapFrame.from_codec(context.model.head.decoder, sample.metainfo),
        spacing=image.spacing)
    kpts = np.asarray(pred.keypoints, np.float64)[0]
    valid = np.isfinite(kpts).all(-1)
    if 'keypoint_valid' in pred:
        valid &= np.asarray(pred.keypoint_valid, bool)[0]
    names = landmark_names(context.model, kpts.shape[0])
    keep_maps = context.return_heatmaps or context.measure is not None
    landmarks = _landmark_dicts(pred, frame, names, valid)
    regions = _landmark_regions(sample, context, frame, valid)
    for k, lm in enumerate(landmarks):
        lm['regions'] = None if regions is None else regions[k]
    h, w = image.shape
    result = LandmarkResult(
        path=image.path,
        image_size=(int(w), int(h)),
        landmarks=landmarks,
        calibrated=context.calibrated,
        flag_threshold_mm=context.flag_threshold_mm,
        frame=frame,
        heatmaps=_sample_heatmaps(sample) if keep_maps else None,
        spacing_source=image.spacing_source,
        flag_status=None if context.flag_status is None else
        image_flag_status(context.flag_status, image.spacing is not None),
        configuration_status=context.configuration_status)
    if context.measure is not None:
        if result.heatmaps is None:
            raise RuntimeError('the head returned no heatmaps; measurements '
                               'need them (test_cfg.output_heatmaps)')
        kpts = np.where(valid[:, None], kpts, np.nan)
        result.measurements = _measure(frame, result.heatmaps, kpts,
                                       context.measure, image.index)
        choice = context.measure.intervals
        if choice is not None:
            result.intervals = choice.record()
            for name, iv in measurement_intervals(
                    result, context.model, choice,
                    context.measure.num_samples, context.measure.seed,
                    image.index).items():
                result.measurements[name]['interval'] = iv
        if not context.return_heatmaps:
            result.heatmaps = None
    return result


def landmark_result(sample,
                    model: nn.Module,
                    image_shape: Tuple[int, int],
                    path: Optional[str] = None,
                    spacing: Optional[Tuple[float, float]] = None,
                    return_heatmaps: bool = False) -> LandmarkResult:
    """The :class:`LandmarkResult` of one predicted data sample.

    For code that runs the model itself (e.g. a hook on a test Runner):
    the same conversion :func:`predict_landmarks` applies, invalid
    landmarks included (no position, ``valid`` False, flagged).

    Args:
        sample (PoseDataSample): A sample returned by ``model.test_step``
            (with ``pred_fields.heatmaps`` when ``return_heatmaps``; also
            needed for the conformal regions' outlines: without the maps
            every ``regions`` is None).
        model (nn.Module): The model that predicted it.
        image_shape (tuple[int, int]): (h, w) of the image.
        path (str, optional): The image file.
        spacing (tuple[float, float], optional): mm per pixel (x, y).
        return_heatmaps (bool): Keep the (K, H, W) probability maps.
    """
    return build_landmark_result(
        sample, ResultContext.of_model(model, return_heatmaps),
        SourceImage(tuple(image_shape), path, spacing,
                    spacing_source='none' if spacing is None else 'argument'))
