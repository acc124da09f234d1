# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""User-facing inference: load a calibrated model, predict whole images.

Importing it also registers :mod:`.pillow_plugin` with Pillow, so MMPose's
``inference_topdown`` sizes DICOM/MetaImage/NRRD/NIfTI files.
``XrayInferencer`` (:mod:`.xray_inferencer`) is imported on first use:
it needs ``mmpose.apis``, whose import takes seconds.
"""
from . import pillow_plugin  # noqa: F401  (registers the Pillow plugin)
from .image_loading import ImageLoadError, XRay, load_xray, read_xray
from .inference import (inference_pipeline, init_landmark_model,
                        predict_landmarks)
from .landmark_result import LandmarkResult

__all__ = [
    'ImageLoadError', 'LandmarkResult', 'XrayInferencer', 'inference_pipeline',
    'init_landmark_model', 'load_xray', 'predict_landmarks', 'read_xray',
    'XRay'
]


def __getattr__(name: str):
    if name == 'XrayInferencer':
        from .xray_inferencer import XrayInferencer
        return XrayInferencer
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
