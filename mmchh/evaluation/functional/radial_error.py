# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Radial (Euclidean) landmark error in mm, the quantity behind MRE / SDR."""
import numpy as np


def radial_errors_mm(pred: np.ndarray, gt: np.ndarray,
                     spacing: np.ndarray) -> np.ndarray:
    """Euclidean distance between points, in mm.

    Args:
        pred (np.ndarray): Predicted points (..., K, 2) in pixels.
        gt (np.ndarray): Ground-truth points (..., K, 2) in pixels.
        spacing (np.ndarray): mm per pixel as (2,) (x, y) or broadcastable
            to (..., 1, 2).

    Returns:
        np.ndarray: Errors (..., K) in mm, float64.
    """
    diff = (np.asarray(pred, np.float64) - np.asarray(gt, np.float64)) * \
        np.asarray(spacing, np.float64)
    return np.sqrt((diff**2).sum(-1))
