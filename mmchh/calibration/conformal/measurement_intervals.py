# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Fitting the scale of the measurement intervals on the calibration split.

A measurement's interval is ``center +- q * spread``, where ``center`` and
``spread`` come from the measurement's draws (landmarks drawn from their
calibrated maps restricted to their conformal regions, see
:func:`~mmchh.evaluation.functional.sample_ceph_measurements`) and ``q`` is
one number fitted here by split conformal prediction: the normalised
residuals ``|true - center| / spread``
(:func:`~mmchh.evaluation.functional.interval_scores`) of every measurement
of every calibration image are pooled, and ``q`` is their ``k``-th smallest,
``k = ceil((n + 1) * level)``
(:func:`~mmchh.evaluation.functional.conformal_rank`; ``inf`` when
``k > n``: too few calibration values for the level).

What it promises: under exchangeability of calibration and test
(image, measurement) pairs, the interval holds the true value with
probability ``>= level`` -- marginally, over images and over the
measurements pooled (the eight measurements together, not each of them:
with a few calibration images a per-measurement fit is not finite at
0.95), and whatever the landmark errors' correlation (the fit is on the
true values, so the independence assumption of the draws only affects how
well ``spread`` ranks the images, not the guarantee).

With enough calibration images the draws are first widened by each
landmark's fitted jitter (:mod:`.landmark_jitter`: the error its map does
not show, direction by direction), and each calibration image's scores
are drawn with the jitter fitted without it
(:func:`~.split_draws.fit_intervals_from_draws`): the spreads then rank the
measurements as their errors do, and one pooled scale serves all eight.

Only the calibration split may be used: a scale fitted on the evaluated
split covers it by construction, and says nothing.
"""
import json
import math
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

from mmchh.codecs.utils import check_jitter
from mmchh.evaluation.functional.conformal import conformal_rank
from mmchh.utils.errors import InputError
from mmchh.utils.io import write_json
from .landmark_jitter import MIN_JITTER_IMAGES

__all__ = [
    'MEASUREMENT_INTERVAL_FILE', 'MeasurementIntervalFit',
    'fit_measurement_intervals', 'jitter_note'
]

#: Default file name of a saved fit (written by ``tools/measure.py
#: --calib`` next to its other outputs).
MEASUREMENT_INTERVAL_FILE = 'measurement_intervals.json'


@dataclass
class MeasurementIntervalFit:
    """A fitted interval scale and what it was fitted on.

    Attributes:
        level (float): Coverage level ``1 - alpha`` of the intervals.
        scale (float): ``q``; ``inf`` when the calibration split is too
            small for the level (the interval is then everything).
        region_level (float): Level of the head's conformal regions the
            landmarks are drawn within.
        num_scores (int): Calibration scores pooled (``n``).
        rank (int): ``k = ceil((n + 1) * level)``; ``k > n`` means ``inf``.
        calib_file (str | None): The calibration split.
        weights_fingerprint (str | None): The head's calibration
            fingerprint (hex) of the model it was fitted with; a model with
            another one must not use the fit.
        num_samples (int): Draws per landmark used for center and spread.
        seed (int): Seed of those draws.
        per_measurement (dict): Per name ``count`` (calibration scores) and
            ``coverage`` (fraction of them ``<= scale``), for the report.
        jitter (list | None): (K, 2, 2) per-landmark covariance (heatmap
            pixels^2) the draws are widened by
            (:mod:`.landmark_jitter`); None: not fitted (too few
            calibration images), the draws are the maps' own.
        jitter_images (int): Calibration images the jitter was fitted on
            (0: none).
    """
    level: float
    scale: float
    region_level: float
    num_scores: int
    rank: int
    calib_file: Optional[str] = None
    weights_fingerprint: Optional[str] = None
    num_samples: int = 1000
    seed: int = 0
    per_measurement: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    jitter: Optional[List[List[List[float]]]] = None
    jitter_images: int = 0

    @property
    def jitter_array(self) -> Optional[np.ndarray]:
        """:attr:`jitter` as a (K, 2, 2) float64 array, or None."""
        return None if self.jitter is None else np.asarray(self.jitter,
                                                           np.float64)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready; an infinite ``scale`` is written as None."""
        out = asdict(self)
        out['scale'] = self.scale if math.isfinite(self.scale) else None
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any],
                  where: str = 'fit') -> 'MeasurementIntervalFit':
        """Reads :meth:`to_dict`'s form back (``scale`` None is ``inf``).

        Raises:
            InputError: Naming ``where`` and the field, on a missing or
                malformed field.
        """
        try:
            fit = cls(**{k: doc[k] for k in (
                'level', 'scale', 'region_level', 'num_scores', 'rank')},
                **{k: doc[k] for k in (
                    'calib_file', 'weights_fingerprint', 'num_samples',
                    'seed', 'per_measurement', 'jitter', 'jitter_images')
                    if k in doc})
        except KeyError as e:
            raise InputError(f'{where}: no field {e.args[0]!r}') from e
        fit.scale = math.inf if fit.scale is None else fit.scale
        for name in ('level', 'scale', 'region_level'):
            value = getattr(fit, name)
            if not isinstance(value, (int, float)) or math.isnan(value):
                raise InputError(f'{where}: field {name!r} must be a number; '
                                 f'got {value!r}')
        if not (0 < fit.level < 1 and 0 < fit.region_level < 1
                and fit.scale >= 0):
            raise InputError(
                f'{where}: level and region_level must be in (0, 1) and '
                f'scale >= 0; got {fit.level}, {fit.region_level}, '
                f'{fit.scale}')
        try:
            jitter = check_jitter(fit.jitter, None, f'{where}: field '
                                  "'jitter'")
        except ValueError as e:
            raise InputError(str(e)) from e
        fit.jitter = None if jitter is None else jitter.tolist()
        return fit

    @classmethod
    def from_head(cls, head) -> Tuple[Optional['MeasurementIntervalFit'],
                                      str]:
        """The fit stored in a head's calibration state by calibration.

        Returns:
            tuple: ``(fit, '')``, or ``(None, why)`` when the head holds no
            finite scale: calibrated before the scale was fitted (or
            without the 19 ISBI landmarks), or on a calibration split too
            small for the level.
        """
        scale = getattr(head, 'measurement_interval_scale', None)
        level = getattr(head, 'measurement_interval_level', None)
        if scale is None or not math.isfinite(float(level)):
            return None, ('the checkpoint\'s calibration has no measurement '
                          'interval scale (calibrated before calibration '
                          'fitted it, or on a split without the 19 ISBI '
                          'landmarks); re-run tools/calibrate.py, or fit one '
                          'with tools/measure.py --calib')
        if not math.isfinite(float(scale)):
            return None, (f'the calibration split was too small to fit a '
                          f'finite measurement interval scale at level '
                          f'{float(level):g}; fit one on more images with '
                          'tools/measure.py --calib')
        jitter = getattr(head, 'measurement_jitter', None)
        jitter = None if jitter is None or not bool(
            torch.isfinite(jitter).all()) else jitter.double().tolist()
        return cls(level=round(float(level), 6), scale=float(scale),
                   region_level=round(float(head.measurement_region_level),
                                      6),
                   num_scores=0, rank=0, calib_file='calibration',
                   weights_fingerprint=getattr(
                       head, 'calibration_fingerprint_hex', None),
                   jitter=jitter), ''

    def save(self, path: str) -> None:
        """Writes the fit as strict JSON, atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str) -> 'MeasurementIntervalFit':
        """Reads a fit written by :meth:`save`."""
        if not osp.isfile(path):
            raise InputError(f'measurement interval fit {path} does not '
                             'exist (write it with tools/measure.py --calib)')
        with open(path, encoding='utf-8') as f:
            try:
                doc = json.load(f)
            except json.JSONDecodeError as e:
                raise InputError(f'{path}: not JSON ({e})') from e
        if not isinstance(doc, dict):
            raise InputError(f'{path}: expected a JSON object')
        return cls.from_dict(doc, where=path)

    def check_model(self, fingerprint: Optional[str],
                    where: str = 'the model') -> None:
        """Refuses a model whose calibration fingerprint is not the fit's.

        Raises:
            InputError: If both fingerprints are known and differ.
        """
        if (self.weights_fingerprint is not None and fingerprint is not None
                and fingerprint != self.weights_fingerprint):
            raise InputError(
                f'the measurement interval fit ({self.calib_file}) was '
                f'fitted for weights {self.weights_fingerprint[:12]}..., '
                f'not those of {where} ({fingerprint[:12]}...); refit it '
                'with tools/measure.py --calib')


def jitter_note(fitted: bool, num_images: int = 0) -> str:
    """How a fit's draws were widened, for the tools' one-line summaries.

    Args:
        fitted (bool): Whether the fit holds a landmark jitter.
        num_images (int): The calibration images it was fitted on (0:
            not known, e.g. a fit read back from a checkpoint).
    """
    if not fitted:
        return ("the maps' own draws (no landmark jitter: fitted from "
                f'{MIN_JITTER_IMAGES + 1} calibration images on, or the '
                'calibration is older than it)')
    return ("widened by each landmark's fitted jitter" +
            (f' ({num_images} calibration images)' if num_images else ''))


def fit_measurement_intervals(scores: Mapping[str, np.ndarray],
                              level: float = 0.95,
                              region_level: float = 0.9,
                              **info) -> MeasurementIntervalFit:
    """The pooled split-conformal scale of the normalised residuals.

    Args:
        scores (Mapping[str, np.ndarray]): Measurement name -> (N,)
            calibration scores ``|true - center| / spread`` (from
            :func:`~mmchh.evaluation.functional.interval_scores`); NaN
            entries (no value, no interval) are left out, ``inf`` ones (a
            zero spread that misses) count and sort last.
        level (float): Coverage level ``1 - alpha``.
        region_level (float): The conformal region level of the draws
            (recorded).
        **info: ``calib_file``, ``weights_fingerprint``, ``num_samples``,
            ``seed`` (recorded).

    Returns:
        MeasurementIntervalFit: ``scale`` = the ``k``-th smallest pooled
        score, ``k = conformal_rank(n, level)``; ``inf`` when ``k > n``.

    Raises:
        InputError: When no score is usable (nothing to fit on).

    Note:
        Shapes: each ``scores[name]`` (N,), N calibration images; pooled
        over names, ``n`` = the number of non-NaN scores.
    """
    kept = {name: np.asarray(s, np.float64).reshape(-1)
            for name, s in scores.items()}
    kept = {name: s[~np.isnan(s)] for name, s in kept.items()}
    pooled = np.sort(np.concatenate(list(kept.values()) or [np.empty(0)]))
    if pooled.size == 0:
        raise InputError('no calibration measurement has both a true value '
                         'and an interval: nothing to fit the interval '
                         'scale on')
    if (pooled < 0).any():
        raise ValueError('interval scores must be >= 0')
    n = int(pooled.size)
    k = conformal_rank(n, level)
    scale = float(pooled[k - 1]) if k <= n else math.inf
    per = {
        name: dict(count=int(s.size),
                   coverage=float(np.mean(s <= scale)) if s.size else None)
        for name, s in kept.items()
    }
    return MeasurementIntervalFit(
        level=float(level), scale=scale, region_level=float(region_level),
        num_scores=n, rank=int(k), per_measurement=per, **info)
