# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Drawing helpers: prediction overlays (plain OpenCV) and calibration
figures (matplotlib, headless)."""
from .calibration_plots import (ere_vs_error_png, reliability_diagram_png,
                                roc_png)
from .overlay import CONTOUR_LEVELS, draw_overlay

__all__ = [
    'CONTOUR_LEVELS', 'draw_overlay', 'ere_vs_error_png',
    'reliability_diagram_png', 'roc_png'
]
