# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Fitting split-conformal landmark regions on the calibration split.

Two steps, as temperature scaling (:mod:`mmchh.calibration.calibrate`) does:

1. :func:`collect_conformal_scores` streams the calibration split through the
   model's own test path (``test_step``: data preprocessor, backbone, head
   with its current temperatures) and keeps per map only a few numbers: the
   true pixel's score under every conformal score
   (:func:`~mmchh.codecs.utils.conformal_scores`, computed on the device),
   the radial error of the prediction in original-image pixels (the disc
   baseline) and whether the landmark counts. Run it after the temperatures
   are fitted: the regions are those of the calibrated maps.
2. :func:`fit_conformal` turns them into thresholds per level, per landmark
   and pooled (:func:`~mmchh.evaluation.functional.conformal_thresholds`),
   and the disc radii, as a :class:`ConformalFit`; its :meth:`~ConformalFit.
   head_buffers` are the tensors a head stores with its other calibration
   buffers, and :meth:`~ConformalFit.report` their JSON form.

Only the calibration split may be used: a threshold fitted on the test
split covers it by construction, and says nothing.
"""
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

from mmchh.codecs.utils.conformal_regions import (CONFORMAL_SCORES,
                                                   conformal_scores)
from mmchh.evaluation.functional.conformal import (conformal_min_maps,
                                                   conformal_thresholds)
from mmchh.evaluation.functional.radial_error import radial_errors_mm
from mmchh.utils.errors import InputError

from ..evaluation_pass import changed_test_cfg

__all__ = [
    'ConformalFit', 'ConformalFitError', 'ConformalScores',
    'collect_conformal_scores', 'fit_conformal'
]


class ConformalFitError(InputError):
    """The calibration split cannot give conformal regions (no ground truth
    on the model's grid, non-finite maps, nothing counted).

    Its own class, not :class:`~mmchh.calibration.calibrate.CalibrationError`,
    so that :mod:`mmchh.calibration.calibrate` can import this module.
    """


@dataclass(eq=False)  # arrays have no single truth value to compare
class ConformalScores:
    """Per-map conformal quantities of a calibration split.

    Attributes:
        scores (dict): Score name (``'density'``, ``'mass'``) -> the true
            pixel's score of each map, float64.
        radial_error_px (np.ndarray): Distance of each prediction from the
            true landmark, in original-image pixels, float64.
        counted (np.ndarray): Whether each map counts (its landmark lies
            inside the heatmap: target weight > 0), bool.

    Note:
        Shapes: every array is (N, K), N images of K landmarks.
    """
    scores: Dict[str, np.ndarray]
    radial_error_px: np.ndarray
    counted: np.ndarray

    def __len__(self) -> int:
        """N, the number of images."""
        return len(self.counted)

    @staticmethod
    def cat(parts: Sequence['ConformalScores']) -> 'ConformalScores':
        """Concatenates along the images (e.g. batches or ranks' shards)."""
        parts = list(parts)
        if not parts:
            raise ValueError('ConformalScores.cat needs at least one part')
        return ConformalScores(
            scores={
                name: np.concatenate([p.scores[name] for p in parts])
                for name in parts[0].scores
            },
            radial_error_px=np.concatenate(
                [p.radial_error_px for p in parts]),
            counted=np.concatenate([p.counted for p in parts]))


def _round_up_float32(values: np.ndarray) -> torch.Tensor:
    """float64 -> float32 tensor, never below the input: a threshold that
    rounded down would drop the calibration maps whose score equals it.
    ``inf`` (the whole image) becomes float32's largest finite value, which
    every finite score is below (and checkpoints refuse infinities)."""
    values = np.asarray(values, dtype=np.float64)
    big = np.finfo(np.float32).max
    out = np.minimum(values, big).astype(np.float32)
    low = out.astype(np.float64) < np.minimum(values, big)
    out[low] = np.nextafter(out[low], np.float32(np.inf))
    return torch.from_numpy(out)


@dataclass(eq=False)
class ConformalFit:
    """Split-conformal thresholds and disc radii fitted on a calibration
    split.

    Attributes:
        levels (np.ndarray): Coverage levels ``1 - alpha``, float64.
        thresholds (dict): Score name -> per-landmark thresholds, float64
            (``inf``: the whole image).
        pooled_thresholds (dict): Score name -> one threshold per level for
            every landmark.
        disc_radius_px (np.ndarray): Per-landmark disc radii in
            original-image pixels.
        pooled_disc_radius_px (np.ndarray): One radius per level.
        num_per_landmark (np.ndarray): Counted calibration maps per
            landmark, int.

    Which thresholds a head uses at each level is :meth:`sources`: the
    per-landmark ones when every landmark has enough calibration maps for
    the level (split conformal needs ``n >= 1 / alpha - 1``, e.g. 9 at 90 %),
    else the pooled one for every landmark. All or nothing, so the pooled
    guarantee (coverage over landmarks drawn at random) holds as stated;
    mixing per-landmark and pooled thresholds would carry neither
    guarantee. A per-landmark "whole image" is a valid region but says
    nothing, and small calibration splits (the demo's four images) are
    common.

    Note:
        Shapes: ``levels`` (L,); ``thresholds[score]`` and
        ``disc_radius_px`` (L, K); ``pooled_thresholds[score]`` and
        ``pooled_disc_radius_px`` (L,); ``num_per_landmark`` (K,).
    """
    levels: np.ndarray
    thresholds: Dict[str, np.ndarray]
    pooled_thresholds: Dict[str, np.ndarray]
    disc_radius_px: np.ndarray
    pooled_disc_radius_px: np.ndarray
    num_per_landmark: np.ndarray

    def sources(self, score: str = 'mass') -> List[str]:
        """Per level, the thresholds a head uses: ``'per_landmark'`` when
        every landmark's threshold (``score``'s and the disc's) is finite,
        else ``'pooled'`` (see the class docstring)."""
        if score not in self.thresholds:
            raise ValueError(f'no thresholds fitted for score {score!r}; '
                             f'fitted: {sorted(self.thresholds)}')
        enough = (np.isfinite(self.thresholds[score]).all(axis=1)
                  & np.isfinite(self.disc_radius_px).all(axis=1))
        return ['per_landmark' if ok else 'pooled' for ok in enough]

    def _used(self, per_landmark: np.ndarray, pooled: np.ndarray,
              sources: Sequence[str]) -> np.ndarray:
        """(L, K) thresholds in use: each level's row per landmark or the
        pooled value broadcast."""
        return np.stack([
            row if source == 'per_landmark' else np.full_like(row, value)
            for row, value, source in zip(per_landmark, pooled, sources)
        ])

    def head_buffers(self, score: str = 'mass') -> Dict[str, torch.Tensor]:
        """The fit as float32 head buffers, for one score.

        Args:
            score (str): The score the head's regions use.

        Returns:
            dict: ``conformal_level`` (L,), ``conformal_threshold`` (L, K)
            and ``conformal_disc_radius`` (L, K), the thresholds in use at
            each level (per landmark or pooled, :meth:`sources`),
            ``conformal_pooled_threshold`` (L,) and
            ``conformal_pooled_disc_radius`` (L,), float32 on the CPU. Values are rounded up to float32 (so no calibration map
            whose score equals a threshold falls out) and ``inf`` is stored
            as float32's largest value (still above every score).
        """
        sources = self.sources(score)
        return dict(
            conformal_level=torch.as_tensor(self.levels, dtype=torch.float32),
            conformal_threshold=_round_up_float32(
                self._used(self.thresholds[score],
                           self.pooled_thresholds[score], sources)),
            conformal_pooled_threshold=_round_up_float32(
                self.pooled_thresholds[score]),
            conformal_disc_radius=_round_up_float32(
                self._used(self.disc_radius_px, self.pooled_disc_radius_px,
                           sources)),
            conformal_pooled_disc_radius=_round_up_float32(
                self.pooled_disc_radius_px))

    def report(self,
               names: Optional[Mapping[int, str]] = None,
               score: str = 'mass') -> Dict:
        """The fit as strict JSON (``None`` for an infinite threshold).

        Args:
            names (Mapping[int, str], optional): Landmark names by index
                (``keypoint_id2name``); indices as strings otherwise.
            score (str): The score a head uses (for ``sources``).

        Returns:
            dict: ``levels``; per score ``thresholds`` {level: {name:
            value}} and ``pooled_thresholds`` {level: value};
            ``disc_radius_px`` and ``pooled_disc_radius_px`` alike;
            ``num_per_landmark`` {name: count}; ``sources`` {level:
            ``'per_landmark'`` or ``'pooled'``} (:meth:`sources`) and
            ``min_maps_per_landmark`` {level: the fewest counted maps per
            landmark that give every landmark its own finite threshold}.
        """
        names = names or {}
        keys = [names.get(k, str(k)) for k in range(len(
            self.num_per_landmark))]

        def finite(v):
            return float(v) if np.isfinite(v) else None

        def per_level(table):
            return {
                f'{level:g}': {k: finite(v) for k, v in zip(keys, row)}
                for level, row in zip(self.levels, table)
            }

        def pooled(values):
            return {f'{level:g}': finite(v)
                    for level, v in zip(self.levels, values)}

        return dict(
            levels=[float(v) for v in self.levels],
            thresholds={s: per_level(t) for s, t in self.thresholds.items()},
            pooled_thresholds={
                s: pooled(t) for s, t in self.pooled_thresholds.items()
            },
            disc_radius_px=per_level(self.disc_radius_px),
            pooled_disc_radius_px=pooled(self.pooled_disc_radius_px),
            num_per_landmark={
                k: int(n) for k, n in zip(keys, self.num_per_landmark)
            },
            sources={f'{level:g}': source for level, source in zip(
                self.levels, self.sources(score))},
            min_maps_per_landmark={
                f'{level:g}': conformal_min_maps(level)
                for level in self.levels
            })


def fit_conformal(scores: ConformalScores,
                  levels: Sequence[float] = (0.9, )) -> ConformalFit:
    """Fits thresholds and disc radii at each level from calibration maps.

    Args:
        scores (ConformalScores): The calibration split's per-map scores
            (:func:`collect_conformal_scores`).
        levels (Sequence[float]): Coverage levels ``1 - alpha``. Default
            (0.9,).

    Returns:
        ConformalFit: Per score and level, per landmark and pooled.

    Raises:
        ConformalFitError: when no map of the split counts.
    """
    counted = np.asarray(scores.counted, dtype=bool)
    if not counted.any():
        raise ConformalFitError(
            'no landmark of the calibration split lies inside the heatmap; '
            'no conformal region can be fitted')
    fits = {
        name: conformal_thresholds(values, levels, counted)
        for name, values in scores.scores.items()
    }
    disc = conformal_thresholds(scores.radial_error_px, levels, counted)
    return ConformalFit(
        levels=np.asarray(levels, dtype=np.float64),
        thresholds={name: f['per_landmark'] for name, f in fits.items()},
        pooled_thresholds={name: f['pooled'] for name, f in fits.items()},
        disc_radius_px=disc['per_landmark'],
        pooled_disc_radius_px=disc['pooled'],
        num_per_landmark=disc['num_per_landmark'])


def _batch_scores(samples, score_names: Sequence[str],
                  chunk_size: int) -> ConformalScores:
    """The conformal quantities of one predicted batch."""
    try:
        labels = [s.gt_instance_labels for s in samples]
        index = torch.cat([lab.heatmap_indices for lab in labels])
    except AttributeError as e:
        raise ConformalFitError(
            'the calibration samples carry no ground truth on the model\'s '
            'grid: add dict(type=\'GenerateTargetIfAnnotated\', encoder='
            '<model.head.decoder>) before PackPoseInputs in the calibration '
            'pipeline') from e
    probs = torch.stack([s.pred_fields.heatmaps for s in samples])
    scores = {
        name: conformal_scores(probs, index.to(probs.device), name,
                               chunk_size).cpu().numpy()
        for name in score_names
    }
    # a score is NaN exactly where the map holds a non-finite value
    broken = int(np.isnan(next(iter(scores.values()))).sum())
    if broken:
        raise ConformalFitError(
            f'{broken} landmark map(s) of the calibration split are not '
            'finite (broken weights or inputs); no conformal region can be '
            'fitted on them')
    weight = torch.cat(
        [torch.as_tensor(lab.keypoint_weights) for lab in labels])
    errors = np.stack([
        radial_errors_mm(
            np.asarray(s.pred_instances.keypoints)[0],
            np.asarray(s.gt_instances.keypoints)[0, :, :2], 1.0)
        for s in samples
    ])
    return ConformalScores(
        scores=scores, radial_error_px=errors,
        counted=(weight > 0).cpu().numpy())


def collect_conformal_scores(model,
                             loader,
                             score_names: Sequence[str] = CONFORMAL_SCORES,
                             chunk_size: int = 64) -> ConformalScores:
    """Per-map conformal scores of this rank's share of a calibration split.

    Runs the model's test path with ``output_heatmaps`` (the head's
    temperature-scaled maps, flip test included when configured, exactly
    as at test time) and scores each map's true pixel on the device; only
    O(K) numbers per image leave it. Call it with the model in eval mode
    and its weights frozen, after the temperatures are fitted (inside
    :func:`~mmchh.calibration.calibrate_model`'s frozen evaluation).

    Args:
        model (BasePoseEstimator): The pose estimator (unwrapped) with a
            ``SoftmaxHeatmapHead``.
        loader (DataLoader): The calibration split; its pipeline encodes the
            ground truth on the model's grid (``heatmap_indices``), as for
            temperature scaling.
        score_names (Sequence[str]): The scores to compute.
        chunk_size (int): Maps scored at once.

    Returns:
        ConformalScores: (N, K) arrays for this rank's images, in loader
        order (gather ranks with ``collect_results`` and
        :meth:`ConformalScores.cat`).

    Raises:
        ConformalFitError: no ground truth on the model's grid, or a
            non-finite map (as temperature scaling refuses them).
    """
    if not score_names:
        raise ValueError('collect_conformal_scores needs at least one score')
    parts = []
    with changed_test_cfg(model, output_heatmaps=True), torch.no_grad():
        for data in loader:
            parts.append(
                _batch_scores(model.test_step(data), score_names,
                              chunk_size))
    if not parts:
        raise ConformalFitError('the calibration split is empty: no '
                                'conformal region can be fitted')
    return ConformalScores.cat(parts)
