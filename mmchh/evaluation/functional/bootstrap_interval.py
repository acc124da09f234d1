# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What an image bootstrap reports and how it reads its interval, numpy.

:class:`BootstrapOptions` holds the settings every bootstrap of
:mod:`.bootstrap` and :mod:`.bootstrap_weighted` shares (resamples, level,
seed, failure tolerance, interval method); :func:`percentile_interval`
reads a :class:`BootstrapInterval` off the resampled statistics by those
options, and :func:`no_interval` is the result where there are too few
images for one. The resampling itself is :mod:`.bootstrap`'s.
"""
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

METHODS = ('expanded', 'percentile')


@dataclass(frozen=True)
class BootstrapInterval:
    """A bootstrap estimate with its confidence interval.

    Attributes:
        estimate (float): The statistic on the original data (for a paired
            bootstrap: the difference ``b - a``).
        low (float): Lower end of the interval; NaN when there is none.
        high (float): Upper end of the interval; NaN when there is none.
        level (float): Nominal coverage, e.g. 0.95.
        num_resamples (int): Resamples drawn (R), failed ones included.
        num_images (int): Images resampled (N).
        num_failed (int): Resamples where the statistic was not finite;
            they are dropped from the interval.
        method (str): ``'expanded'`` or ``'percentile'`` (see
            :class:`BootstrapOptions`).
        reason (str): Why the interval (or estimate) is NaN; ``''`` if not.
        estimate_a (float): Paired only: statistic a on the original data.
        estimate_b (float): Paired only: statistic b on the original data.
        prob_positive (float): Paired only: fraction of the valid resamples
            where ``b - a > 0``.
    """
    estimate: float
    low: float
    high: float
    level: float
    num_resamples: int
    num_images: int
    num_failed: int
    method: str = 'expanded'
    reason: str = ''
    estimate_a: float = float('nan')
    estimate_b: float = float('nan')
    prob_positive: float = float('nan')

    def as_dict(self) -> dict:
        """Plain-python dict (JSON-ready; NaN stays float('nan'))."""
        return asdict(self)


def positive_int(value, name: str) -> int:
    """A positive int or a ValueError naming the argument."""
    if isinstance(value, (bool, np.bool_)) or int(value) != value or \
            value < 1:
        raise ValueError(f'{name} must be a positive integer; got {value!r}')
    return int(value)


def check_options(num_resamples, level, max_failed_fraction,
                  method) -> None:
    """ValueError for a bad R, level, failure tolerance or method."""
    if method not in METHODS:
        raise ValueError(f'method must be one of {METHODS}; got {method!r}')
    positive_int(num_resamples, 'num_resamples')
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f'level must be in (0, 1); got {level!r}')
    if not 0.0 <= float(max_failed_fraction) <= 1.0:
        raise ValueError('max_failed_fraction must be in [0, 1]; got '
                         f'{max_failed_fraction!r}')


@dataclass(frozen=True)
class BootstrapOptions:
    """How an image-bootstrap interval is drawn and read off.

    Checked when made (a ValueError naming the bad setting), so every
    function taking one can rely on it.

    Attributes:
        num_resamples (int): Resamples R (>= 1). Default 1000.
        level (float): Nominal coverage in (0, 1). Default 0.95.
        seed (int): Seed of :func:`bootstrap_indices`. Default 0.
        max_failed_fraction (float): Largest fraction of failed resamples
            still giving an interval, in [0, 1]. Default 0.1.
        method (str): ``'expanded'`` (default): the expanded percentile
            interval (Hesterberg 2015), the quantiles ``a`` and ``1 - a``
            with ``a = Phi(-sqrt(N / (N - 1)) t_{N-1}((1 + level) / 2))``,
            N images, which undoes the plain percentile interval's
            under-coverage with few images; ``'percentile'``: the
            ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles.
    """
    num_resamples: int = 1000
    level: float = 0.95
    seed: int = 0
    max_failed_fraction: float = 0.1
    method: str = 'expanded'

    def __post_init__(self):
        check_options(self.num_resamples, self.level,
                      self.max_failed_fraction, self.method)


#: The options of a call that gives none.
DEFAULT_OPTIONS = BootstrapOptions()


def no_interval(estimate: float,
                options: BootstrapOptions,
                num_images: int,
                est_a: float = float('nan'),
                est_b: float = float('nan')) -> BootstrapInterval:
    """The result for fewer than 2 images: no interval, with the reason."""
    return BootstrapInterval(
        estimate=float(estimate), low=float('nan'), high=float('nan'),
        level=float(options.level),
        num_resamples=int(options.num_resamples),
        num_images=int(num_images), num_failed=0, method=options.method,
        reason=f'no interval from {num_images} image(s); need at least 2',
        estimate_a=float(est_a), estimate_b=float(est_b))


def _tail(level: float, num_images: int, method: str) -> float:
    """Lower quantile of the interval (the upper one is 1 - it)."""
    alpha = (1.0 - level) / 2.0
    if method == 'percentile':
        return alpha
    from scipy import stats
    n = num_images
    t = stats.t.ppf(1.0 - alpha, n - 1)
    return float(stats.norm.cdf(-np.sqrt(n / (n - 1)) * t))


def percentile_interval(estimate: float,
                        samples: np.ndarray,
                        options: BootstrapOptions,
                        num_images: int,
                        est_a: Optional[float] = None,
                        est_b: Optional[float] = None) -> BootstrapInterval:
    """Interval from the resampled statistics ``samples`` (R,), failures
    (non-finite) dropped; see :class:`BootstrapOptions` for the level, the
    failure tolerance and the method. With ``est_a`` / ``est_b``: a paired
    result."""
    level, method = options.level, options.method
    max_failed_fraction = options.max_failed_fraction
    samples = np.asarray(samples, dtype=np.float64).reshape(-1)
    ok = np.isfinite(samples)
    num_failed = int(samples.size - ok.sum())
    paired = est_a is not None
    low = high = prob = float('nan')
    reasons = []
    if not np.isfinite(estimate):
        reasons.append('statistic undefined on the original data')
    if num_failed > max_failed_fraction * samples.size or not ok.any():
        reasons.append(f'{num_failed} of {samples.size} resamples undefined '
                       f'(more than {max_failed_fraction:g} of them)')
    if not reasons:
        alpha = _tail(level, num_images, method)
        low, high = (float(q) for q in np.quantile(samples[ok],
                                                   [alpha, 1.0 - alpha]))
    if paired and ok.any():
        prob = float(np.mean(samples[ok] > 0))
    return BootstrapInterval(
        estimate=float(estimate), low=low, high=high, level=float(level),
        num_resamples=int(samples.size), num_images=int(num_images),
        num_failed=num_failed, method=method, reason='; '.join(reasons),
        estimate_a=float(est_a) if paired else float('nan'),
        estimate_b=float(est_b) if paired else float('nan'),
        prob_positive=prob)
