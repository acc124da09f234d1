# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""User-facing inference: load a calibrated model, predict whole images."""
from .image_loading import ImageLoadError, XRay, load_xray, read_xray
from .inference import (inference_pipeline, init_landmark_model,
                        predict_landmarks)
from .landmark_result import LandmarkResult

__all__ = [
    'ImageLoadError', 'LandmarkResult', 'inference_pipeline',
    'init_landmark_model', 'load_xray', 'predict_landmarks', 'read_xray',
    'XRay'
]
