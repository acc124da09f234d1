# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Where the other landmarks say a landmark must be: a configuration model.

A heatmap's ERE measures how spread that landmark's own map is; it cannot
see a map that is sharp in the wrong place. The other landmarks can: the
configuration model holds the landmarks' mean shape after similarity
alignment and, per landmark, how far it strays from that shape once the
*other* landmarks fix the alignment.

Fit (:func:`fit_configuration_model`, on ground-truth shapes):

1. generalised Procrustes analysis: every shape (points in mm, or in image
   pixels without a spacing) is similarity-aligned (translation, rotation,
   isotropic scale; no reflection) to the mean of the aligned shapes until
   the mean stops moving; the mean is centred with unit Frobenius norm;
2. per landmark ``k`` and shape ``n``: the shape is aligned to the mean on
   every landmark *but* ``k`` and ``k``'s residual from the mean recorded
   (leave-one-out, so the residual says what the others predict for ``k``);
3. per landmark: the residuals' mean (``offset``, (2,)) and covariance
   (``cov``, (2, 2)), shrunk towards the isotropic variance pooled over all
   landmarks with the weight of :data:`PRIOR_SHAPES` shapes, so that a few
   training shapes (or collinear residuals) never give a singular or
   overconfident covariance.

Why per-landmark Gaussians after leave-one-out alignment rather than a joint
(2K x 2K) Gaussian conditioned on the others: the joint covariance needs
far more shapes than landmarks (2K = 74 dimensions for 37 hand landmarks,
trained from a few dozen images it is singular), and conditioning on the
others carries a wild neighbour's error straight into the landmark being
scored. Here the others only fix the alignment, and that alignment is
robust.

Score (:func:`plausibility_scores`, on one predicted configuration):

1. a robust alignment of the prediction to the mean: least median of
   squares over the similarities that every pair of landmarks defines,
   refined by iteratively reweighted Procrustes with Tukey's biweight on the
   normalised residuals -- one or two wild landmarks (under half of them)
   cannot drag it;
2. per landmark ``k``: the alignment repeated on the other landmarks with
   those weights (``k`` left out), ``k``'s residual from ``mean + offset``;
   the score is its Mahalanobis distance under ``cov`` (in sigma; for a
   Gaussian residual its square is chi-square with 2 degrees of freedom)
   and the residual's length mapped back to the prediction's units (mm).

Every score is invariant to a translation, rotation or scaling of the whole
configuration (tested). Missing landmarks (NaN rows) take no part and get
NaN scores; fewer than :data:`MIN_LANDMARKS` present gives NaN everywhere.

Note:
    - shapes: (N, K, 2) float, NaN rows = landmark missing in that shape
    - ``ConfigurationModel.mean``, ``.offset``: (K, 2) float64 in model
      units (the mean shape has unit Frobenius norm); ``.cov``: (K, 2, 2)
    - one configuration: (K, 2); scores: (K,)
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

__all__ = [
    'MIN_LANDMARKS', 'PRIOR_SHAPES', 'ConfigurationModel',
    'similarity_fit', 'generalized_procrustes', 'fit_configuration_model',
    'robust_alignment_weights', 'plausibility_scores', 'expected_positions'
]

#: The fewest landmarks that make a configuration: two fix a similarity,
#: a third is the first that can disagree with them.
MIN_LANDMARKS = 3
#: Weight, in shapes, of the pooled isotropic variance each landmark's
#: covariance is shrunk towards.
PRIOR_SHAPES = 2.0
#: Median of the distance of a 2-D standard normal point from its centre
#: (a Rayleigh variable): sqrt(2 ln 2).
RAYLEIGH_MEDIAN = float(np.sqrt(2 * np.log(2)))
#: Tukey biweight tuning constant (in units of a landmark's own sigma):
#: residuals beyond it get weight 0.
TUKEY_C = 4.685


@dataclass(frozen=True)
class ConfigurationModel:
    """A fitted configuration model (see the module docstring).

    Attributes:
        mean (np.ndarray): (K, 2) the aligned mean shape, centred, unit
            Frobenius norm.
        offset (np.ndarray): (K, 2) mean leave-one-out residual per
            landmark (model units).
        cov (np.ndarray): (K, 2, 2) shrunk covariance of those residuals.
        num_shapes (np.ndarray): (K,) shapes in which each landmark was
            present.
    """
    mean: np.ndarray
    offset: np.ndarray
    cov: np.ndarray
    num_shapes: np.ndarray

    @property
    def num_keypoints(self) -> int:
        return len(self.mean)

    @property
    def usable(self) -> np.ndarray:
        """(K,) bool: landmarks the model can score (finite parameters)."""
        return (np.isfinite(self.mean).all(1) & np.isfinite(self.offset).all(1)
                & np.isfinite(self.cov).all((1, 2)))


def _complex(points: np.ndarray) -> np.ndarray:
    return points[..., 0] + 1j * points[..., 1]


def _similarity_complex(src: np.ndarray, dst: np.ndarray,
                        weights: np.ndarray) -> Tuple[np.ndarray,
                                                      np.ndarray]:
    """Weighted least-squares similarity ``dst ~ a * src + b`` in complex
    form (``|a|`` the scale, ``arg a`` the rotation: a 2-D similarity
    without reflection is one complex multiplication), for a batch.

    Args:
        src, dst (np.ndarray): (..., K) complex points (NaN-free where the
            weight is positive).
        weights (np.ndarray): (..., K) non-negative.

    Returns:
        tuple: ``a``, ``b`` (...,) complex; ``a`` is 0 when the weighted
        source points coincide.
    """
    w = weights / weights.sum(-1, keepdims=True)
    src = np.where(w > 0, src, 0)
    dst = np.where(w > 0, dst, 0)
    mu_s = (w * src).sum(-1, keepdims=True)
    mu_d = (w * dst).sum(-1, keepdims=True)
    a_s, a_d = src - mu_s, dst - mu_d
    var = (w * np.abs(a_s)**2).sum(-1)
    cross = (w * a_d * np.conj(a_s)).sum(-1)
    a = np.where(var > 0, cross / np.where(var > 0, var, 1), 0)
    return a, mu_d[..., 0] - a * mu_s[..., 0]


def similarity_fit(src: np.ndarray, dst: np.ndarray,
                   weights: Optional[np.ndarray] = None
                   ) -> Tuple[float, np.ndarray, np.ndarray]:
    """Weighted least-squares similarity ``dst ~ s * src @ R.T + t``
    (rotation, isotropic scale, translation; no reflection).

    Args:
        src, dst (np.ndarray): (K, 2) corresponding points (finite).
        weights (np.ndarray, optional): (K,) non-negative; at least two
            positive.

    Returns:
        tuple: ``(s, R, t)``: scale (float, >= 0), rotation (2, 2),
        translation (2,).
    """
    src = np.asarray(src, np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(
        weights, np.float64)
    a, b = _similarity_complex(_complex(src),
                               _complex(np.asarray(dst, np.float64)), w)
    a, b = complex(a), complex(b)
    angle = np.angle(a)
    rot = np.array([[np.cos(angle), -np.sin(angle)],
                    [np.sin(angle), np.cos(angle)]])
    return abs(a), rot, np.array([b.real, b.imag])


def _apply(points: np.ndarray, scale: float, rot: np.ndarray,
           shift: np.ndarray) -> np.ndarray:
    return scale * points @ rot.T + shift


def _normalise(mean: np.ndarray) -> np.ndarray:
    """Centred (over present rows), unit Frobenius norm."""
    centred = mean - np.nanmean(mean, axis=0)
    return centred / np.sqrt(np.nansum(centred**2))


def generalized_procrustes(shapes: np.ndarray, max_iter: int = 100,
                           tol: float = 1e-12) -> Tuple[np.ndarray,
                                                         np.ndarray]:
    """Aligns shapes to their mean until the mean stops moving.

    Args:
        shapes (np.ndarray): (N, K, 2), NaN rows for missing landmarks;
            every shape needs ``MIN_LANDMARKS`` present ones.
        max_iter (int): Iterations at most.
        tol (float): Stop when the mean moves less (squared norm).

    Returns:
        tuple: the mean (K, 2) (centred, unit norm; NaN for a landmark no
        shape has) and the aligned shapes (N, K, 2).
    """
    shapes = np.asarray(shapes, np.float64)
    present = np.isfinite(shapes).all(-1)
    if (present.sum(1) < MIN_LANDMARKS).any():
        raise ValueError(f'every shape needs at least {MIN_LANDMARKS} '
                         'landmarks')
    # start from the most complete shape
    mean = _normalise(shapes[int(np.argmax(present.sum(1)))])
    aligned = shapes.copy()
    for _ in range(max_iter):
        for n, shape in enumerate(shapes):
            use = present[n] & np.isfinite(mean).all(-1)
            s, r, t = similarity_fit(shape[use], mean[use])
            aligned[n] = np.where(present[n][:, None],
                                  _apply(shape, s, r, t), np.nan)
        with np.errstate(invalid='ignore'):
            counts = present.sum(0)
            new = np.where(counts[:, None] > 0,
                           np.nansum(aligned, axis=0) /
                           np.maximum(counts, 1)[:, None], np.nan)
        new = _normalise(new)
        # keep the orientation of the first mean (the average of aligned
        # shapes may drift in rotation); re-align the new mean to the old
        use = np.isfinite(new).all(-1) & np.isfinite(mean).all(-1)
        s, r, t = similarity_fit(new[use], mean[use])
        new = _normalise(_apply(new, s, r, t))
        moved = float(np.nansum((new - mean)**2))
        mean = new
        if moved < tol:
            break
    return mean, aligned


def _leave_one_out_alignments(shape: np.ndarray, mean: np.ndarray,
                              weights: np.ndarray) -> Tuple[np.ndarray,
                                                            np.ndarray]:
    """Per landmark ``k``: the similarity ``z -> a z + b`` (complex) that
    aligns the shape to the mean on every landmark but ``k`` (with
    ``weights``); NaN where the others cannot fix one.

    Note:
        shape, mean: (K, 2), NaN rows missing; weights: (K,); returns
        ``a``, ``b``: (K,) complex
    """
    num = len(mean)
    present = np.isfinite(shape).all(-1) & np.isfinite(mean).all(-1)
    w = np.where(present, weights, 0.0)
    # row k: the weights without landmark k
    others = np.where(np.eye(num, dtype=bool), 0.0, w[None, :])
    enough = (others > 0).sum(1) >= 2
    others[~enough] = 1.0  # placeholder rows, voided below
    src = np.where(present, _complex(np.nan_to_num(shape)), 0)
    dst = np.where(present, _complex(np.nan_to_num(mean)), 0)
    a, b = _similarity_complex(np.broadcast_to(src, (num, num)),
                               np.broadcast_to(dst, (num, num)), others)
    ok = enough & (np.abs(a) > 0)
    return np.where(ok, a, np.nan), np.where(ok, b, np.nan)


def _leave_one_out_residuals(shape: np.ndarray, mean: np.ndarray,
                             weights: np.ndarray) -> Tuple[np.ndarray,
                                                           np.ndarray]:
    """Per landmark ``k``: ``k``'s residual from the mean after aligning the
    shape on the other landmarks (with ``weights``), and that alignment's
    scale. NaN where ``k`` is missing or the others cannot fix a
    similarity.

    Note:
        shape, mean: (K, 2); weights: (K,); returns (K, 2) and (K,)
    """
    a, b = _leave_one_out_alignments(shape, mean, weights)
    resid = a * _complex(shape) + b - _complex(mean)
    residual = np.stack([resid.real, resid.imag], -1)
    ok = np.isfinite(residual).all(-1)
    return (np.where(ok[:, None], residual, np.nan),
            np.where(ok, np.abs(a), np.nan))


def fit_configuration_model(shapes: np.ndarray) -> ConfigurationModel:
    """Fits the configuration model to ground-truth shapes.

    Args:
        shapes (np.ndarray): (N, K, 2) in mm (or image pixels), NaN rows for
            missing landmarks; N >= 2 shapes with at least
            ``MIN_LANDMARKS`` landmarks each.

    Returns:
        ConfigurationModel: landmarks present in fewer than 2 shapes get NaN
        parameters (:attr:`ConfigurationModel.usable` False).
    """
    shapes = np.asarray(shapes, np.float64)
    if shapes.ndim != 3 or shapes.shape[-1] != 2:
        raise ValueError(f'shapes must be (N, K, 2); got {shapes.shape}')
    if len(shapes) < 2:
        raise ValueError(f'a configuration model needs at least 2 shapes; '
                         f'got {len(shapes)}')
    mean, _ = generalized_procrustes(shapes)
    num_k = shapes.shape[1]
    residuals = np.stack([
        _leave_one_out_residuals(shape, mean, np.ones(num_k))[0]
        for shape in shapes
    ])  # (N, K, 2)
    have = np.isfinite(residuals).all(-1)  # (N, K)
    counts = have.sum(0)
    offset = np.full((num_k, 2), np.nan)
    raw = np.full((num_k, 2, 2), np.nan)
    for k in np.flatnonzero(counts >= 2):
        r = residuals[have[:, k], k]
        offset[k] = r.mean(0)
        d = r - offset[k]
        raw[k] = d.T @ d / (len(r) - 1)
    fitted = counts >= 2
    # pooled isotropic variance: the mean per-axis variance over landmarks
    pooled = float(np.mean([np.trace(c) / 2 for c in raw[fitted]])) \
        if fitted.any() else np.nan
    cov = np.full((num_k, 2, 2), np.nan)
    for k in np.flatnonzero(fitted):
        n = counts[k] - 1  # degrees of freedom of raw[k]
        cov[k] = (n * raw[k] + PRIOR_SHAPES * pooled * np.eye(2)) / (
            n + PRIOR_SHAPES)
    return ConfigurationModel(mean=mean, offset=offset, cov=cov,
                              num_shapes=counts.astype(np.int64))


def _sigma(model: ConfigurationModel) -> np.ndarray:
    """(K,) each landmark's own sigma: sqrt of the mean eigenvalue of its
    covariance."""
    return np.sqrt(np.trace(model.cov, axis1=1, axis2=2) / 2)


def robust_alignment_weights(points: np.ndarray, model: ConfigurationModel,
                             num_iter: int = 10) -> np.ndarray:
    """(K,) weights in [0, 1] of a robust alignment of ``points`` to the
    model (0 for a missing or unmodelled landmark, and for an outlier).

    Least median of squares over the similarities each pair of usable
    landmarks defines (all pairs: K = 37 gives 666), then ``num_iter``
    rounds of Procrustes reweighted by Tukey's biweight of the normalised
    residuals (scale: their median over :data:`RAYLEIGH_MEDIAN`, the
    median distance of a 2-D standard normal point from its centre, so
    that a well-modelled fit has scale 1; at least 1, so that a good fit is
    not over-trimmed).
    """
    points = np.asarray(points, np.float64)
    use = np.isfinite(points).all(-1) & model.usable
    idx = np.flatnonzero(use)
    weights = np.zeros(len(points))
    if len(idx) < MIN_LANDMARKS:
        return weights
    src = _complex(points[idx])
    dst = _complex(model.mean[idx])
    expected = _complex(model.offset[idx])
    sigma = _sigma(model)[idx]
    first, second = np.triu_indices(len(idx), 1)
    ds, dd = src[second] - src[first], dst[second] - dst[first]
    keep = np.abs(ds) > 0
    a = dd[keep] / ds[keep]
    b = dst[first][keep] - a * src[first][keep]
    if not len(a):
        return weights
    z = np.abs(a[:, None] * src[None] + b[:, None] - dst[None] -
               expected[None]) / sigma[None]  # (pairs, n)
    best = int(np.argmin(np.median(z, axis=1)))
    a, b = a[best], b[best]
    w = np.ones(len(idx))
    for _ in range(num_iter):
        z = np.abs(a * src + b - dst - expected) / sigma
        spread = max(float(np.median(z)) / RAYLEIGH_MEDIAN, 1.0)
        u = z / (TUKEY_C * spread)
        new = np.where(u < 1, (1 - u**2)**2, 0.0)
        if (new > 0).sum() < 2:
            break
        w = new
        a, b = _similarity_complex(src, dst, w)
        a, b = complex(a), complex(b)
    weights[idx] = w
    return weights


def plausibility_scores(points: np.ndarray, model: ConfigurationModel
                        ) -> Tuple[np.ndarray, np.ndarray]:
    """Each landmark's distance from where the others place it.

    Args:
        points (np.ndarray): (K, 2) one predicted configuration in the
            model's units (mm, or image pixels for a model fitted in
            pixels), NaN rows for missing landmarks.
        model (ConfigurationModel): The fitted model.

    Returns:
        tuple: ``sigma`` (K,): the Mahalanobis distance of each landmark's
        leave-one-out residual under its covariance; ``distance`` (K,): the
        residual's length in ``points``' units. NaN for a missing or
        unmodelled landmark, or when fewer than ``MIN_LANDMARKS`` remain.
    """
    points = np.asarray(points, np.float64)
    if points.shape != model.mean.shape:
        raise ValueError(f'points must be {model.mean.shape}; got '
                         f'{points.shape}')
    num = len(points)
    sigma = np.full(num, np.nan)
    distance = np.full(num, np.nan)
    weights = robust_alignment_weights(points, model)
    if (weights > 0).sum() < 2:
        return sigma, distance
    use = np.isfinite(points).all(-1) & model.usable
    # the usable landmarks, each scored with itself left out of the
    # alignment (a landmark with weight 0 keeps the others' alignment)
    mean = np.where(model.usable[:, None], model.mean, np.nan)
    resid, scale = _leave_one_out_residuals(
        np.where(use[:, None], points, np.nan), mean, weights)
    resid = resid - model.offset
    ok = use & np.isfinite(resid).all(-1)
    for k in np.flatnonzero(ok):
        sigma[k] = float(np.sqrt(resid[k] @ np.linalg.solve(
            model.cov[k], resid[k])))
        distance[k] = float(np.sqrt(resid[k] @ resid[k])) / scale[k]
    return sigma, distance


def expected_positions(points: np.ndarray, model: ConfigurationModel
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """Where the other landmarks place each landmark, in ``points``' units.

    The robust weights of :func:`robust_alignment_weights`; per landmark
    ``k``, the similarity fitted on the others maps the model's expected
    position (``mean + offset``) and covariance back into ``points``'
    frame: the Gaussian a plausibility-constrained decode multiplies the
    heatmap by. A missing landmark gets one too (the others place it).

    Args:
        points (np.ndarray): (K, 2), NaN rows for missing landmarks.
        model (ConfigurationModel): The fitted model.

    Returns:
        tuple: ``center`` (K, 2) and ``cov`` (K, 2, 2); NaN where the
        landmark is unmodelled or the others cannot fix an alignment.
    """
    points = np.asarray(points, np.float64)
    num = len(points)
    center = np.full((num, 2), np.nan)
    cov = np.full((num, 2, 2), np.nan)
    weights = robust_alignment_weights(points, model)
    if (weights > 0).sum() < 2:
        return center, cov
    mean = np.where(model.usable[:, None], model.mean, np.nan)
    a, b = _leave_one_out_alignments(points, mean, weights)
    expected = _complex(model.mean + model.offset)
    z = (expected - b) / a
    ok = model.usable & np.isfinite(z)
    center[ok] = np.stack([z.real, z.imag], -1)[ok]
    for k in np.flatnonzero(ok):
        angle = -np.angle(a[k])  # the inverse rotation
        rot = np.array([[np.cos(angle), -np.sin(angle)],
                        [np.sin(angle), np.cos(angle)]])
        cov[k] = rot @ model.cov[k] @ rot.T / abs(a[k])**2
    return center, cov
