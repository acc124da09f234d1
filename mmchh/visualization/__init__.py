# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Drawing helpers: prediction overlays (plain OpenCV; their labels placed
by :mod:`.label_layout`) and calibration figures (matplotlib, headless)."""
from .calibration_plots import (ere_vs_error_png, reliability_diagram_png,
                                roc_png)
from .label_layout import place_labels
from .overlay import (CONTOUR_LEVELS, OVERLAY_SHOWS, draw_overlay,
                      overlay_layout)

__all__ = [
    'CONTOUR_LEVELS', 'OVERLAY_SHOWS', 'draw_overlay', 'overlay_layout',
    'place_labels', 'ere_vs_error_png', 'reliability_diagram_png', 'roc_png'
]
