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

Positions are drawn at heatmap **pixel centres** (no jitter inside a
pixel): a one-hot map gives the same position in every draw, so its
interval has zero width; the heatmap's own resolution is the floor of what
it can express.

The coverage helpers compare intervals with true values: the fraction of
true values inside their 95 % intervals should be near 0.95 when the maps
are calibrated.
"""
from typing import Callable, Dict, Mapping, Optional, Sequence, Union

import numpy as np

from .cephalometric import (CEPH_CLASS_NAMES, CEPH_MEASUREMENT_UNITS,
                            ceph_measurements, classify_ceph)

__all__ = [
    'interval_coverage', 'sample_heatmap_positions',
    'sample_ceph_measurements', 'summarize_measurement_samples'
]

SeedLike = Union[None, int, np.random.Generator]


def sample_heatmap_positions(heatmaps: np.ndarray, num_samples: int,
                             seed: SeedLike = 0) -> np.ndarray:
    """Draws pixel positions from each probability map (inverse CDF).

    Args:
        heatmaps (np.ndarray): (K, H, W) non-negative maps; each is
            normalised to sum 1 (float64) before drawing.
        num_samples (int): Draws per map, N >= 1.
        seed (int | np.random.Generator | None): Seed of a
            ``np.random.default_rng`` (the same seed gives the same draws),
            or a generator to draw from.

    Returns:
        np.ndarray: (N, K, 2) float64 heatmap-pixel coordinates ``(u, v)``
        (column, row) of the drawn pixel centres.

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
    return np.stack([idx % w, idx // w], axis=-1).astype(np.float64)


def sample_ceph_measurements(
        heatmaps: np.ndarray,
        num_samples: int = 1000,
        seed: SeedLike = 0,
        heatmap_to_image: Optional[Callable[[np.ndarray],
                                            np.ndarray]] = None,
        spacing=None) -> Dict[str, np.ndarray]:
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

    Returns:
        dict[str, np.ndarray]: ``name -> (N,)`` float64 samples.

    Note:
        Shapes: heatmaps (19, H, W) -> positions (N, 19, 2) -> each
        measurement (N,). Landmarks are drawn independently (see the module
        docstring).
    """
    pos = sample_heatmap_positions(heatmaps, num_samples, seed)
    if heatmap_to_image is not None:
        pos = np.asarray(heatmap_to_image(pos), dtype=np.float64)
    return ceph_measurements(pos, spacing)


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
                      truth: Sequence[float]) -> Dict[str, float]:
    """How often true values fall inside their intervals (bounds included).

    Args:
        lower, upper, truth: (M,) arrays; entries where any of the three is
            NaN/None are left out.

    Returns:
        dict: ``coverage`` (fraction of the kept entries with
        ``lower <= truth <= upper``; NaN when none is kept), ``count`` (kept
        entries), ``mean_width`` (mean ``upper - lower``).
    """
    lo = np.asarray(lower, dtype=np.float64).reshape(-1)
    hi = np.asarray(upper, dtype=np.float64).reshape(-1)
    t = np.asarray(truth, dtype=np.float64).reshape(-1)
    if not lo.shape == hi.shape == t.shape:
        raise ValueError(f'lower, upper and truth must have one shape; got '
                         f'{lo.shape}, {hi.shape}, {t.shape}')
    keep = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(t)
    n = int(keep.sum())
    if n == 0:
        return dict(coverage=float('nan'), count=0,
                    mean_width=float('nan'))
    inside = (lo[keep] <= t[keep]) & (t[keep] <= hi[keep])
    return dict(coverage=float(inside.mean()), count=n,
                mean_width=float(np.mean(hi[keep] - lo[keep])))
