# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""From calibrated landmark heatmaps to measurement uncertainty, by sampling.

Each landmark's calibrated heatmap is a probability distribution over its
position. Drawing ``N`` positions per landmark and computing a measurement
(an angle, a ratio, a distance) on every draw gives ``N`` samples of that
measurement, whose spread is the landmark uncertainty carried through the
measurement's geometry, however non-linear it is. From them: mean, standard
deviation, the central 95 % interval and the probability of each clinical
class (the fraction of draws that fall in it).

Assumption: landmarks are drawn **independently** of each other, i.e. the
joint distribution is taken as the product of the per-landmark heatmaps.
The network gives one marginal map per landmark and nothing about how their
errors co-vary; errors that move several landmarks together (a whole face
predicted slightly shifted) change an angle less than independent errors of
the same size, so intervals from correlated errors would be narrower than
these, and errors that are anti-correlated along a measurement would give
wider ones.

Positions are drawn at heatmap **pixel centres** by default: a one-hot
map gives the same position in every draw, so its interval has zero width.
With ``within_pixel=True`` each draw is also placed uniformly inside its
pixel -- the map read as a density constant over each pixel's square, which
is what a probability per pixel says -- so no interval is narrower than the
heatmap's resolution (the same pixels are drawn either way, for one seed).
``benchmarks/measurement_scores.py`` measures what either does to the
fitted measurement intervals.

The coverage helpers compare intervals with true values: the fraction of
true values inside their 95 % intervals should be near 0.95 when the maps
are calibrated.
"""
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .bootstrap import BootstrapOptions, bootstrap_mean
from .cephalometric import (CEPH_CLASS_NAMES, CEPH_MEASUREMENT_UNITS,
                            ceph_measurements, classify_ceph)

__all__ = [
    'interval_coverage', 'interval_scores', 'sample_center_spread',
    'sample_heatmap_positions', 'sample_ceph_measurements',
    'sample_region_positions',
    'scaled_intervals',
    'summarize_measurement_samples', 'truncate_heatmaps'
]

SeedLike = Union[None, int, np.random.Generator]

#: Median absolute deviation of a unit normal is 1 / 1.4826: the factor
#: that makes a MAD the std of a normal with that MAD.
_STD_PER_MAD = 1.482602218505602


def sample_heatmap_positions(heatmaps: np.ndarray, num_samples: int,
                             seed: SeedLike = 0,
                             within_pixel: bool = False) -> np.ndarray:
    """Draws pixel positions from each probability map (inverse CDF).

    Args:
        heatmaps (np.ndarray): (K, H, W) non-negative maps; each is
            normalised to sum 1 (float64) before drawing.
        num_samples (int): Draws per map, N >= 1.
        seed (int | np.random.Generator | None): Seed of a
            ``np.random.default_rng`` (the same seed gives the same draws),
            or a generator to draw from.
        within_pixel (bool): Add to each drawn pixel centre an offset
            uniform in ``[-0.5, 0.5)`` along each axis (drawn after every
            pixel, so the pixels drawn are those of ``False``).

    Returns:
        np.ndarray: (N, K, 2) float64 heatmap-pixel coordinates ``(u, v)``
        (column, row) of the drawn pixel centres, or of points inside the
        drawn pixels.

    Raises:
        ValueError: On a map that is not finite, has a negative value or
            sums to 0 (its landmark has no distribution to draw from).

    Note:
        All K maps are drawn at once: the K cumulative sums are laid end to
        end with map k shifted by k, so one ``np.searchsorted`` of
        ``u + k`` (``u`` uniform in [0, 1)) inverts every CDF. With
        ``side='right'`` a pixel of probability 0 is never drawn.
    """
    hm = np.asarray(heatmaps, dtype=np.float64)
    if hm.ndim != 3:
        raise ValueError(f'heatmaps must be (K, H, W); got {hm.shape}')
    if int(num_samples) < 1:
        raise ValueError(f'num_samples must be >= 1; got {num_samples}')
    k, h, w = hm.shape
    flat = hm.reshape(k, h * w)
    total = flat.sum(axis=1)
    bad = ~(np.isfinite(flat).all(axis=1) & (flat >= 0).all(axis=1)
            & (total > 0))
    if bad.any():
        raise ValueError('heatmaps must be finite, non-negative and not all '
                         f'zero; map(s) {np.flatnonzero(bad).tolist()} '
                         'are not')
    cdf = np.cumsum(flat / total[:, None], axis=1)
    cdf[:, -1] = 1.0  # rounding must not leave a gap above the last pixel
    rng = seed if isinstance(seed, np.random.Generator) else \
        np.random.default_rng(seed)
    u = rng.random((int(num_samples), k))
    offset = np.arange(k, dtype=np.float64)
    idx = np.searchsorted((cdf + offset[:, None]).ravel(), u + offset,
                          side='right')
    idx = np.minimum(idx - np.arange(k) * (h * w), h * w - 1)
    pos = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
    if within_pixel:
        pos += rng.random(pos.shape) - 0.5
    return pos


def truncate_heatmaps(heatmaps: np.ndarray,
                      masks: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Each map restricted to its region (e.g. its conformal region) and
    renormalised: the distribution of the landmark given that it lies in
    the region.

    Args:
        heatmaps (np.ndarray): (K, H, W) finite, non-negative maps.
        masks (np.ndarray): (K, H, W) bool, True inside the region.

    Returns:
        tuple:
        - maps (np.ndarray): (K, H, W) float64, ``heatmap * mask / (mass of
          the heatmap inside the mask)``; all zeros where that mass is 0.
        - has_mass (np.ndarray): (K,) bool, False for a map with no mass in
          its region (an empty region, or one on pixels of probability 0):
          nothing can be drawn from it.

    Raises:
        ValueError: On shapes that differ, or a map that is not finite or
            has a negative value.

    Note:
        Shapes: (K, H, W) in, (K, H, W) and (K,) out. The mass inside is
        summed in float64.
    """
    hm = np.asarray(heatmaps, dtype=np.float64)
    mask = np.asarray(masks)
    if hm.ndim != 3 or mask.shape != hm.shape:
        raise ValueError(f'heatmaps and masks must both be (K, H, W); got '
                         f'{hm.shape} and {mask.shape}')
    if mask.dtype != np.bool_:
        raise ValueError(f'masks must be boolean; got {mask.dtype}')
    bad = ~(np.isfinite(hm).all(axis=(1, 2)) & (hm >= 0).all(axis=(1, 2)))
    if bad.any():
        raise ValueError('heatmaps must be finite and non-negative; map(s) '
                         f'{np.flatnonzero(bad).tolist()} are not')
    inside = np.where(mask, hm, 0.0)
    mass = inside.sum(axis=(1, 2))
    has_mass = mass > 0
    out = np.zeros_like(inside)
    out[has_mass] = inside[has_mass] / mass[has_mass, None, None]
    return out, has_mass


def sample_ceph_measurements(
        heatmaps: np.ndarray,
        num_samples: int = 1000,
        seed: SeedLike = 0,
        heatmap_to_image: Optional[Callable[[np.ndarray],
                                            np.ndarray]] = None,
        spacing=None,
        masks: Optional[np.ndarray] = None,
        within_pixel: bool = False) -> Dict[str, np.ndarray]:
    """Samples of the eight ISBI measurements from 19 landmark heatmaps.

    Args:
        heatmaps (np.ndarray): (19, H, W) probability maps in the ISBI
            landmark order.
        num_samples (int): Draws N.
        seed: As in :func:`sample_heatmap_positions`.
        heatmap_to_image (callable, optional): Maps (..., 2) heatmap-pixel
            coordinates to image pixels (e.g.
            :meth:`mmchh.apis.LandmarkResult.heatmap_to_image`); identity
            when None.
        spacing: mm per image pixel (None, a number or (x, y)); without it
            MW is NaN (see :func:`ceph_measurements`).
        masks (np.ndarray, optional): (19, H, W) bool regions: each
            landmark is drawn from its map restricted to its region
            (:func:`truncate_heatmaps`); a landmark whose region holds no
            mass has no position (NaN), and every measurement that uses it
            is NaN in every draw.
        within_pixel (bool): Draw points inside the drawn pixels (see
            :func:`sample_heatmap_positions`).

    Returns:
        dict[str, np.ndarray]: ``name -> (N,)`` float64 samples.

    Note:
        Shapes: heatmaps (19, H, W) -> positions (N, 19, 2) -> each
        measurement (N,). Landmarks are drawn independently (see the module
        docstring).
    """
    pos = sample_region_positions(heatmaps, num_samples, seed, masks,
                                  within_pixel=within_pixel)
    if heatmap_to_image is not None:
        pos = np.asarray(heatmap_to_image(pos), dtype=np.float64)
    return ceph_measurements(pos, spacing)


def sample_region_positions(heatmaps: np.ndarray,
                            num_samples: int,
                            seed: SeedLike = 0,
                            masks: Optional[np.ndarray] = None,
                            within_pixel: bool = False) -> np.ndarray:
    """Draws from each map, restricted to its region when ``masks`` is given.

    Args:
        heatmaps (np.ndarray): (K, H, W) probability maps.
        num_samples (int): Draws N.
        seed: As in :func:`sample_heatmap_positions`.
        masks (np.ndarray, optional): (K, H, W) bool regions (see
            :func:`truncate_heatmaps`); a landmark whose region holds no
            mass is NaN in every draw.
        within_pixel (bool): See :func:`sample_heatmap_positions`.

    Returns:
        np.ndarray: (N, K, 2) float64 heatmap-pixel positions ``(u, v)``.
    """
    empty = None
    if masks is not None:
        heatmaps, has_mass = truncate_heatmaps(heatmaps, masks)
        empty = ~has_mass
        # a point mass keeps the draw going (the same uniforms for every
        # landmark); its positions are voided below
        heatmaps[empty, 0, 0] = 1.0
    pos = sample_heatmap_positions(heatmaps, num_samples, seed,
                                   within_pixel=within_pixel)
    if empty is not None and empty.any():
        pos[:, empty] = np.nan
    return pos


def summarize_measurement_samples(
        samples: Mapping[str, np.ndarray],
        point_values: Optional[Mapping[str, float]] = None
) -> Dict[str, dict]:
    """Per-measurement statistics of sampled values.

    Args:
        samples (Mapping[str, np.ndarray]): ``name -> (N,)`` samples (from
            :func:`sample_ceph_measurements`).
        point_values (Mapping[str, float], optional): The measurement from
            the point estimate of the landmarks, reported as ``value``.

    Returns:
        dict[str, dict]: per name, JSON-ready: ``value`` (point estimate, or
        None), ``value_class`` (class of ``value``), ``mean``, ``std``
        (population std of the samples), ``ci95`` ([2.5 %, 97.5 %]
        quantiles, linear interpolation), ``most_likely_class``,
        ``class_probabilities`` ({code (str): fraction of samples}),
        ``class_names``, ``unit`` and ``num_valid`` (finite samples; a
        sample where a defining line has zero length is NaN and left out).
        Everything but ``unit``/``class_names`` is None when no sample is
        finite (e.g. MW without spacing).
    """
    out = {}
    for name, s in samples.items():
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        finite = s[np.isfinite(s)]
        value = None if point_values is None else point_values.get(name)
        value = None if value is None or not np.isfinite(value) else float(
            value)
        entry = dict(
            value=value,
            value_class=None if value is None else int(
                classify_ceph(name, value)),
            unit=CEPH_MEASUREMENT_UNITS.get(name),
            num_valid=int(finite.size),
            class_names={str(c): n
                         for c, n in CEPH_CLASS_NAMES[name].items()})
        if finite.size == 0:
            entry.update(mean=None, std=None, ci95=None,
                         most_likely_class=None, class_probabilities=None)
        else:
            lo, hi = np.quantile(finite, [0.025, 0.975])
            codes = classify_ceph(name, finite)
            probs = {
                str(c): float(np.mean(codes == c))
                for c in CEPH_CLASS_NAMES[name]
            }
            # ties go to the lower code (class 1, normal, first)
            best = max(CEPH_CLASS_NAMES[name], key=lambda c: (probs[str(c)],
                                                            -c))
            entry.update(
                mean=float(finite.mean()),
                std=float(finite.std()),
                ci95=[float(lo), float(hi)],
                most_likely_class=int(best),
                class_probabilities=probs)
        out[name] = entry
    return out


def interval_coverage(lower: Sequence[float], upper: Sequence[float],
                      truth: Sequence[float],
                      num_resamples: int = 0,
                      level: float = 0.95,
                      seed: int = 0) -> Dict[str, float]:
    """How often true values fall inside their intervals (bounds included).

    Args:
        lower, upper, truth: (M,) arrays, one entry per image; entries
            where any of the three is NaN/None are left out.
        num_resamples (int): With a value > 0, also the image-bootstrap
            interval of the coverage (:func:`~.bootstrap.bootstrap_mean`,
            each entry one image). Default 0: none.
        level (float): That interval's nominal coverage.
        seed (int): Its seed.

    Returns:
        dict: ``coverage`` (fraction of the kept entries with
        ``lower <= truth <= upper``; NaN when none is kept), ``count`` (kept
        entries), ``mean_width`` (mean ``upper - lower``); with
        ``num_resamples``, ``coverage_low`` / ``coverage_high`` (NaN with
        fewer than 2 kept entries).
    """
    lo = np.asarray(lower, dtype=np.float64).reshape(-1)
    hi = np.asarray(upper, dtype=np.float64).reshape(-1)
    t = np.asarray(truth, dtype=np.float64).reshape(-1)
    if not lo.shape == hi.shape == t.shape:
        raise ValueError(f'lower, upper and truth must have one shape; got '
                         f'{lo.shape}, {hi.shape}, {t.shape}')
    keep = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(t)
    n = int(keep.sum())
    nan = float('nan')
    out = dict(coverage=nan, count=n, mean_width=nan)
    inside = np.zeros(keep.shape)
    if n:
        inside[keep] = (lo[keep] <= t[keep]) & (t[keep] <= hi[keep])
        out.update(coverage=float(inside[keep].mean()),
                   mean_width=float(np.mean(hi[keep] - lo[keep])))
    if num_resamples:
        interval = bootstrap_mean(
            inside, valid=keep,
            options=BootstrapOptions(num_resamples=num_resamples,
                                     level=level, seed=seed)) if n else None
        out.update(coverage_low=interval.low if n else nan,
                   coverage_high=interval.high if n else nan)
    return out


def interval_scores(center, spread, truth) -> np.ndarray:
    """Normalised residuals ``|truth - center| / spread``: the score a
    scaled interval ``center +- q * spread`` is fitted on (it holds the
    true value exactly when the score is ``<= q``).

    Args:
        center, spread, truth: Arrays of one shape (...); ``spread >= 0``.

    Returns:
        np.ndarray: (...) float64 scores; where ``spread`` is 0: 0 when
        ``truth == center``, else ``inf`` (no scale covers it); NaN where
        any input is NaN/inf or ``spread`` is negative (no interval).
    """
    c, s, t = _same_shape(center, spread, truth)
    ok = np.isfinite(c) & np.isfinite(s) & np.isfinite(t) & (s >= 0)
    dev = np.abs(t - c)
    with np.errstate(divide='ignore', invalid='ignore'):
        out = np.where(s > 0, dev / np.where(s > 0, s, 1.0),
                       np.where(dev == 0, 0.0, np.inf))
    return np.where(ok, out, np.nan)


def scaled_intervals(center, spread,
                     scale: float) -> Tuple[np.ndarray, np.ndarray]:
    """The intervals ``[center - scale * spread, center + scale * spread]``.

    Args:
        center, spread: (...) arrays of one shape, ``spread >= 0``.
        scale (float): ``q >= 0`` (e.g. fitted by
            :func:`mmchh.calibration.fit_measurement_intervals`); ``inf`` gives
            ``(-inf, inf)`` where ``spread > 0`` (too few calibration
            scores for the level: the interval is everything).

    Returns:
        tuple: ``(low, high)``, (...) float64; NaN where ``center`` or
        ``spread`` is not finite or ``spread`` is negative. A zero
        ``spread`` gives ``[center, center]`` whatever the scale.
    """
    q = float(scale)
    if not q >= 0:  # NaN too
        raise ValueError(f'scale must be >= 0 (or inf); got {scale}')
    c, s = _same_shape(center, spread)
    ok = np.isfinite(c) & np.isfinite(s) & (s >= 0)
    with np.errstate(invalid='ignore'):
        half = np.where(s > 0, q * s, 0.0)
    return (np.where(ok, c - half, np.nan), np.where(ok, c + half, np.nan))


def sample_center_spread(
        samples: Mapping[str, np.ndarray]) -> Dict[str, Tuple[float, float]]:
    """The center (median) and spread (median absolute deviation from it
    times 1.4826, the std of a normal with that MAD) of each measurement's
    draws: what a scaled interval is built on. Both ignore up to half of
    the draws: a minority mode (a landmark whose region also holds a far
    second peak, e.g. an uncertain nasion that swings ANB by tens of
    degrees in a third of the draws) moves neither, where it inflates the
    std and, from a quarter of the draws on, the interquartile range; a
    spread of 0 (half the draws or more on one value, e.g. near one-hot
    maps) makes the interval a point.

    Args:
        samples (Mapping[str, np.ndarray]): ``name -> (N,)`` draws (from
            :func:`sample_ceph_measurements`); NaN draws are left out.

    Returns:
        dict[str, tuple[float, float]]: ``name -> (center, spread)``;
        ``(nan, nan)`` when no draw is finite.
    """
    out = {}
    for name, s in samples.items():
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        finite = s[np.isfinite(s)]
        if not finite.size:
            out[name] = (float('nan'), float('nan'))
            continue
        center = np.median(finite)
        out[name] = (float(center), float(
            _STD_PER_MAD * np.median(np.abs(finite - center))))
    return out


def _same_shape(*arrays) -> Tuple[np.ndarray, ...]:
    out = tuple(np.asarray(a, dtype=np.float64) for a in arrays)
    if len({a.shape for a in out}) != 1:
        raise ValueError('arrays must have one shape; got '
                         f'{[a.shape for a in out]}')
    return out
