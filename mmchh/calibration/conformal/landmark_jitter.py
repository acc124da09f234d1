# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The landmark error the calibrated maps do not show, fitted per landmark.

One temperature per landmark widens or sharpens a map the same way in every
direction. A contour-hugging map can be right across its contour and too
narrow along it (a model trained on few images learns the annotators'
along-contour scatter too sharply; on the demo model the fitted jitter is
nearly one-dimensional, nasion's vertical, along its contour, see
docs/measurements.md). Measurements that turn on the along-contour error (the S-N line of
SNA, SNB and FMA) then get too narrow a spread and those that do not (ANB)
too wide a one, and the one pooled interval scale
(:mod:`.measurement_intervals`) cannot serve both.

The model fitted here: on calibration image ``i``, landmark ``k``'s true
position, in heatmap pixels, is the median of its region draws plus an
error ``e_ik ~ N(0, S_ik + J_k)``, where ``S_ik`` is the draws' own
covariance (what the map says) and ``J_k`` a 2 x 2 covariance the map
misses (PSD; it can widen, never sharpen). ``J_k`` is the maximum-likelihood
fit over the calibration images: expectation-maximisation (the error as a
random effect ``u ~ N(0, J_k)`` plus the map's own ``N(0, S_ik)``), then a
quasi-Newton polish on the Cholesky factor, leaving out the residuals the
fit calls outliers (:data:`OUTLIER_D2`) and refitting. The
measurement draws then add ``N(0, J_k)`` to every landmark draw
(:func:`~mmchh.codecs.utils.add_position_jitter`).

Heatmap pixels are the model's own unit: the maps and their errors scale
with them whatever the image size or spacing.
"""
import math
from typing import List

import numpy as np
from scipy.optimize import minimize

__all__ = [
    'MIN_JITTER_IMAGES', 'OUTLIER_D2', 'cross_fitted_jitter',
    'draw_residuals', 'fit_landmark_jitter', 'jitter_nll'
]

#: Fewest calibration images with a landmark (its truth and its draws)
#: for fitting that landmark's 2 x 2 jitter (three numbers); below it the
#: landmark gets none. Each image's score is fitted without it
#: (:func:`cross_fitted_jitter`), so a split needs one more image than this.
MIN_JITTER_IMAGES = 5

#: Squared Mahalanobis distance of a residual under ``N(0, S_ik + J_k)``
#: beyond which the fit leaves it out: ``-2 ln(0.001)``, exceeded with
#: probability 0.001 by a residual the model describes (chi-square, 2
#: degrees of freedom). One confidently wrong landmark (a map sharp 30 mm
#: from the truth) would otherwise set its landmark's jitter for every
#: image; such errors are the flags' and the conformal scale's to meet.
OUTLIER_D2 = -2 * math.log(0.001)

#: Expectation-maximisation steps before the quasi-Newton polish.
_EM_STEPS = 50
#: Rounds of fitting and leaving out outliers, at most.
_TRIM_ROUNDS = 10
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
    s = np.asarray(covariances, np.float64)
    jit = np.asarray(jitter, np.float64)
    logdet = np.linalg.slogdet(s + jit + _RIDGE * np.eye(2))[1]
    return float(0.5 * np.sum(logdet + _mahalanobis2(
        jit, np.asarray(residuals, np.float64), s)))


def _nll_and_grad(chol: np.ndarray, e: np.ndarray, s: np.ndarray):
    """:func:`jitter_nll` at ``J = L L^T`` (``L`` lower triangular from
    ``chol = (l11, l21, l22)``) and its gradient in ``chol``:
    ``dNLL/dJ = (1/2) sum_i (C_i^-1 - C_i^-1 e_i e_i^T C_i^-1)``,
    ``dNLL/dL = 2 dNLL/dJ L``."""
    low = np.array([[chol[0], 0.0], [chol[1], chol[2]]])
    c_inv = np.linalg.inv(s + low @ low.T + _RIDGE * np.eye(2))
    ce = np.einsum('icd,id->ic', c_inv, e)
    nll = 0.5 * float(np.sum(-np.linalg.slogdet(c_inv)[1] +
                             np.einsum('ic,ic->i', e, ce)))
    grad_j = 0.5 * (c_inv - np.einsum('ic,id->icd', ce, ce)).sum(0)
    grad_l = 2 * grad_j @ low
    return nll, np.array([grad_l[0, 0], grad_l[1, 0], grad_l[1, 1]])


def _fit_one(e: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Maximum-likelihood ``J`` of one landmark: (n, 2), (n, 2, 2) -> (2, 2).

    Expectation-maximisation first (the random effect's posterior given
    ``e_i`` has mean ``J C_i^-1 e_i`` and covariance ``J - J C_i^-1 J``,
    ``C_i = S_i + J``; ``J`` becomes the mean of its second moment: PSD and
    never a worse likelihood), which crawls where the optimum has a zero
    eigenvalue (the map already wide enough in one direction); then a
    quasi-Newton polish on ``J = L L^T``, where that boundary is an
    ordinary point. The better of the two is kept (the polish's ``fun``
    is :func:`jitter_nll` at its result).
    """
    eye = np.eye(2)
    # start from the residuals' own second moment (PSD, and the fit when
    # every S_i is 0); a floor keeps it invertible
    jit = np.einsum('ic,id->cd', e, e) / len(e) + 1e-3 * eye
    for _ in range(_EM_STEPS):
        c_inv = np.linalg.inv(s + jit + _RIDGE * eye)
        gain = jit @ c_inv  # (n, 2, 2)
        mean = np.einsum('icd,id->ic', gain, e)
        post = jit - gain @ jit
        jit = (np.einsum('ic,id->cd', mean, mean) + post.sum(0)) / len(e)
        jit = (jit + jit.T) / 2
    w, v = np.linalg.eigh(jit)
    jit = (v * np.clip(w, 0, None)) @ v.T
    low = np.linalg.cholesky(jit + 1e-12 * eye)
    polish = minimize(_nll_and_grad, [low[0, 0], low[1, 0], low[1, 1]],
                      args=(e, s), jac=True, method='L-BFGS-B',
                      options=dict(ftol=1e-14, gtol=1e-10, maxiter=1000))
    if polish.fun <= jitter_nll(jit, e, s):
        low = np.array([[polish.x[0], 0.0], [polish.x[1], polish.x[2]]])
        jit = low @ low.T
    return (jit + jit.T) / 2


def fit_landmark_jitter(residuals: np.ndarray, covariances: np.ndarray,
                        min_images: int = MIN_JITTER_IMAGES) -> np.ndarray:
    """Each landmark's missing covariance ``J_k``, by maximum likelihood.

    Residuals beyond :data:`OUTLIER_D2` of the fit are left out and the
    fit repeated (a trimmed maximum likelihood, from the fit on every
    residual), so with many images one catastrophic error does not widen
    every image's draws of its landmark.

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
    least = max(int(min_images), 1)
    out = np.zeros((e.shape[1], 2, 2))
    for k in range(e.shape[1]):
        ok = np.isfinite(e[:, k]).all(1) & np.isfinite(s[:, k]).all((1, 2))
        if ok.sum() >= least:
            out[k] = _fit_trimmed(e[ok, k], s[ok, k], least)
    return out


def _mahalanobis2(jitter: np.ndarray, e: np.ndarray,
                  s: np.ndarray) -> np.ndarray:
    """(n,) ``e_i^T (S_i + J + ridge)^-1 e_i``."""
    c_inv = np.linalg.inv(s + jitter + _RIDGE * np.eye(2))
    return np.einsum('ic,icd,id->i', e, c_inv, e)


def _fit_trimmed(e: np.ndarray, s: np.ndarray,
                 min_images: int) -> np.ndarray:
    """:func:`_fit_one` on the residuals within :data:`OUTLIER_D2` of the
    fit, refitted until the kept set stops changing; never on fewer than
    ``min_images`` (the last fit on at least that many stands).

    It starts from the fit on every residual, so it only leaves out what
    is far even under a fit widened by it: with many images that is a
    catastrophic error (one image's share of the fit is small), with a
    handful nothing -- a few residuals cannot tell an outlier from a wide
    landmark, and a fit that keeps it errs wide, not narrow.
    """
    keep = np.ones(len(e), bool)
    jit = _fit_one(e, s)
    for _ in range(_TRIM_ROUNDS):
        kept = _mahalanobis2(jit, e, s) <= OUTLIER_D2
        if kept.sum() < min_images or (kept == keep).all():
            break
        keep = kept
        jit = _fit_one(e[keep], s[keep])
    return jit


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
