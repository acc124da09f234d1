# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""A per-landmark covariance in heatmap pixels, added to position draws.

Calibration fits, per landmark, the 2 x 2 covariance of the error its
calibrated map does not show
(:mod:`mmchh.calibration.conformal.landmark_jitter`); the head stores it
(``measurement_jitter``) and the measurement draws add it. Here: what such a
covariance must be (:func:`check_jitter`) and the draws it widens
(:func:`add_position_jitter`).
"""
from typing import Optional, Sequence

import numpy as np

__all__ = ['add_position_jitter', 'check_jitter']


def add_position_jitter(positions: np.ndarray, jitter: np.ndarray,
                        seed=0) -> np.ndarray:
    """Each landmark's draws plus independent ``N(0, J_k)`` offsets.

    The per-landmark error a calibrated map does not show (fitted by
    :func:`mmchh.calibration.conformal.landmark_jitter.fit_landmark_jitter`)
    added to the draws from the map: the draws then spread as the
    calibration images' errors did.

    Args:
        positions (np.ndarray): (N, K, 2) draws (heatmap pixels); NaN rows
            stay NaN.
        jitter (np.ndarray): (K, 2, 2) symmetric PSD covariances, in the
            positions' unit squared.
        seed (int | np.random.Generator | None): Seed of a
            ``np.random.default_rng``, or a generator to draw from; N x K x
            2 standard normals are drawn from it, whatever ``jitter`` holds.

    Returns:
        np.ndarray: (N, K, 2) float64 ``positions + z @ R_k^T`` with
        ``R_k R_k^T = J_k`` (the symmetric square root, so a singular
        ``J_k`` -- widening along one direction only -- is fine).

    Note:
        Shapes: positions (N, K, 2), jitter (K, 2, 2) -> (N, K, 2).
    """
    pos = np.asarray(positions, np.float64)
    if pos.ndim != 3 or pos.shape[2] != 2:
        raise ValueError(f'positions must be (N, K, 2); got {pos.shape}')
    jit = check_jitter(jitter, pos.shape[1], 'jitter')
    w, v = np.linalg.eigh((jit + jit.transpose(0, 2, 1)) / 2)
    # the symmetric root V sqrt(W) V^T: unique, whatever signs eigh gives V
    root = (v * np.sqrt(np.clip(w, 0, None))[:, None, :]) @ v.transpose(
        0, 2, 1)
    rng = seed if isinstance(seed, np.random.Generator) else \
        np.random.default_rng(seed)
    z = rng.standard_normal(pos.shape)
    return pos + np.einsum('kcd,nkd->nkc', root, z)


def check_jitter(jitter: Optional[Sequence], num_landmarks: Optional[int],
                 where: str) -> Optional[np.ndarray]:
    """A stored jitter as a (K, 2, 2) float64 array, or None.

    Raises:
        ValueError: Naming ``where``, on another shape, a non-finite value
            or a matrix that is not symmetric PSD (to rounding).
    """
    if jitter is None:
        return None
    j = np.asarray(jitter, np.float64)
    if j.ndim != 3 or j.shape[1:] != (2, 2) or (
            num_landmarks is not None and len(j) != num_landmarks):
        raise ValueError(f'{where}: jitter must be (K, 2, 2)'
                         + ('' if num_landmarks is None else
                            f' with K = {num_landmarks}') + f'; got {j.shape}')
    if not np.isfinite(j).all():
        raise ValueError(f'{where}: jitter holds a non-finite value')
    scale = max(1.0, float(np.abs(j).max()))
    if not np.allclose(j, j.transpose(0, 2, 1), atol=1e-6 * scale) or (
            np.linalg.eigvalsh((j + j.transpose(0, 2, 1)) / 2).min()
            < -1e-6 * scale):
        raise ValueError(f'{where}: jitter must hold symmetric positive '
                         'semi-definite 2 x 2 matrices')
    return j
