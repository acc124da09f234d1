# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What a softmax heatmap's ``keypoint_scores`` mean: the calibrated
probability that the landmark lies within a radius of the prediction.

The probability at the mode pixel (``keypoint_mode_prob``) shrinks with
the grid: a map over 20,000 pixels that is sure of a 2 mm disc still gives
its best pixel 0.05 or less, far below MMPose's ``kpt_thr`` (0.3), so
MMPose's visualiser and inferencer would draw nothing. The mass of the map
within a radius of the prediction does not depend on the grid and reads as
a probability of success:

- with a pixel ``spacing`` (cephalograms): within ``mm`` (2 mm by default,
  the success radius of SDR 2 mm, the clinical criterion of the ISBI
  challenges): the score is the landmark's calibrated SDR 2 mm;
- without one (COCO, hands, images of unknown scale): within
  ``box_fraction`` (5 % by default, MMPose's PCK@0.05) of the model's box
  along each axis, an ellipse of ``box_fraction * (W, H)`` heatmap pixels.

Both are set per model in ``test_cfg`` (``score_radius_mm``,
``score_box_fraction``).
"""
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

from mmchh.utils.errors import InputError

__all__ = ['ScoreRadius']


@dataclass(frozen=True)
class ScoreRadius:
    """The radius within which ``keypoint_scores`` count the probability.

    Args:
        mm (float): The radius in mm for samples with a ``spacing``.
        box_fraction (float): For samples without one, the radius as a
            fraction of the model's box along each axis.
    """
    mm: float = 2.0
    box_fraction: float = 0.05

    def __post_init__(self) -> None:
        for name, value in (('score_radius_mm', self.mm),
                            ('score_box_fraction', self.box_fraction)):
            if isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not np.isfinite(value) or \
                    value <= 0:
                raise InputError(f'test_cfg.{name} must be a positive '
                                 f'number; got {value!r}')

    @classmethod
    def from_test_cfg(cls, test_cfg: Optional[Mapping]) -> 'ScoreRadius':
        """The radius a model's ``test_cfg`` sets (defaults when absent)."""
        test_cfg = test_cfg or {}
        return cls(
            mm=test_cfg.get('score_radius_mm', cls.mm),
            box_fraction=test_cfg.get('score_box_fraction',
                                      cls.box_fraction))

    def per_sample(self, heatmap_mm: Sequence[Optional[np.ndarray]],
                   heatmap_size: Tuple[int, int]
                   ) -> Tuple[np.ndarray, np.ndarray]:
        """Each sample's radius and heatmap pixel size in the radius' unit.

        Args:
            heatmap_mm (list[np.ndarray | None]): Per sample, mm per heatmap
                pixel ``(x, y)``, or None without a spacing.
            heatmap_size (tuple[int, int]): The maps' ``(W, H)``.

        Returns:
            tuple: ``radius`` (B,) and ``pixel_size`` (B, 2), float64: in
            mm with a spacing; else radius 1 and one heatmap pixel as a
            fraction of ``box_fraction`` times the box along x and y.
        """
        w, h = heatmap_size
        box = np.array([1.0 / (self.box_fraction * w),
                        1.0 / (self.box_fraction * h)])
        radius = np.array([1.0 if mm is None else self.mm
                           for mm in heatmap_mm], np.float64)
        size = np.array([box if mm is None else np.asarray(mm, np.float64)
                         for mm in heatmap_mm], np.float64).reshape(-1, 2)
        return radius, size

    def describe(self, in_mm: bool) -> str:
        """What the score is, in words, for a sample with (``in_mm``) or
        without a spacing."""
        if in_mm:
            return (f'probability that the landmark lies within {self.mm:g} '
                    'mm of the prediction')
        return ('probability that the landmark lies within '
                f'{100 * self.box_fraction:g}% of the box (along each axis) '
                'of the prediction')
