# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""A step learning-rate schedule whose milestones follow the run's length.

MMEngine's ``MultiStepLR`` takes its milestones in epochs, so a config that
trains longer (``--cfg-options train_cfg.max_epochs=20``, a derived config,
``tools/landmark_config.py --epochs``) keeps the base's milestones and
spends the rest of the run at the last, tiny rate. ``FractionMultiStepLR``
takes them as fractions of the schedule's span instead: the Runner sets a
scheduler's ``end`` to the run's ``max_epochs`` when the config leaves it
out, and the milestones are computed from it when the Runner builds the
scheduler, after every override.
"""
import math
from typing import List, Sequence

from mmengine.optim.scheduler import MultiStepLR
from mmengine.optim.scheduler.param_scheduler import INF
from mmengine.registry import PARAM_SCHEDULERS

__all__ = ['FractionMultiStepLR', 'fraction_milestones']


def fraction_milestones(fractions: Sequence[float], begin: int,
                        end: int) -> List[int]:
    """Milestones at ``fractions`` of ``[begin, end)``, rounded to the
    nearest step and at least one step after ``begin`` (a milestone at
    ``begin`` would lower the rate before the first step).

    Raises:
        ValueError: for a span that is not finite and positive, or a
            fraction outside (0, 1] or out of increasing order.
    """
    if not math.isfinite(end) or end >= INF or not end > begin:
        raise ValueError(
            f'FractionMultiStepLR needs the run\'s length: end={end} (the '
            'Runner sets it to train_cfg.max_epochs when the scheduler '
            'leaves end out)')
    fractions = list(fractions)
    if not fractions or any(not 0 < f <= 1 for f in fractions) or \
            fractions != sorted(fractions):
        raise ValueError('FractionMultiStepLR: milestone_fractions must be '
                         f'increasing numbers in (0, 1]; got {fractions}')
    span = end - begin
    return [begin + max(1, int(round(f * span))) for f in fractions]


@PARAM_SCHEDULERS.register_module()
class FractionMultiStepLR(MultiStepLR):
    """``MultiStepLR`` with milestones at fractions of its span.

    Args:
        optimizer (Optimizer | OptimWrapper): Wrapped optimizer.
        milestone_fractions (Sequence[float]): Increasing fractions in
            (0, 1] of ``[begin, end)``: e.g. ``(4 / 15, 6 / 15, 8 / 15)``
            gives epochs 4, 6, 8 of a 15-epoch run and 16, 24, 32 of 60.
        gamma (float): Factor of each decay. Defaults to 0.1.
        begin (int): First step of the schedule. Defaults to 0.
        end (int): Its end; left out of a config, the Runner gives the run's
            ``max_epochs`` (``max_iters`` with ``by_epoch=False``).
        **kwargs: ``last_step``, ``by_epoch``, ``verbose`` as for
            ``MultiStepLR``.

    Raises:
        ValueError: without a finite ``end`` (built outside a Runner's
            training), or for fractions outside (0, 1].
    """

    def __init__(self,
                 optimizer,
                 milestone_fractions: Sequence[float],
                 gamma: float = 0.1,
                 begin: int = 0,
                 end: int = INF,
                 **kwargs):
        self.milestone_fractions = tuple(float(f)
                                         for f in milestone_fractions)
        super().__init__(
            optimizer,
            milestones=fraction_milestones(self.milestone_fractions, begin,
                                           end),
            gamma=gamma,
            begin=begin,
            end=end,
            **kwargs)

    @classmethod
    def build_iter_from_epoch(cls,
                              *args,
                              milestone_fractions,
                              begin=0,
                              end=INF,
                              by_epoch=True,
                              epoch_length=None,
                              **kwargs):
        """The iteration-based schedule of an epoch-based config
        (``convert_to_iter_based=True``): the milestones in epochs, then in
        iterations, as ``MultiStepLR`` converts them."""
        return MultiStepLR.build_iter_from_epoch(
            *args,
            milestones=fraction_milestones(milestone_fractions, begin, end),
            begin=begin,
            end=end,
            by_epoch=by_epoch,
            epoch_length=epoch_length,
            **kwargs)
