# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Inference for users: whole X-rays in, calibrated landmarks out.

Two calls cover the common case::

    from mmchh.apis import init_landmark_model, predict_landmarks
    model = init_landmark_model('work_dirs/unet_r34_onehot/calibrated.pth')
    results = predict_landmarks(model, ['a.bmp', 'b.png'], spacing=0.1)

The checkpoint carries its recipe (:mod:`mmchh.utils.checkpoint_recipe`),
so no config is needed; one given is checked against it. Each image is
used whole (its bounding box is the full image, no detector), goes
through the model's own test pipeline less its ``GenerateTarget``
step (:func:`inference_pipeline`; so it is resized exactly as in
validation), and every prediction is mapped back to the pixels of the image
that was passed in (:mod:`.landmark_result`). See ``docs/api.md`` for the
fields.
"""
import os.path as osp
import warnings
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from torch import nn

from mmchh.datasets.ceph_meta import CEPH_LANDMARK_NAMES
from mmchh.datasets.whole_image_box import whole_image_bbox
from mmchh.models.checkpoint_fit import check_state_fits
from mmchh.models.heads.calibration_buffers import check_finite_weights
from mmchh.utils.checkpoint import checkpoint_state_dict, load_checkpoint_file
from mmchh.utils.checkpoint_recipe import (check_config_matches_checkpoint,
                                           checkpoint_recipe, recipe_config,
                                           require_recipe)
from .image_loading import ImageInput, XRay, read_xray
from .image_spacing import parse_spacing, resolve_spacing
from .landmark_result import (LandmarkResult, MeasureSettings, ResultContext,
                              SourceImage, build_landmark_result,
                              landmark_names, landmark_result)
from .measurement_intervals import (IntervalChoice, region_seed,
                                    stored_interval_choice)
from .region_measurements import RegionDraws

SpacingInput = Union[None, float, Sequence[float]]

# landmark_result is re-exported: tools/test.py imports it from here
__all__ = [
    'check_measurement_model', 'inference_pipeline', 'init_landmark_model',
    'landmark_result', 'predict_landmarks'
]


# --------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------
def _model_config(config: Union[None, str, Path, Config], ckpt: Any,
                  checkpoint: str) -> Config:
    """The config to build the model from: the given one, or the
    checkpoint's recipe when none is given."""
    if config is None:
        return recipe_config(require_recipe(ckpt, checkpoint))
    if isinstance(config, (str, Path)):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file {config} does not exist')
        cfg = Config.fromfile(str(config))
    elif isinstance(config, Config):
        cfg = config.copy()
    else:
        raise TypeError(f'config must be a path or a Config; got '
                        f'{type(config)}')
    return cfg


def init_landmark_model(config: Union[None, str, Path, Config],
                        checkpoint: Union[None, str, Path] = None,
                        device: str = 'cpu',
                        allow_config_mismatch: bool = False,
                        amp: bool = False) -> nn.Module:
    """Builds a landmark model from a checkpoint (and optionally a config).

    The checkpoint carries its recipe (the model config, the codec's grid,
    the test pipeline, the landmark names: see
    :mod:`mmchh.utils.checkpoint_recipe`), so ``init_landmark_model(CKPT)``
    or ``init_landmark_model(None, CKPT)`` is enough. A config given as
    well is checked against that recipe: one whose input or heatmap size,
    ``TopdownAffine`` size, landmark count or names differ is refused
    (unless ``allow_config_mismatch``).

    The checkpoint is loaded with torch's ``weights_only=True`` (mmchh
    allow-lists exactly what MMEngine checkpoints contain), and the recipe
    is read as plain data, never run. Calibration travels in the
    checkpoint: the per-landmark temperatures and the ERE flag threshold
    are head buffers.

    Args:
        config (str | Path | Config | None): Config file or object, e.g.
            ``configs/ceph/unet_r34_onehot.py``; None: the checkpoint's
            own. With ``checkpoint`` left out, this is the checkpoint.
        checkpoint (str | Path, optional): Checkpoint file, normally
            ``calibrated.pth``.
        device (str): ``'cpu'``, ``'cuda'``, ``'cuda:1'``...
        allow_config_mismatch (bool): Use a config that differs from the
            checkpoint's recipe, with a ``UserWarning`` naming both.
        amp (bool): Predict in mixed precision: the network under bf16
            autocast on a CPU (fp16 on CUDA), the softmax, decode, ERE and
            scores in float32 (:func:`mmchh.engine.amp.enable_predict_amp`).

    Returns:
        nn.Module: The ``TopdownPoseEstimator`` in eval mode, with ``cfg``
        and ``dataset_meta`` set.

    Raises:
        ConfigMismatchError: If the config's grid, landmark count or names
            differ from the checkpoint's (both files and values named).
        InputError: If the checkpoint does not fit the config's model
            (another landmark count, another backbone): both files, the
            landmark counts and the first mismatching tensor are named; or
            no config is given and the checkpoint carries no recipe.
        FileNotFoundError: If the config or the checkpoint is missing.
        CheckpointError: If the checkpoint is empty, truncated, not plain
            weights, or holds a NaN/inf tensor (the file and the tensor are
            named).

    Warns:
        UserWarning: If the checkpoint is uncalibrated (T = 1 for every
            landmark), or its calibration was fitted for other weights (its
            fingerprint does not match: it is then ignored); the model
            still works, but its probabilities and ERE are not calibrated
            and nothing is flagged. If a config is given and the checkpoint
            carries no recipe to check it against.
    """
    from mmpose.apis import init_model

    import mmchh  # noqa: F401  (registers the modules, allow-lists types)

    if checkpoint is None:
        config, checkpoint = None, config
    if checkpoint is None:
        raise TypeError('init_landmark_model needs a checkpoint')
    checkpoint = str(checkpoint)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint} does not exist')
    ckpt = load_checkpoint_file(checkpoint)
    state = checkpoint_state_dict(ckpt, checkpoint)
    # non-finite weights give (0, 0) with ERE 0 everywhere: refused here,
    # naming the file (the head's load hook refuses them on every path)
    check_finite_weights(state, checkpoint)
    cfg = _model_config(config, ckpt, checkpoint)
    config_name = f'the recipe of {checkpoint}' if config is None else (
        str(config) if not isinstance(config, Config) else
        (config.filename or '<Config object>'))

    # never download pretrained weights: the checkpoint replaces them all
    for part in ('backbone', 'neck', 'head'):
        if part in cfg.model and isinstance(cfg.model[part], dict):
            cfg.model[part]['init_cfg'] = None
    cfg.model.pop('pretrained', None)

    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    # cfg_options=None makes init_model drop the backbone's init_cfg too;
    # a recipe's config has no dataset metainfo for init_model to look up
    # (the checkpoint's names are set below)
    model = _build_from_recipe(cfg) if config is None else init_model(
        cfg, checkpoint=None, device='cpu')
    # names and shapes (the landmark count first) before any weight is
    # copied: a wrong pair gives one clear message, the same the tools give,
    # instead of a wall of size-mismatch errors
    check_state_fits(model, state, checkpoint, config_name)
    if config is not None:
        # the grid and names, which no tensor shape shows
        check_config_matches_checkpoint(cfg, checkpoint_recipe(ckpt),
                                        config_name, checkpoint,
                                        allow_config_mismatch)
    model.load_state_dict(state, strict=True)
    if isinstance(meta, dict) and meta.get('dataset_meta'):
        model.dataset_meta = meta['dataset_meta']
    model.checkpoint_path = checkpoint
    model.to(device)
    model.eval()
    if amp:
        from mmchh.engine.amp import enable_predict_amp
        enable_predict_amp(model)

    head = model.head
    if hasattr(head, 'is_calibrated') and not head.is_calibrated:
        warnings.warn(
            f'checkpoint {checkpoint} is uncalibrated (temperature T = 1 for '
            'every landmark): probabilities and ERE are not calibrated and '
            'no landmark is flagged; run tools/calibrate.py on it first',
            UserWarning,
            stacklevel=2)
    return model


def _build_from_recipe(cfg: Config) -> nn.Module:
    """The model of a recipe's config, as MMPose's ``init_model`` builds
    it, without its dataset-metainfo lookup (the checkpoint has the
    names)."""
    from mmengine.model import revert_sync_batchnorm
    from mmpose.models import build_pose_estimator
    cfg.model.train_cfg = None
    init_default_scope(cfg.get('default_scope', 'mmpose') or 'mmpose')
    model = revert_sync_batchnorm(build_pose_estimator(cfg.model))
    model.dataset_meta = {}
    model.cfg = cfg
    return model


def check_measurement_model(model: nn.Module) -> None:
    """Raises a ValueError unless the model predicts the 19 ISBI 2015
    landmarks in their order (what the measurements need)."""
    num = int(model.cfg.model.head.out_channels)
    names = landmark_names(model, num)
    if num != len(CEPH_LANDMARK_NAMES) or names != list(CEPH_LANDMARK_NAMES):
        raise ValueError(
            'measurements need a model of the 19 ISBI 2015 cephalometric '
            f'landmarks in their order ({", ".join(CEPH_LANDMARK_NAMES)}); '
            f'this model predicts {num}: {", ".join(names)}')


# --------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------
def _is_generate_target(step) -> bool:
    kind = step.get('type') if isinstance(step, dict) else type(step)
    name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    return name.rsplit('.', 1)[-1] == 'GenerateTarget'


def inference_pipeline(cfg: Config) -> Compose:
    """The config's test pipeline, as inference runs it.

    Inference has no keypoints, so the ``GenerateTarget`` step that a test
    pipeline may hold (ground truth for scoring on val/test) is left out;
    every other step is the config's own, so an image is resized exactly
    as in validation. Also sets the config's default scope (``mmpose``
    unless it names another), which the steps' names are looked up in.

    Args:
        cfg (Config): A model config with ``test_dataloader.dataset.pipeline``
            (e.g. ``model.cfg``).

    Returns:
        Compose: The pipeline; it takes a dict with ``img``, ``bbox`` (1, 4)
        and ``bbox_score`` (1,) (plus any meta keys) and gives the packed
        ``inputs`` and ``data_samples``.
    """
    scope = cfg.get('default_scope', 'mmpose')
    if scope is not None:
        init_default_scope(scope)
    return Compose([
        step for step in cfg.test_dataloader.dataset.pipeline
        if not _is_generate_target(step)
    ])


# --------------------------------------------------------------------------
# prediction
# --------------------------------------------------------------------------
def _per_image_spacing(spacing: Any, n: int) -> List[Optional[tuple]]:
    """One spacing for all images, or a list with one entry per image."""
    if isinstance(spacing, (list, tuple)) and len(spacing) == n and (
            any(s is None or isinstance(s, (list, tuple, np.ndarray))
                for s in spacing) or n not in (1, 2)):
        return [parse_spacing(s, f'spacing[{i}]')
                for i, s in enumerate(spacing)]
    return [parse_spacing(spacing)] * n


def _measure_settings(model: nn.Module, measurements: bool, num_samples: int,
                      seed, spacings: List,
                      intervals: Union[str, IntervalChoice]
                      ) -> Optional[MeasureSettings]:
    """The checked measurement options of a call, or None without them
    (the intervals resolved: one warning without a stored scale)."""
    if not measurements:
        return None
    if int(num_samples) < 1:
        raise ValueError(f'num_samples must be >= 1; got {num_samples}')
    if any(s is None for s in spacings):
        warnings.warn(
            'measurements without spacing: MW (mm) is not computed and '
            'the angles assume square pixels; pass spacing (mm/pixel)',
            UserWarning,
            stacklevel=3)
    seed = tuple(int(v) for v in np.atleast_1d(seed))
    if not isinstance(intervals, IntervalChoice):
        intervals = stored_interval_choice(model, intervals, stacklevel=4)
    if intervals.fit is not None:
        region_seed(seed, 0)  # a seed the region draws take
        # the regions the scale was fitted for (refused when absent)
        RegionDraws.of_model(model, intervals.fit.region_level)
    return MeasureSettings(num_samples=int(num_samples), seed=seed,
                           intervals=intervals)


def _pipeline_input(grey: np.ndarray, image: SourceImage,
                    dataset_meta: dict, grey_model: bool) -> dict:
    """The pipeline's input for a whole (H, W) grey image (its box is the
    full image, the box the dataset gives in testing: no detector)."""
    h, w = grey.shape
    info = dict(dataset_meta)
    # 3 identical channels, as LoadImage gives in training (a model
    # normalising one channel gets the grey image)
    info.update(
        img=grey if grey_model else np.repeat(grey[..., None], 3, axis=2),
        img_path=image.path,
        id=image.index,
        img_id=image.index,
        bbox=whole_image_bbox(w, h),
        bbox_score=np.ones(1, dtype=np.float32))
    if image.spacing is not None:
        info['spacing'] = np.asarray(image.spacing, np.float32)
    return info


def _predict_batches(model: nn.Module, pipeline: Compose,
                     greys: List[np.ndarray], images: List[SourceImage],
                     context: ResultContext,
                     batch_size: int) -> List[LandmarkResult]:
    """Runs the model over the images in batches; results in input order."""
    dataset_meta = dict(getattr(model, 'dataset_meta', None) or {})
    mean = getattr(getattr(model, 'data_preprocessor', None), 'mean', None)
    grey_model = isinstance(mean, torch.Tensor) and mean.shape[0] == 1
    # the head computes ERE in mm only when every sample of a batch has a
    # spacing, so images with and without spacing are batched apart
    groups = [[i for i, im in enumerate(images) if im.spacing is not None],
              [i for i, im in enumerate(images) if im.spacing is None]]
    results: List[Optional[LandmarkResult]] = [None] * len(images)
    old_test_cfg = dict(model.test_cfg)
    # the maps stay on the device: the regions' masks are computed there
    model.test_cfg['output_heatmaps'] = context.needs_heatmaps
    try:
        for group in groups:
            for start in range(0, len(group), batch_size):
                idx = group[start:start + batch_size]
                data = [
                    pipeline(
                        _pipeline_input(greys[i], images[i], dataset_meta,
                                        grey_model)) for i in idx
                ]
                with torch.no_grad():
                    samples = model.test_step(pseudo_collate(data))
                for i, sample in zip(idx, samples):
                    results[i] = build_landmark_result(sample, context,
                                                       images[i])
    finally:
        model.test_cfg.clear()
        model.test_cfg.update(old_test_cfg)
    return results


def _warn_invalid(results: List[LandmarkResult]) -> None:
    """One warning per image with landmarks the model gave no answer for."""
    for i, result in enumerate(results):
        invalid = [lm['name'] for lm in result.landmarks if not lm['valid']]
        if invalid:
            where = result.path if result.path is not None else f'<array {i}>'
            warnings.warn(
                f'{where}: the model gave no valid heatmap for '
                f'{len(invalid)} landmark(s) ({", ".join(invalid)}): '
                'non-finite or degenerate network output; they are reported '
                'with no position (None), valid=False and flagged=True',
                UserWarning,
                stacklevel=3)


def predict_landmarks(model: nn.Module,
                      images: Union[ImageInput, Sequence[ImageInput]],
                      spacing: Any = None,
                      batch_size: int = 4,
                      return_heatmaps: bool = False,
                      measurements: bool = False,
                      num_samples: int = 1000,
                      seed: Union[int, Sequence[int]] = 0,
                      spacing_source: str = 'argument',
                      spacing_overrides_header: bool = False,
                      intervals: Union[str, IntervalChoice] = 'fitted'
                      ) -> List[LandmarkResult]:
    """Predicts every landmark of whole images.

    Args:
        model (nn.Module): From :func:`init_landmark_model`.
        images: One path, a list of paths, one array or a list of arrays
            (grey, BGR or BGRA; 8- or 16-bit; any size), or
            :class:`~mmchh.apis.image_loading.XRay` objects
            (:func:`~mmchh.apis.read_xray`). A file may be of any kind the
            converters read (PNG/JPEG/BMP/TIFF, DICOM, MetaImage, NRRD,
            NIfTI; :func:`~mmchh.apis.load_xray`); coordinates are in its
            stored pixels.
        spacing: mm per pixel of the images passed in: None, a number,
            ``(x, y)``, or a list with one such entry per image. With it the
            head computes the exact ERE in mm and the flags. A file whose
            header has a spacing uses the header's: a ``spacing`` that
            contradicts it is a ``UserWarning`` naming both (see
            :mod:`mmchh.apis.image_spacing`).
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
            assume square pixels (a ``UserWarning`` says so). Each
            measurement's ``interval`` is the one ``intervals`` asks for
            (``ci95`` stays the full-map one), ``result.intervals`` says
            which.
        num_samples (int): Draws per landmark for ``measurements``.
        seed (int | Sequence[int]): Seed of the draws; image ``i`` of this
            call draws from ``np.random.default_rng([*seed, i])``, so
            results do not depend on ``batch_size``.
        spacing_source (str): What ``spacing`` is, recorded in each
            result's ``spacing_source``: ``'argument'`` (default) or
            ``'file'`` (rows of a spacing file).
        spacing_overrides_header (bool): Use ``spacing`` even where a
            header has another one (a ``UserWarning`` says so).
        intervals (str | IntervalChoice): The measurements' intervals:
            ``'fitted'`` (default: landmarks drawn within their conformal
            regions, scaled by the factor calibration stored in the
            checkpoint -- the numbers of ``tools/measure.py``'s default
            path; a checkpoint without one: a ``UserWarning`` and the
            full-map intervals, labelled so), ``'full-map'`` (the full
            maps' 95 % interval), or a choice resolved before
            (:func:`~mmchh.apis.measurement_intervals.
            stored_interval_choice`). The region draws of image ``i`` use
            :func:`~mmchh.apis.measurement_intervals.region_seed`.
        list[LandmarkResult]: One per image, in input order. When the
        model's calibration fitted conformal regions
        (``model.head.has_conformal_regions``), each valid landmark's
        ``regions`` hold its region per coverage level: area and outline
        in image pixels (see :class:`LandmarkResult`); the head returns its
        probability maps for them (no second forward pass), the region
        masks are computed on the model's device and only they are copied
        to the host. Without fitted regions every ``regions`` is None.

    Raises:
        ImageLoadError: If an input cannot be read (nothing is predicted).
        ValueError: If ``spacing`` is malformed, or ``measurements=True``
            for a model that does not predict the 19 ISBI 2015 landmarks.

    Note:
        With a list of exactly 2 numbers and 2 images, ``spacing`` is read
        as one (x, y) pair for both images; pass ``[(sx, sy), (sx, sy)]``
        or ``[s1, s2]`` as tuples/lists to give each image its own.
    """
    if isinstance(images, (str, Path, np.ndarray, XRay)):
        images = [images]
    images = list(images)
    spacings = _per_image_spacing(spacing, len(images))
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1; got {batch_size}')
    if measurements:  # before any image is read or the pipeline built
        check_measurement_model(model)
    pipeline = inference_pipeline(model.cfg)
    xrays = [read_xray(im) for im in images]
    sources = []
    for i, (xray, given) in enumerate(zip(xrays, spacings)):
        where = xray.path if xray.path is not None else f'<array {i}>'
        used, source = resolve_spacing(xray.header_spacing, given,
                                       spacing_source,
                                       spacing_overrides_header, where)
        sources.append(SourceImage(shape=xray.grey.shape, path=xray.path,
                                   spacing=used, index=i,
                                   spacing_source=source))
    greys = [xray.grey for xray in xrays]
    measure = _measure_settings(model, measurements, num_samples, seed,
                                [src.spacing for src in sources], intervals)
    context = ResultContext.of_model(model, return_heatmaps, measure)
    results = _predict_batches(model, pipeline, greys, sources, context,
                               batch_size)
    _warn_invalid(results)
    return results
