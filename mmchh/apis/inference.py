# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Inference for users: whole X-rays in, calibrated landmarks out.

Two calls cover the common case::

    from mmchh.apis import init_landmark_model, predict_landmarks
    model = init_landmark_model('configs/ceph/unet_r34_onehot.py',
                                'work_dirs/unet_r34_onehot/calibrated.pth')
    results = predict_landmarks(model, ['a.bmp', 'b.png'], spacing=0.1)

Each image is used whole (its bounding box is the full image, no detector),
goes through the config's own test pipeline (so it is resized exactly as in
validation), and every prediction is mapped back to the pixels of the image
that was passed in. See ``docs/api.md`` for the fields.
"""
import os.path as osp
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from torch import nn

from mmchh.datasets.ceph_meta import CEPH_LANDMARK_NAMES
from mmchh.evaluation.functional import (ceph_measurements, heatmap_to_input,
                                         sample_ceph_measurements,
                                         summarize_measurement_samples)
from mmchh.utils.checkpoint import (check_finite_state, checkpoint_state_dict,
                                    load_checkpoint_file)
from mmchh.utils.errors import InputError
from mmchh.utils.io import to_jsonable
from mmchh.utils.run_config import check_state_fits

ImageInput = Union[str, Path, np.ndarray]
SpacingInput = Union[None, float, Sequence[float]]

__all__ = [
    'ImageLoadError', 'LandmarkResult', 'check_measurement_model',
    'init_landmark_model', 'landmark_result', 'load_xray',
    'predict_landmarks'
]


class ImageLoadError(InputError):
    """An input could not be read as an image.

    Args:
        path (str | None): The file (None for an in-memory array).
        reason (str): Why it could not be used, in words.
    """

    def __init__(self, path: Optional[str], reason: str):
        self.path = None if path is None else str(path)
        self.reason = reason
        where = self.path if self.path is not None else '<array>'
        super().__init__(f'{where}: {reason}')


# --------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------
def init_landmark_model(config: Union[str, Path, Config],
                        checkpoint: Union[str, Path],
                        device: str = 'cpu') -> nn.Module:
    """Builds a landmark model from a config and loads a checkpoint.

    The checkpoint is loaded with torch's ``weights_only=True`` (mmchh
    allow-lists exactly what MMEngine checkpoints contain). Calibration
    travels in the checkpoint: the per-landmark temperatures and the ERE
    flag threshold are head buffers.

    Args:
        config (str | Path | Config): Config file or object, e.g.
            ``configs/ceph/unet_r34_onehot.py``.
        checkpoint (str | Path): Checkpoint file, normally ``calibrated.pth``.
        device (str): ``'cpu'``, ``'cuda'``, ``'cuda:1'``...

    Returns:
        nn.Module: The ``TopdownPoseEstimator`` in eval mode, with ``cfg``
        and ``dataset_meta`` set.

    Raises:
        InputError: If the checkpoint does not fit the config's model
            (another landmark count, another backbone): both files, the
            landmark counts and the first mismatching tensor are named.
        FileNotFoundError: If the config or the checkpoint is missing.
        CheckpointError: If the checkpoint is empty, truncated, not plain
            weights, or holds a NaN/inf tensor (the file and the tensor are
            named).

    Warns:
        UserWarning: If the checkpoint is uncalibrated (T = 1 for every
            landmark), or its calibration was fitted for other weights (its
            fingerprint does not match: it is then ignored); the model
            still works, but its probabilities and ERE are not calibrated
            and nothing is flagged.
    """
    from mmpose.apis import init_model

    import mmchh  # noqa: F401  (registers the modules, allow-lists types)

    config_name = str(config) if not isinstance(config, Config) else (
        config.filename or '<Config object>')
    if isinstance(config, (str, Path)):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file {config} does not exist')
        cfg = Config.fromfile(str(config))
    elif isinstance(config, Config):
        cfg = config.copy()
    else:
        raise TypeError(f'config must be a path or a Config; got '
                        f'{type(config)}')
    checkpoint = str(checkpoint)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint} does not exist')

    # never download pretrained weights: the checkpoint replaces them all
    for part in ('backbone', 'neck', 'head'):
        if part in cfg.model and isinstance(cfg.model[part], dict):
            cfg.model[part]['init_cfg'] = None
    cfg.model.pop('pretrained', None)

    ckpt = load_checkpoint_file(checkpoint)
    state = checkpoint_state_dict(ckpt, checkpoint)
    # non-finite weights give (0, 0) with ERE 0 everywhere: refused here,
    # naming the file (the head's load hook refuses them on every path)
    check_finite_state(state, checkpoint)

    # cfg_options=None makes init_model drop the backbone's init_cfg too
    model = init_model(cfg, checkpoint=None, device='cpu')
    # names and shapes (the landmark count first) before any weight is
    # copied: a wrong pair gives one clear message, the same the tools give,
    # instead of a wall of size-mismatch errors
    check_state_fits(model, state, checkpoint, config_name)
    model.load_state_dict(state, strict=True)
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    if isinstance(meta, dict) and meta.get('dataset_meta'):
        model.dataset_meta = meta['dataset_meta']
    model.checkpoint_path = checkpoint
    model.to(device)
    model.eval()

    head = model.head
    if hasattr(head, 'is_calibrated') and not head.is_calibrated:
        warnings.warn(
            f'checkpoint {checkpoint} is uncalibrated (temperature T = 1 for '
            'every landmark): probabilities and ERE are not calibrated and '
            'no landmark is flagged; run tools/calibrate.py on it first',
            UserWarning,
            stacklevel=2)
    return model


def _landmark_names(model: nn.Module, num: int) -> List[str]:
    meta = getattr(model, 'dataset_meta', None) or {}
    id2name = meta.get('keypoint_id2name')
    if id2name and len(id2name) == num:
        return [str(id2name[i]) for i in range(num)]
    if num == len(CEPH_LANDMARK_NAMES):
        return list(CEPH_LANDMARK_NAMES)
    return [f'landmark_{i}' for i in range(num)]


def _flag_threshold_mm(model: nn.Module) -> Optional[float]:
    t = getattr(model.head, 'flag_threshold', None)
    if t is None or not bool(torch.isfinite(t)):
        return None
    return float(t)


# --------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------
#: Largest value of 12-bit data: a 16-bit image whose maximum is at most
#: this is taken as 12-bit detector data (see :func:`load_xray`).
TWELVE_BIT_MAX = 4095


def _to_uint8(img: np.ndarray, path: Optional[str]) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        top = int(img.max()) if img.size else 0
        if 0 < top <= TWELVE_BIT_MAX and (img % 257).any():
            # 12-bit detector data stored in 16 bits: /257 would leave it
            # almost black (at most 4095 / 257 = 16 of 255), so its own
            # 12-bit range is mapped onto 0..255 instead
            warnings.warn(
                f'{path or "<array>"}: 16-bit image whose maximum is {top} '
                f'(<= {TWELVE_BIT_MAX}): taken as 12-bit data stored in 16 '
                f'bits and rescaled by 255/{TWELVE_BIT_MAX} (the 16-bit '
                f'conversion /257 would have made its maximum {top / 257:.0f}'
                ' of 255, an almost black image). Convert it to 8 bits '
                'yourself if this is not what you want (docs/faq.md)',
                UserWarning, stacklevel=3)
            return np.round(img.astype(np.float64) * (255.0 / TWELVE_BIT_MAX)
                            ).clip(0, 255).astype(np.uint8)
        # /257 maps 0..65535 onto 0..255 exactly at both ends, and an 8-bit
        # image saved as 16-bit by x257 (the usual widening) comes back
        # bit-identical
        return np.round(img.astype(np.float64) / 257.0).astype(np.uint8)
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    if np.issubdtype(img.dtype, np.floating):
        img = np.nan_to_num(img.astype(np.float64))
        # floats in [0, 1] are normalised intensities; others are taken as
        # 8-bit grey levels
        if img.size and img.min() >= 0 and img.max() <= 1:
            img = img * 255.0
        return np.clip(np.round(img), 0, 255).astype(np.uint8)
    raise ImageLoadError(path, f'unsupported pixel type {img.dtype} '
                         '(expected 8- or 16-bit)')


def load_xray(image: ImageInput) -> np.ndarray:
    """Reads an X-ray as an 8-bit grey image.

    Args:
        image (str | Path | np.ndarray): A BMP/PNG/JPEG/TIFF (anything
            OpenCV decodes) or an array. Arrays with 3 or 4 channels are in
            OpenCV's BGR(A) order.

    Returns:
        np.ndarray: (H, W) uint8.

    Raises:
        ImageLoadError: If the file is missing, empty, not an image, or the
            array has an unsupported shape or type.

    Note:
        - 16-bit images become 8-bit by ``round(v / 257)``; an 8-bit image
          stored as 16-bit by multiplying by 257 gives identical values.
        - A 16-bit image whose maximum is at most 4095 (12-bit detector
          data stored in 16 bits; /257 would leave it almost black) becomes
          ``round(v * 255 / 4095)`` instead, with a ``UserWarning`` naming
          the file and its maximum. (An 8-bit image widened by x257 is
          recognised and still converted by /257.)
        - Colour becomes grey with ``cv2.cvtColor`` (alpha dropped); three
          identical channels are used as they are, so an RGB copy of a grey
          image gives exactly the grey image.
    """
    path = None
    if isinstance(image, (str, Path)):
        path = str(image)
        if not osp.isfile(path):
            raise ImageLoadError(path, 'no such file')
        # np.fromfile + imdecode also reads non-ASCII paths on every OS
        try:
            buf = np.fromfile(path, dtype=np.uint8)
        except OSError as e:
            raise ImageLoadError(path, f'cannot read file ({e})') from e
        if buf.size == 0:
            raise ImageLoadError(path, 'empty file')
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise ImageLoadError(path, 'not a readable image (OpenCV could '
                                 'not decode it)')
    elif isinstance(image, np.ndarray):
        img = image
    else:
        raise ImageLoadError(None, f'expected a path or a numpy array; got '
                             f'{type(image).__name__}')

    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[2] in (3, 4):
        colour = img[..., :3]
        if (colour == colour[..., :1]).all():
            # grey stored as colour: keep the values exactly
            img = colour[..., 0]
        else:
            img = _to_uint8(np.ascontiguousarray(colour), path)
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if img.ndim != 2:
        raise ImageLoadError(path, f'unsupported image shape {img.shape} '
                             '(expected grey, BGR or BGRA)')
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise ImageLoadError(path, f'image too small: {img.shape}')
    return np.ascontiguousarray(_to_uint8(img, path))


# --------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------
@dataclass
class LandmarkResult:
    """Landmarks predicted for one image.

    Attributes:
        path (str | None): The image file, None for an array.
        image_size (tuple[int, int]): (w, h) of the image passed in.
        spacing (tuple[float, float] | None): mm per pixel (x, y).
        landmarks (list[dict]): One dict per landmark, in model order:
            ``name``, ``index``, ``x``, ``y`` (pixels of the image passed
            in), ``x_mm``, ``y_mm`` (``x * spacing_x``...; None without
            spacing), ``probability`` (probability of the mode pixel),
            ``ere_px`` (ERE in pixels of the image passed in: the
            model-input ERE times the mean input-to-image scale),
            ``ere_mm`` (exact ERE in mm, None without spacing), ``flagged``
            (``ere_mm > flag_threshold_mm``; None without a threshold or
            without spacing), ``valid`` (False when the model gave no
            answer for it: a non-finite or degenerate heatmap; then ``x``,
            ``y``, ``x_mm``, ``y_mm``, ``probability``, ``ere_px`` and
            ``ere_mm`` are None and ``flagged`` is True).
        calibrated (bool): Whether the model's temperatures were fitted
            (a calibration fitted for other weights is never loaded).
        flag_threshold_mm (float | None): The model's ERE flag threshold.
        input_center, input_scale (tuple[float, float]): The box (image
            pixels) that the model input covers; ``input_size`` (w, h) is
            the model input size. ``heatmap_scale`` = model-input pixels per
            heatmap pixel (x, y).
        heatmaps (np.ndarray | None): (K, H, W) float32 probability maps in
            heatmap space, only with ``return_heatmaps=True``.
        measurements (dict | None): With ``measurements=True``: the eight
            ISBI 2015 measurements (``ANB`` ... ``MW``), each a dict from
            :func:`~mmchh.evaluation.functional.summarize_measurement_samples`:
            ``value`` (from the predicted landmarks), ``value_class``,
            ``mean``, ``std``, ``ci95`` ([lo, hi]), ``most_likely_class``,
            ``class_probabilities``, ``class_names``, ``unit``,
            ``num_valid``. MW (mm) is None throughout without spacing.

    Note:
        Heatmap pixel (u, v) → image pixel: its model-input centre
        ``x_in = (u + 0.5) * heatmap_scale[0] - 0.5`` (the codec's grid,
        :func:`~mmchh.evaluation.functional.heatmap_to_input`), then
        ``x = x_in / input_size[0] * input_scale[0] + input_center[0] -
        input_scale[0] / 2`` (same for y), the mapping MMPose applies to
        keypoints; see :meth:`heatmap_to_image`.
    """
    path: Optional[str]
    image_size: Tuple[int, int]
    spacing: Optional[Tuple[float, float]]
    landmarks: List[Dict[str, Any]]
    calibrated: bool
    flag_threshold_mm: Optional[float]
    input_center: Tuple[float, float] = (0.0, 0.0)
    input_scale: Tuple[float, float] = (1.0, 1.0)
    input_size: Tuple[int, int] = (1, 1)
    heatmap_scale: Tuple[float, float] = (1.0, 1.0)
    heatmaps: Optional[np.ndarray] = field(default=None, repr=False)
    measurements: Optional[Dict[str, Dict[str, Any]]] = None

    def heatmap_to_image(self, xy: np.ndarray) -> np.ndarray:
        """Maps (..., 2) heatmap-pixel coordinates to image pixels."""
        xy_in = heatmap_to_input(xy, self.heatmap_scale)
        scale = np.asarray(self.input_scale, np.float64)
        return (xy_in / np.asarray(self.input_size, np.float64) * scale +
                np.asarray(self.input_center, np.float64) - 0.5 * scale)

    def to_dict(self) -> Dict[str, Any]:
        """Strict-JSON-ready dict (everything except the heatmaps).

        Plain Python types only; a NaN or infinite number anywhere becomes
        None, so ``json.dumps(..., allow_nan=False)`` always works.
        """
        return to_jsonable(dict(
            path=self.path,
            image_size=list(self.image_size),
            spacing=None if self.spacing is None else list(self.spacing),
            calibrated=self.calibrated,
            flag_threshold_mm=self.flag_threshold_mm,
            input_center=list(self.input_center),
            input_scale=list(self.input_scale),
            input_size=list(self.input_size),
            landmarks=[dict(lm) for lm in self.landmarks],
            **({} if self.measurements is None else dict(
                measurements={k: dict(v)
                              for k, v in self.measurements.items()}))))


def _parse_spacing(spacing: SpacingInput) -> Optional[Tuple[float, float]]:
    if spacing is None:
        return None
    arr = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or not (np.isfinite(arr).all() and (arr > 0).all()):
        raise ValueError(f'spacing must be a positive number (mm/pixel) or '
                         f'(x, y); got {spacing}')
    return float(arr[0]), float(arr[1])


def _per_image_spacing(spacing: Any, n: int) -> List[Optional[tuple]]:
    """One spacing for all images, or a list with one entry per image."""
    if isinstance(spacing, (list, tuple)) and len(spacing) == n and (
            any(s is None or isinstance(s, (list, tuple, np.ndarray))
                for s in spacing) or n not in (1, 2)):
        return [_parse_spacing(s) for s in spacing]
    return [_parse_spacing(spacing)] * n


# --------------------------------------------------------------------------
# prediction
# --------------------------------------------------------------------------
def predict_landmarks(model: nn.Module,
                      images: Union[ImageInput, Sequence[ImageInput]],
                      spacing: Any = None,
                      batch_size: int = 4,
                      return_heatmaps: bool = False,
                      measurements: bool = False,
                      num_samples: int = 1000,
                      seed: Union[int, Sequence[int]] = 0
                      ) -> List[LandmarkResult]:
    """Predicts every landmark of whole images.

    Args:
        model (nn.Module): From :func:`init_landmark_model`.
        images: One path, a list of paths, one array or a list of arrays
            (grey, BGR or BGRA; 8- or 16-bit; any size).
        spacing: mm per pixel of the images passed in: None, a number,
            ``(x, y)``, or a list with one such entry per image. With it the
            head computes the exact ERE in mm and the flags.
        batch_size (int): Images per forward pass.
        return_heatmaps (bool): Also return each image's (K, H, W)
            probability maps (memory: K * H * W * 4 bytes per image).
        measurements (bool): Also compute the eight ISBI 2015 cephalometric
            measurements with their uncertainty (``result.measurements``):
            ``num_samples`` landmark positions are drawn from each
            calibrated heatmap, independently per landmark, and every
            measurement is computed per draw (see
            :mod:`mmchh.evaluation.functional.measurement_uncertainty`).
            Only for 19-landmark models in the ISBI 2015 order. MW is in
            mm and needs ``spacing``; without it MW is None and the angles
            assume square pixels (a ``UserWarning`` says so).
        num_samples (int): Draws per landmark for ``measurements``.
        seed (int | Sequence[int]): Seed of the draws; image ``i`` of this
            call draws from ``np.random.default_rng([*seed, i])``, so
            results do not depend on ``batch_size``.

    Returns:
        list[LandmarkResult]: One per image, in input order.

    Raises:
        ImageLoadError: If an input cannot be read (nothing is predicted).
        ValueError: If ``spacing`` is malformed, or ``measurements=True``
            for a model that does not predict the 19 ISBI 2015 landmarks.

    Note:
        With a list of exactly 2 numbers and 2 images, ``spacing`` is read
        as one (x, y) pair for both images; pass ``[(sx, sy), (sx, sy)]``
        or ``[s1, s2]`` as tuples/lists to give each image its own.
    """
    if isinstance(images, (str, Path, np.ndarray)):
        images = [images]
    images = list(images)
    spacings = _per_image_spacing(spacing, len(images))
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1; got {batch_size}')
    measure = None
    if measurements:
        check_measurement_model(model)
        if int(num_samples) < 1:
            raise ValueError(f'num_samples must be >= 1; got {num_samples}')
        seeds = tuple(int(v) for v in np.atleast_1d(seed))
        measure = dict(num_samples=int(num_samples), seed=seeds)
        if any(s is None for s in spacings):
            warnings.warn(
                'measurements without spacing: MW (mm) is not computed and '
                'the angles assume square pixels; pass spacing (mm/pixel)',
                UserWarning,
                stacklevel=2)

    scope = model.cfg.get('default_scope', 'mmpose')
    if scope is not None:
        init_default_scope(scope)
    pipeline = Compose(model.cfg.test_dataloader.dataset.pipeline)
    dataset_meta = dict(getattr(model, 'dataset_meta', None) or {})

    greys = [load_xray(im) for im in images]
    paths = [str(im) if isinstance(im, (str, Path)) else None for im in images]

    # the head computes ERE in mm only when every sample of a batch has a
    # spacing, so images with and without spacing are batched apart
    groups = [[i for i, s in enumerate(spacings) if s is not None],
              [i for i, s in enumerate(spacings) if s is None]]
    results: List[Optional[LandmarkResult]] = [None] * len(images)
    head = model.head
    calibrated = bool(getattr(head, 'is_calibrated', False))
    threshold = _flag_threshold_mm(model)
    heatmap_scale = tuple(
        float(v) for v in getattr(head.decoder, 'scale_factor', (1.0, 1.0)))
    mean = getattr(getattr(model, 'data_preprocessor', None), 'mean', None)
    grey_model = isinstance(mean, torch.Tensor) and mean.shape[0] == 1

    old_test_cfg = dict(model.test_cfg)
    model.test_cfg['output_heatmaps'] = bool(return_heatmaps or measurements)
    try:
        for group in groups:
            for start in range(0, len(group), batch_size):
                idx = group[start:start + batch_size]
                data = []
                for i in idx:
                    h, w = greys[i].shape
                    info = dict(dataset_meta)
                    # 3 identical channels, as LoadImage gives in training
                    # (a model normalising one channel gets the grey image)
                    info.update(
                        img=greys[i] if grey_model else np.repeat(
                            greys[i][..., None], 3, axis=2),
                        img_path=paths[i],
                        id=i,
                        img_id=i,
                        bbox=np.array([[0, 0, w, h]], dtype=np.float32),
                        bbox_score=np.ones(1, dtype=np.float32))
                    if spacings[i] is not None:
                        info['spacing'] = np.asarray(spacings[i], np.float32)
                    data.append(pipeline(info))
                with torch.no_grad():
                    samples = model.test_step(pseudo_collate(data))
                for i, sample in zip(idx, samples):
                    results[i] = _to_result(sample, paths[i], greys[i].shape,
                                            spacings[i], model, calibrated,
                                            threshold, heatmap_scale,
                                            return_heatmaps, measure, i)
    finally:
        model.test_cfg.clear()
        model.test_cfg.update(old_test_cfg)
    for i, result in enumerate(results):
        invalid = [lm['name'] for lm in result.landmarks if not lm['valid']]
        if invalid:
            warnings.warn(
                f'{paths[i] if paths[i] is not None else f"<array {i}>"}: '
                f'the model gave no valid heatmap for {len(invalid)} '
                f'landmark(s) ({", ".join(invalid)}): non-finite or '
                'degenerate network output; they are reported with no '
                'position (None), valid=False and flagged=True',
                UserWarning,
                stacklevel=2)
    return results


def check_measurement_model(model: nn.Module) -> None:
    """Raises a ValueError unless the model predicts the 19 ISBI 2015
    landmarks in their order (what the measurements need)."""
    num = int(model.cfg.model.head.out_channels)
    names = _landmark_names(model, num)
    if num != len(CEPH_LANDMARK_NAMES) or names != list(CEPH_LANDMARK_NAMES):
        raise ValueError(
            'measurements need a model of the 19 ISBI 2015 cephalometric '
            f'landmarks in their order ({", ".join(CEPH_LANDMARK_NAMES)}); '
            f'this model predicts {num}: {", ".join(names)}')


def _measure(result: 'LandmarkResult', heatmaps: np.ndarray, kpts: np.ndarray,
             measure: Dict[str, Any], index: int) -> Dict[str, Dict]:
    """The eight measurements of one image: value from the decoded
    landmarks, distribution from the heatmaps (image pixels, then mm).

    A measurement that needs an invalid landmark (NaN position) has no
    value and no distribution: every number of it is None."""
    rng = np.random.default_rng([*measure['seed'], int(index)])
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
        measure['num_samples'],
        seed=rng,
        heatmap_to_image=result.heatmap_to_image,
        spacing=result.spacing)
    point = {
        k: float(v)
        for k, v in ceph_measurements(kpts, result.spacing).items()
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


def landmark_result(sample,
                    model: nn.Module,
                    image_shape: Tuple[int, int],
                    path: Optional[str] = None,
                    spacing: Optional[Tuple[float, float]] = None,
                    return_heatmaps: bool = False) -> 'LandmarkResult':
    """The :class:`LandmarkResult` of one predicted data sample.

    For code that runs the model itself (e.g. a hook on a test Runner):
    the same conversion :func:`predict_landmarks` applies, invalid
    landmarks included (no position, ``valid`` False, flagged).

    Args:
        sample (PoseDataSample): A sample returned by ``model.test_step``
            (with ``pred_fields.heatmaps`` when ``return_heatmaps``).
        model (nn.Module): The model that predicted it.
        image_shape (tuple[int, int]): (h, w) of the image.
        path (str, optional): The image file.
        spacing (tuple[float, float], optional): mm per pixel (x, y).
        return_heatmaps (bool): Keep the (K, H, W) probability maps.
    """
    head = model.head
    return _to_result(
        sample, path, image_shape, spacing, model,
        bool(getattr(head, 'is_calibrated', False)),
        _flag_threshold_mm(model),
        tuple(float(v) for v in getattr(head.decoder, 'scale_factor',
                                        (1.0, 1.0))), return_heatmaps)


def _to_result(sample, path, shape, spacing, model, calibrated, threshold,
               heatmap_scale, return_heatmaps, measure=None,
               index=0) -> LandmarkResult:
    pred = sample.pred_instances
    meta = sample.metainfo
    kpts = np.asarray(pred.keypoints, np.float64)[0]
    num = kpts.shape[0]
    scores = np.asarray(pred.keypoint_scores, np.float64)[0]
    ere_in = np.asarray(pred.keypoint_ere, np.float64)[0]
    center = np.asarray(meta['input_center'], np.float64).reshape(2)
    scale = np.asarray(meta['input_scale'], np.float64).reshape(2)
    size = np.asarray(meta['input_size'], np.float64).reshape(2)
    # one number for an isotropic quantity: the aspect-preserving affine
    # scales x and y (almost) equally
    px_per_input = float(np.mean(scale / size))
    ere_mm = (np.asarray(pred.keypoint_ere_mm, np.float64)[0]
              if 'keypoint_ere_mm' in pred else None)
    flagged = (np.asarray(pred.keypoint_flagged)[0]
               if 'keypoint_flagged' in pred else None)
    valid = np.isfinite(kpts).all(-1)
    if 'keypoint_valid' in pred:
        valid &= np.asarray(pred.keypoint_valid, bool)[0]
    names = _landmark_names(model, num)
    landmarks = []
    for k in range(num):
        if not valid[k]:
            # no answer: nothing that looks like a position or a certainty
            landmarks.append(
                dict(
                    name=names[k], index=k, x=None, y=None, x_mm=None,
                    y_mm=None, probability=None, ere_px=None, ere_mm=None,
                    flagged=True, valid=False))
            continue
        x, y = float(kpts[k, 0]), float(kpts[k, 1])
        landmarks.append(
            dict(
                name=names[k],
                index=k,
                x=x,
                y=y,
                x_mm=None if spacing is None else x * spacing[0],
                y_mm=None if spacing is None else y * spacing[1],
                probability=float(scores[k]),
                ere_px=float(ere_in[k]) * px_per_input,
                ere_mm=None if ere_mm is None else float(ere_mm[k]),
                flagged=None if flagged is None else bool(flagged[k]),
                valid=True))
    heatmaps = None
    if (return_heatmaps or measure is not None) and 'pred_fields' in sample:
        heatmaps = sample.pred_fields.heatmaps
        if isinstance(heatmaps, torch.Tensor):
            heatmaps = heatmaps.detach().cpu().numpy()
        heatmaps = np.asarray(heatmaps, dtype=np.float32)
    h, w = shape
    result = LandmarkResult(
        path=path,
        image_size=(int(w), int(h)),
        spacing=spacing,
        landmarks=landmarks,
        calibrated=calibrated,
        flag_threshold_mm=threshold,
        input_center=(float(center[0]), float(center[1])),
        input_scale=(float(scale[0]), float(scale[1])),
        input_size=(int(size[0]), int(size[1])),
        heatmap_scale=heatmap_scale,
        heatmaps=heatmaps)
    if measure is not None:
        if heatmaps is None:
            raise RuntimeError('the head returned no heatmaps; measurements '
                               'need them (test_cfg.output_heatmaps)')
        kpts = np.where(valid[:, None], kpts, np.nan)
        result.measurements = _measure(result, heatmaps, kpts, measure,
                                       index)
        if not return_heatmaps:
            result.heatmaps = None
    return result
