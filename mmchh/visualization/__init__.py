# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Drawing helpers for predictions (plain OpenCV)."""
from .overlay import CONTOUR_LEVELS, draw_overlay

__all__ = ['CONTOUR_LEVELS', 'draw_overlay']
