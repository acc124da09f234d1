# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The landmark error the calibrated maps do not show, fitted per landmark.

One temperature per landmark widens or sharpens a map the same way in every
direction. A contour-hugging map can be right across its contour and too
narrow along it (a model trained on few images learns the annotators'
along-contour scatter too sharply; the demo's nasion errs about twice as
far along its contour as its map says, and about as far across as it
says). Measurements that turn on the along-contour error (the S-N line of
SNA, SNB and FMA) then get too narrow a spread and those that do not (ANB)
too wide a one, and the one pooled interval scale
(:mod:`.measurement_intervals`) cannot serve both.

The model fitted here: on calibration image ``i``, landmark ``k``'s true
position, in heatmap pixels, is the median of its region draws plus an
error ``e_ik ~ N(0, S_ik + J_k)``, where ``S_ik`` is the draws' own
covariance (what the map says) and ``J_k`` a 2 x 2 covariance the map
misses (PSD; it can widen, never sharpen). ``J_k`` is the maximum-likelihood
fit over the calibration images, by expectation-maximisation (the error as
a shared random effect ``u ~ N(0, J_k)`` plus the map's own ``N(0, S_ik)``;
each step keeps ``J_k`` PSD and never lowers the likelihood). The
measurement draws then add ``N(0, J_k)`` to every landmark draw
(:func:`~mmchh.codecs.utils.add_position_jitter`).

Heatmap pixels are the model's own unit: the maps and their errors scale
with them whatever the image size or spacing.
"""
from typing import List

import numpy as np

__all__ = [
    'MIN_JITTER_IMAGES', 'cross_fitted_jitter',
    'draw_residuals',
    'fit_landmark_jitter', 'jitter_nll'
]

#: Fewest calibration images with a landmark (its truth and its draws)
#: for fitting that landmark's 2 x 2 jitter (three numbers); below it the
#: landmark gets none. Each image's score is fitted without it
#: (:func:`cross_fitted_jitter`), so a split needs one more image than this.
MIN_JITTER_IMAGES = 5

#: Expectation-maximisation steps, and the relative change of the
#: log-likelihood below which it stops earlier.
_MAX_STEPS = 500
_TOL = 1e-9
#: Added to every ``S_ik + J_k`` before inverting it (heatmap pixels^2): a
#: one-pixel map has ``S_ik = 0``.
_RIDGE = 1e-6


def draw_residuals(positions: np.ndarray, truth: np.ndarray):
    """One image's landmark residuals from its draws, and the draws' spread.

    Args:
        positions (np.ndarray): (N, K, 2) region draws in heatmap pixels;
            a landmark without draws is NaN.
        truth (np.ndarray): (K, 2) true positions in heatmap pixels; NaN
            where not annotated.

    Returns:
        tuple: ``(residual, covariance)``: (K, 2) ``truth - median of the
        draws`` (per axis) and (K, 2, 2) the draws' covariance (population,
        float64); NaN where a landmark has no draws or no truth.

    Note:
        Shapes: positions (N, K, 2) -> residual (K, 2), covariance (K, 2, 2).
    """
    pos = np.asarray(positions, np.float64)
    truth = np.asarray(truth, np.float64)
    if pos.ndim != 3 or pos.shape[2] != 2 or truth.shape != pos.shape[1:]:
        raise ValueError(f'positions must be (N, K, 2) and truth (K, 2); got '
                         f'{pos.shape}, {truth.shape}')
    usable = np.isfinite(pos).all(axis=(0, 2)) & np.isfinite(truth).all(1)
    residual = np.full(truth.shape, np.nan)
    cov = np.full(truth.shape + (2, ), np.nan)
    if usable.any():
        p = pos[:, usable]
        residual[usable] = truth[usable] - np.median(p, axis=0)
        dev = p - p.mean(axis=0)
        cov[usable] = np.einsum('nkc,nkd->kcd', dev, dev) / p.shape[0]
    return residual, cov


def jitter_nll(jitter: np.ndarray, residuals: np.ndarray,
               covariances: np.ndarray) -> float:
    """Negative log-likelihood (constants dropped) of one landmark's
    residuals under ``N(0, S_i + J)``: what :func:`fit_landmark_jitter`
    minimises.

    Args:
        jitter (np.ndarray): (2, 2) ``J``.
        residuals (np.ndarray): (n, 2) ``e_i``.
        covariances (np.ndarray): (n, 2, 2) ``S_i``.
    """
    c = np.asarray(covariances, np.float64) + np.asarray(
        jitter, np.float64) + _RIDGE * np.eye(2)
    e = np.asarray(residuals, np.float64)
    return float(0.5 * np.sum(np.linalg.slogdet(c)[1] + np.einsum(
        'ic,icd,id->i', e, np.linalg.inv(c), e)))


def _em(e: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Maximum-likelihood ``J`` of one landmark: (n, 2), (n, 2, 2) -> (2, 2).

    E-step: the random effect's posterior given ``e_i`` has mean
    ``J C_i^-1 e_i`` and covariance ``J - J C_i^-1 J`` (``C_i = S_i + J``);
    M-step: ``J`` = the mean of its second moment.
    """
    eye = np.eye(2)
    # start from the residuals' own second moment (PSD, and an upper bound
    # of the fit when every S_i is 0); a floor keeps it invertible
    jit = np.einsum('ic,id->cd', e, e) / len(e) + 1e-3 * eye
    last = np.inf
    for _ in range(_MAX_STEPS):
        c_inv = np.linalg.inv(s + jit + _RIDGE * eye)
        gain = jit @ c_inv  # (n, 2, 2)
        mean = np.einsum('icd,id->ic', gain, e)
        post = jit - gain @ jit
        jit = (np.einsum('ic,id->cd', mean, mean) + post.sum(0)) / len(e)
        jit = (jit + jit.T) / 2
        nll = jitter_nll(jit, e, s)
        if abs(last - nll) <= _TOL * max(1.0, abs(nll)):
            break
        last = nll
    # PSD to rounding: clip the eigenvalues
    w, v = np.linalg.eigh(jit)
    return (v * np.clip(w, 0, None)) @ v.T


def fit_landmark_jitter(residuals: np.ndarray, covariances: np.ndarray,
                        min_images: int = MIN_JITTER_IMAGES) -> np.ndarray:
    """Each landmark's missing covariance ``J_k``, by maximum likelihood.

    Args:
        residuals (np.ndarray): (n, K, 2) ``e_ik`` (see
            :func:`draw_residuals`); NaN rows are left out.
        covariances (np.ndarray): (n, K, 2, 2) ``S_ik``.
        min_images (int): A landmark with fewer usable images gets zeros.

    Returns:
        np.ndarray: (K, 2, 2) float64, each PSD, in heatmap pixels^2.

    Note:
        Shapes: residuals (n, K, 2), covariances (n, K, 2, 2) -> (K, 2, 2).
    """
    e = np.asarray(residuals, np.float64)
    s = np.asarray(covariances, np.float64)
    if e.ndim != 3 or e.shape[2] != 2 or s.shape != e.shape + (2, ):
        raise ValueError('residuals must be (n, K, 2) and covariances '
                         f'(n, K, 2, 2); got {e.shape}, {s.shape}')
    out = np.zeros((e.shape[1], 2, 2))
    for k in range(e.shape[1]):
        ok = np.isfinite(e[:, k]).all(1) & np.isfinite(s[:, k]).all((1, 2))
        if ok.sum() >= max(int(min_images), 1):
            out[k] = _em(e[ok, k], s[ok, k])
    return out


def cross_fitted_jitter(residuals: np.ndarray, covariances: np.ndarray,
                        num_folds: int = 10,
                        min_images: int = MIN_JITTER_IMAGES
                        ) -> List[np.ndarray]:
    """For each calibration image, the jitter fitted without it.

    Image ``i`` is in fold ``i % F`` (``F = min(num_folds, n)``; one image
    per fold -- leave-one-out -- up to ``num_folds`` images); its jitter is
    fitted on the other folds. A calibration score drawn with it comes from
    a spread that never saw the image, as a test image's will: the pooled
    scale fitted on such scores keeps its meaning, where scores drawn with
    the jitter fitted on all images would be too small (the fit has seen
    their residuals).

    Args:
        residuals, covariances, min_images: As for
            :func:`fit_landmark_jitter`.
        num_folds (int): At most this many fits.

    Returns:
        list[np.ndarray]: n arrays (K, 2, 2).
    """
    e = np.asarray(residuals, np.float64)
    s = np.asarray(covariances, np.float64)
    n = len(e)
    folds = min(int(num_folds), n)
    fold_of = np.arange(n) % max(folds, 1)
    fits = [fit_landmark_jitter(e[fold_of != f], s[fold_of != f], min_images)
            for f in range(folds)]
    return [fits[f] for f in fold_of]
