# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""How big an overlay draws: the canvas an X-ray is drawn on, with line
widths and text that grow with it, and the landmark colours.

A small image is magnified (nearest) to :data:`MIN_CANVAS` pixels on its
long side so text stays readable; on the canvas, the text scale and line
width grow with the long side, so a 2000-pixel radiograph gets thicker
lines and larger text than a 768-pixel canvas (a 160-pixel image
magnified), and a label is as easy to read on either when both are shown
at the same screen size.
"""
from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np

__all__ = [
    'CanvasStyle', 'canvas_geometry', 'grey_canvas', 'landmark_colour',
    'outlined_text', 'FLAGGED_BGR', 'OK_BGR', 'UNKNOWN_BGR', 'MIN_CANVAS'
]

#: Long side (pixels) a smaller image is magnified to.
MIN_CANVAS = 768

#: Landmark colours (BGR): flagged ("check this one"), not flagged, and
#: cannot be judged (no threshold or no spacing).
FLAGGED_BGR = (0, 100, 255)
OK_BGR = (60, 200, 60)
UNKNOWN_BGR = (230, 200, 40)

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def landmark_colour(flagged) -> Tuple[int, int, int]:
    """The colour of a landmark whose ``flagged`` is True, False or None."""
    if flagged is None:
        return UNKNOWN_BGR
    return FLAGGED_BGR if flagged else OK_BGR


@dataclass(frozen=True)
class CanvasStyle:
    """Drawing geometry of one overlay: the image magnified by ``zoom``,
    with the text size and line widths that stay readable at that size.

    Attributes:
        zoom (float): Canvas pixels per image pixel (>= 1).
        font_scale (float): OpenCV font scale of labels and legend.
        thick (int): Line width of crosses and contours, canvas pixels.
        text_thick (int): Stroke width of text (its dark outline is 2
            pixels wider).
        shift (int): Fractional bits of cv2's fixed-point coordinates.
    """
    zoom: float
    font_scale: float
    thick: int
    text_thick: int
    shift: int = 4

    @classmethod
    def for_canvas(cls, zoom: float, long_side: int) -> 'CanvasStyle':
        """The style of a canvas whose long side is ``long_side`` pixels:
        text scale ``long_side / 1500`` (at least 0.45), text stroke twice
        that, line width ``long_side / 700`` (at least 1)."""
        font_scale = max(0.45, long_side / 1500.0)
        return cls(zoom=zoom, font_scale=font_scale,
                   thick=max(1, int(round(long_side / 700.0))),
                   text_thick=max(1, int(round(2 * font_scale))))

    @property
    def mult(self) -> float:
        return float(1 << self.shift)

    def fixed(self, pts) -> np.ndarray:
        """Image pixels (..., 2) -> fixed-point canvas pixels, int32."""
        return np.round((np.asarray(pts) * self.zoom + 0.5 *
                         (self.zoom - 1)) * self.mult).astype(np.int32)

    def canvas_xy(self, pts) -> np.ndarray:
        """Image pixels (..., 2) -> canvas pixels, float64."""
        return np.asarray(pts, np.float64) * self.zoom + 0.5 * (self.zoom -
                                                                1)

    @property
    def pad(self) -> int:
        """Pixels around a text's glyphs that its outline may cover."""
        return self.text_thick + 1

    def text_box_size(self, text: str) -> Tuple[int, int]:
        """(width, height) of the box :func:`outlined_text` fills for
        ``text``, outline and padding included."""
        (tw, th), base = cv2.getTextSize(text, _FONT, self.font_scale,
                                         self.text_thick)
        return tw + 2 * self.pad, th + base + 2 * self.pad

    def line_step(self) -> int:
        """Height of one legend line, pixels."""
        return self.text_box_size('Ag')[1] + 2


def grey_canvas(image_gray_uint8: np.ndarray):
    """The (H', W', 3) BGR canvas of an image and its :class:`CanvasStyle`.

    Args:
        image_gray_uint8 (np.ndarray): (H, W) uint8, or (H, W, 3) BGR
            (drawn grey).
    """
    img = np.asarray(image_gray_uint8)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    size, style = canvas_geometry(*img.shape[:2])
    canvas = cv2.resize(img, size, interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR), style


def canvas_geometry(height: int, width: int):
    """The canvas (width, height) of an image of ``height`` x ``width``
    pixels, magnified to :data:`MIN_CANVAS` on its long side when smaller,
    and its :class:`CanvasStyle`."""
    zoom = max(1.0, MIN_CANVAS / max(height, width))
    size = (int(round(width * zoom)), int(round(height * zoom)))
    return size, CanvasStyle.for_canvas(zoom, max(size))


def outlined_text(canvas: np.ndarray, style: CanvasStyle, text: str,
                  box_origin: Tuple[int, int], colour: tuple) -> None:
    """Writes ``text`` in ``colour`` over a dark outline (legible on bright
    bone), filling the box of :meth:`CanvasStyle.text_box_size` whose top
    left corner is ``box_origin``."""
    (_, th), _ = cv2.getTextSize(text, _FONT, style.font_scale,
                                 style.text_thick)
    at = (int(round(box_origin[0])) + style.pad,
          int(round(box_origin[1])) + style.pad + th)
    cv2.putText(canvas, text, at, _FONT, style.font_scale, (0, 0, 0),
                style.text_thick + 2, cv2.LINE_AA)
    cv2.putText(canvas, text, at, _FONT, style.font_scale, colour,
                style.text_thick, cv2.LINE_AA)
