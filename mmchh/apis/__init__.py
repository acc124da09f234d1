# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""User-facing inference: load a calibrated model, predict whole images."""
from .inference import (ImageLoadError, LandmarkResult, init_landmark_model,
                        load_xray, predict_landmarks)

__all__ = [
    'ImageLoadError', 'LandmarkResult', 'init_landmark_model', 'load_xray',
    'predict_landmarks'
]
