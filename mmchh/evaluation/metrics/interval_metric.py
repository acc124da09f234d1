# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The bootstrap-interval settings of a metric, read in one place.

:class:`~.UncertaintyMetric` and :class:`~.CephalometricMetric` report
image-bootstrap intervals of their values; both take ``ci_level``,
``ci_resamples`` and ``ci_seed`` through :class:`IntervalMetric`, so they
accept the same values, name a bad one the same way and draw every
interval with one
:class:`~mmchh.evaluation.functional.bootstrap_interval.BootstrapOptions`.
"""
from typing import Optional

from mmengine.evaluator import BaseMetric

from ..functional.bootstrap_interval import BootstrapOptions

__all__ = ['IntervalMetric', 'ci_options']


def ci_options(level,
               resamples,
               seed,
               metric: str = 'UncertaintyMetric') -> tuple:
    """``(ci_level, ci_resamples, ci_seed)`` of a metric's bootstrap
    intervals, checked.

    Args:
        level (float): ``ci_level``, in (0, 1).
        resamples (int): ``ci_resamples``, >= 0 (0: no intervals).
        seed (int): ``ci_seed``, an integer.
        metric (str): The metric's name, which starts an error message.

    Returns:
        tuple: ``(float level, int resamples, int seed)``.

    Raises:
        ValueError: ``'<metric>: ci_<argument> ...'`` for a bad value.
    """
    if isinstance(resamples, bool) or int(resamples) != resamples or \
            resamples < 0:
        raise ValueError(f'{metric}: ci_resamples must be an integer '
                         f'>= 0 (0: no intervals); got {resamples!r}')
    if int(seed) != seed:
        raise ValueError(f'{metric}: ci_seed must be an integer; '
                         f'got {seed!r}')
    try:
        # the level is checked as the bootstrap will read it; 0 resamples
        # (no intervals) is the metric's own setting, not the bootstrap's
        BootstrapOptions(num_resamples=max(int(resamples), 1), level=level)
    except ValueError as e:
        raise ValueError(f'{metric}: ci_{e}') from None
    return float(level), int(resamples), int(seed)


class IntervalMetric(BaseMetric):
    """A metric that reports image-bootstrap intervals of its values.

    Args:
        ci_level (float): Nominal coverage of the intervals. Defaults to
            0.95.
        ci_resamples (int): Bootstrap resamples; 0 reports no interval.
            Defaults to 1000.
        ci_seed (int): Seed of the resampling. Defaults to 0.
        collect_device (str): 'cpu' or 'gpu'.
        prefix (str, optional): Metric name prefix; None: the class's
            ``default_prefix``.

    Raises:
        ValueError: A bad ``ci_*`` value, named with the metric's class.
    """

    def __init__(self,
                 ci_level: float = 0.95,
                 ci_resamples: int = 1000,
                 ci_seed: int = 0,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ci_level, self.ci_resamples, self.ci_seed = ci_options(
            ci_level, ci_resamples, ci_seed, type(self).__name__)

    def bootstrap_options(self) -> BootstrapOptions:
        """The options of every interval this metric draws (only with
        ``ci_resamples`` > 0: 0 is no interval, not a bootstrap setting)."""
        return BootstrapOptions(num_resamples=self.ci_resamples,
                                level=self.ci_level, seed=self.ci_seed)
