# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Which measurement intervals a prediction reports, and their numbers.

By default the fitted ones: each measurement's landmarks drawn within
their conformal regions give a center and a spread
(:mod:`~mmchh.apis.region_measurements`), and the interval is ``center +-
scale * spread`` with the scale calibration stored in the checkpoint
(:meth:`~mmchh.calibration.conformal.measurement_intervals.MeasurementIntervalFit.
from_head`) -- the numbers ``tools/measure.py`` gives by default. A
checkpoint without a stored scale gives one warning and the full-map
intervals (the 95 % interval of draws from the whole calibrated maps),
labelled as such; ``'full-map'`` asks for those.
"""
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

from torch import nn

from mmchh.calibration.conformal.measurement_intervals import MeasurementIntervalFit
from mmchh.evaluation.functional import scaled_intervals
from mmchh.utils.errors import InputError

from .region_measurements import RegionDraws, region_center_spread

__all__ = ['IntervalChoice', 'interval_kind', 'measurement_intervals',
           'region_seed', 'stored_interval_choice']

#: Coverage level of the full-map intervals (``ci95``).
FULL_MAP_LEVEL = 0.95


def interval_kind(intervals: str, calib_file: Any = None,
                  interval_fit: Any = None) -> Dict[str, str]:
    """Which intervals a call reports: ``kind`` (``'fitted'`` or
    ``'full-map'``), ``source`` and ``note``.

    Raises:
        InputError: For another ``intervals``, or a fit given with
            ``'full-map'``.
    """
    if intervals not in ('fitted', 'full-map'):
        raise InputError(f"intervals must be 'fitted' or 'full-map'; got "
                         f'{intervals!r}')
    if intervals == 'full-map':
        if calib_file is not None or interval_fit is not None:
            raise InputError('full-map intervals take no calib_file or '
                             'interval_fit')
        return dict(kind='full-map', source='requested',
                    note='full-map draws, as requested: not calibrated '
                    'widths')
    source = ('calib_file' if calib_file is not None else 'interval_fit'
              if interval_fit is not None else 'checkpoint')
    return dict(kind='fitted', source=source, note='')


@dataclass(frozen=True)
class IntervalChoice:
    """The intervals of one call and what they rest on.

    Attributes:
        kind (str): ``'fitted'`` or ``'full-map'``.
        source (str): ``'checkpoint'`` (the scale calibration stored),
            ``'requested'`` (full-map asked for) or ``'no stored scale'``
            (full-map because the checkpoint has none).
        note (str): Why the intervals are full-map ('' when fitted).
        fit (MeasurementIntervalFit | None): The stored fit, when fitted.
    """
    kind: str
    source: str
    note: str = ''
    fit: Optional[MeasurementIntervalFit] = None

    def record(self) -> Dict[str, Any]:
        """``kind``, ``source``, ``note`` and, when fitted, the ``scale``,
        its ``level``, the conformal ``region_level`` drawn within and
        whether the draws are widened by a landmark ``jitter``."""
        out = dict(kind=self.kind, source=self.source, note=self.note)
        if self.fit is not None:
            out.update(scale=self.fit.scale, level=self.fit.level,
                       region_level=self.fit.region_level,
                       jitter=self.fit.jitter is not None)
        return out


def stored_interval_choice(model: nn.Module, intervals: str = 'fitted',
                           stacklevel: int = 2) -> IntervalChoice:
    """The intervals ``model`` gives: fitted with its stored scale, or
    full-map (requested, or warned: no stored scale).

    Args:
        model (nn.Module): A model from
            :func:`~mmchh.apis.init_landmark_model`.
        intervals (str): ``'fitted'`` (default) or ``'full-map'``.
        stacklevel (int): Of the warning, counted as ``warnings.warn``
            counts it from here (2: the caller).

    Warns:
        UserWarning: Once, when fitted intervals are asked for and the
            checkpoint has no stored scale (the intervals are the full-map
            ones).
    """
    kind = interval_kind(intervals)
    if kind['kind'] == 'full-map':
        return IntervalChoice(**kind)
    fit, why = MeasurementIntervalFit.from_head(model.head)
    if fit is None:
        warnings.warn(f'{why}: the intervals are the FULL-MAP ones',
                      UserWarning, stacklevel=stacklevel)
        return IntervalChoice('full-map', 'no stored scale', why)
    return IntervalChoice('fitted', 'checkpoint', '', fit)


def region_seed(seed: Sequence[int], index: int) -> Tuple[int, int]:
    """``(seed, image index)`` of image ``index`` of a call seeded with
    ``seed`` for its region draws: ``(s, index)`` for ``(s,)``, ``(s, j0 +
    index)`` for ``(s, j0)`` (a batch starting at image ``j0`` of a list,
    as ``tools/measure.py`` and ``tools/infer.py`` seed theirs, so both
    draw the same for the same image).

    Raises:
        ValueError: For a seed of more than two integers.
    """
    seed = tuple(int(v) for v in seed)
    if len(seed) not in (1, 2):
        raise ValueError('fitted measurement intervals take a seed of one '
                         f'or two integers; got {seed}')
    return seed[0], (seed[1] if len(seed) == 2 else 0) + int(index)


def measurement_intervals(result, model: nn.Module, choice: IntervalChoice,
                          num_samples: int, seed: Sequence[int],
                          index: int) -> Dict[str, Dict[str, Any]]:
    """Each measurement's interval in one image, as ``choice`` says.

    Args:
        result (LandmarkResult): With its ``measurements`` (their
            ``ci95``) and, for fitted intervals, its ``heatmaps``.
        model (nn.Module): The model (its head's conformal regions).
        choice (IntervalChoice): Fitted or full-map.
        num_samples (int): Draws per landmark.
        seed (Sequence[int]): The call's seed (see :func:`region_seed`).
        index (int): The image's position in the call.

    Returns:
        dict: ``name -> interval``: ``low``, ``high``, ``level``, ``kind``
        and, fitted, the ``center`` and ``spread`` of the region draws
        (None for full-map); ``low`` / ``high`` None where a landmark it
        needs was not predicted.
    """
    if choice.fit is None:
        return {
            name: dict(low=(m['ci95'] or (None, None))[0],
                       high=(m['ci95'] or (None, None))[1],
                       level=FULL_MAP_LEVEL, kind='full-map', center=None,
                       spread=None)
            for name, m in result.measurements.items()
        }
    base, image = region_seed(seed, index)
    draws = RegionDraws.of_model(model, choice.fit.region_level,
                                 num_samples, base, choice.fit.jitter_array)
    out = {}
    for name, (center, spread) in region_center_spread(
            result, model.head, draws, image).items():
        lo, hi = scaled_intervals([center], [spread], choice.fit.scale)
        out[name] = dict(low=float(lo[0]), high=float(hi[0]),
                         level=choice.fit.level, kind='fitted',
                         center=center, spread=spread)
    return out
