# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The heatmap math a codec needs, beside it (as ``mmpose.codecs.utils``):
the distribution (softmax, NLL, mode, ERE), the grid, the frame of one
sample (heatmap <-> input <-> image <-> mm), conformal regions (scores
and regions of a probability map), the outlines of such regions and
what a keypoint score means (the mass within a radius) and the per-landmark
covariance measurement draws are widened by."""
from .conformal_regions import (CONFORMAL_SCORES, conformal_region_masks,
                                conformal_regions, conformal_scores)
from .frame import HeatmapFrame
from .heatmap_distribution import (expected_radial_error, heatmap_mode,
                                   log_softmax_2d, nll_at_index,
                                   probability_within_radius, softmax_2d)
from .heatmap_grid import (grid_scale, heatmap_cell, heatmap_to_input,
                           input_to_heatmap, refine_subpixel)
from .position_jitter import add_position_jitter, check_jitter
from .region_outlines import region_outlines, ring_area
from .score_radius import ScoreRadius

__all__ = [
    'CONFORMAL_SCORES', 'HeatmapFrame', 'ScoreRadius', 'add_position_jitter',
    'check_jitter',    'conformal_region_masks', 'conformal_regions', 'conformal_scores',
    'expected_radial_error', 'grid_scale', 'heatmap_cell', 'heatmap_mode',
    'heatmap_to_input', 'input_to_heatmap', 'log_softmax_2d', 'nll_at_index',
    'probability_within_radius', 'refine_subpixel', 'region_outlines',
    'ring_area', 'softmax_2d'
]
