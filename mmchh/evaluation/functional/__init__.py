from .uncertainty import (expected_radial_error, heatmap_mode, log_softmax_2d,
                          nll_at_index, softmax_2d)

__all__ = [
    'expected_radial_error', 'heatmap_mode', 'log_softmax_2d', 'nll_at_index',
    'softmax_2d'
]
