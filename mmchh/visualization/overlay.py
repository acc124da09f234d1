# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Overlays of predicted landmarks with their probability contours and
conformal regions.

MMPose's ``PoseLocalVisualizer`` draws keypoints and skeletons but not the
contours of a probability map, which is what shows a clinician *where* the
model hesitates, nor a region that holds the landmark with a stated
probability; so this is a plain OpenCV drawing.
"""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from mmchh.models.heads.flag_basis import flag_legend
from mmchh.utils.io import atomic_write_bytes

__all__ = [
    'draw_overlay', 'CONTOUR_LEVELS', 'LEGEND_LINES', 'REASON_LABELS',
    'REGION_ALPHA'
]

#: Contour levels, as fractions of each map's maximum.
CONTOUR_LEVELS = (0.05, 0.25, 0.5)

#: Opacity of the conformal region outlines (drawn under everything else).
REGION_ALPHA = 0.7

#: Text lines the legend band under the X-ray has room for.
LEGEND_LINES = 5

#: How a flagged landmark's label names each reason it is flagged for.
REASON_LABELS = dict(ere='ERE', implausible='implausible')

# BGR
_OK = (60, 200, 60)
_FLAGGED = (0, 100, 255)  # orange-red: "check this one"
_UNKNOWN = (230, 200, 40)  # no threshold / no spacing: cannot say


def _landmark_colour(flagged) -> Tuple[int, int, int]:
    if flagged is None:
        return _UNKNOWN
    return _FLAGGED if flagged else _OK


def _contours_image(result, k: int, levels: Sequence[float]):
    """Contours (list of (N, 2) float arrays, image pixels) of map k."""
    prob = np.asarray(result.heatmaps[k], dtype=np.float32)
    peak = float(prob.max())
    out = []
    if not peak > 0:
        return out
    for level in levels:
        mask = (prob >= level * peak).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        for c in contours:
            pts = c[:, 0, :].astype(np.float64)
            out.append((level, result.frame.heatmap_to_image(pts)))
    return out


def _atomic_png(img: np.ndarray, out_path: str) -> None:
    ok, buf = cv2.imencode('.png', img)
    if not ok:
        raise RuntimeError(f'could not encode {out_path} as PNG')
    # a reader never sees a half-written PNG
    atomic_write_bytes(out_path, buf.tobytes())


@dataclass(frozen=True)
class _Canvas:
    """Drawing geometry of one overlay: the image magnified by ``zoom``,
    with the text size and line width that stay readable at that size."""
    zoom: float
    font_scale: float
    thick: int
    # sub-pixel drawing: cv2 takes fixed-point coordinates with `shift`
    shift: int = 4

    @property
    def mult(self) -> float:
        return float(1 << self.shift)

    def fixed(self, pts) -> np.ndarray:
        """Image pixels (..., 2) -> fixed-point canvas pixels, int32."""
        return np.round((np.asarray(pts) * self.zoom + 0.5 *
                         (self.zoom - 1)) * self.mult).astype(np.int32)


def _grey_canvas(image_gray_uint8: np.ndarray):
    """The (H', W', 3) BGR canvas of the image, and its geometry."""
    img = np.asarray(image_gray_uint8)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    h, w = img.shape[:2]
    # draw at a readable size: small inputs are magnified
    zoom = max(1.0, 768.0 / max(h, w))
    canvas = cv2.resize(img, (int(round(w * zoom)), int(round(h * zoom))),
                        interpolation=cv2.INTER_NEAREST)
    canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    long_side = max(canvas.shape[:2])
    return canvas, _Canvas(
        zoom=zoom,
        font_scale=max(0.4, long_side / 1600.0),
        thick=max(1, int(round(long_side / 800.0))))


def _has_position(lm: dict) -> bool:
    return not (lm.get('valid') is False or lm.get('x') is None
                or lm.get('y') is None)


def _first_region(lm: dict):
    """The landmark's region at the first coverage level, or None."""
    regions = lm.get('regions')
    return regions[0] if regions else None


def _draw_regions(canvas: np.ndarray, geo: _Canvas, landmarks: list) -> None:
    """Outlines each landmark's first-level conformal region (its rings,
    holes included) with a thin line in the landmark's colour, blended at
    :data:`REGION_ALPHA` so the bone under it stays visible."""
    layer = canvas.copy()
    drawn = False
    for lm in landmarks:
        region = _first_region(lm)
        if region is None:
            continue
        colour = _landmark_colour(lm.get('flagged'))
        rings = [
            geo.fixed(np.asarray(ring, np.float64)).reshape(-1, 1, 2)
            for ring in region['outline'] if len(ring)
        ]
        cv2.polylines(layer, rings, True, colour, 1, cv2.LINE_AA, geo.shift)
        drawn = drawn or bool(rings)
    if drawn:
        cv2.addWeighted(layer, REGION_ALPHA, canvas, 1 - REGION_ALPHA, 0,
                        dst=canvas)


def _label_text(lm: dict, show_names: bool) -> str:
    """``index: ERE``, and for a flagged landmark why (``ERE``,
    ``implausible`` or ``ERE+implausible``): a sharp map in the wrong
    place has a small ERE, and the label must not read as if the ERE
    flagged it."""
    if lm.get('ere_mm') is not None:
        text = f"{lm['index']}: {lm['ere_mm']:.1f} mm"
    else:
        text = f"{lm['index']}: {lm['ere_px']:.1f} px"
    why = '+'.join(REASON_LABELS[r] for r in lm.get('flag_reasons') or ()
                   if r in REASON_LABELS)
    if lm.get('flagged') and why:
        text += f' {why}'
    return f"{lm['name']} {text}" if show_names else text


def _draw_landmark(canvas: np.ndarray, geo: _Canvas, result, lm: dict,
                   levels: Sequence[float], show_names: bool) -> tuple:
    """Draws one landmark's contours and cross; returns its label
    ``(text, x, y, colour)`` (canvas pixels) to write later."""
    colour = _landmark_colour(lm.get('flagged'))
    thick, mult = geo.thick, geo.mult
    if getattr(result, 'heatmaps', None) is not None:
        for level, pts in _contours_image(result, lm['index'], levels):
            width = thick + sorted(levels).index(level) // 2
            cv2.polylines(canvas, [geo.fixed(pts).reshape(-1, 1, 2)], True,
                          colour, width, cv2.LINE_AA, geo.shift)
    cx, cy = geo.fixed([lm['x'], lm['y']])
    arm = int(6 * thick * mult)
    cv2.line(canvas, (cx - arm, cy), (cx + arm, cy), colour, thick,
             cv2.LINE_AA, geo.shift)
    cv2.line(canvas, (cx, cy - arm), (cx, cy + arm), colour, thick,
             cv2.LINE_AA, geo.shift)
    return (_label_text(lm, show_names), int(cx / mult), int(cy / mult),
            colour)


def _outlined_text(canvas: np.ndarray, geo: _Canvas, text: str, at: tuple,
                   colour: tuple) -> None:
    # dark outline under the text keeps it legible on bright bone
    cv2.putText(canvas, text, at, cv2.FONT_HERSHEY_SIMPLEX, geo.font_scale,
                (0, 0, 0), geo.thick + 2, cv2.LINE_AA)
    cv2.putText(canvas, text, at, cv2.FONT_HERSHEY_SIMPLEX, geo.font_scale,
                colour, geo.thick, cv2.LINE_AA)


def _write_labels(canvas: np.ndarray, geo: _Canvas, labels: list) -> None:
    """Writes the labels; one that would overlap an earlier one moves down
    a line, so clustered landmarks stay readable."""
    thick = geo.thick
    placed = []
    for text, x, y, colour in labels:
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX,
                                         geo.font_scale, thick)
        lx, ly = x + 6 * thick, y - 4 * thick
        lx = min(max(0, lx), max(0, canvas.shape[1] - tw - 2))
        for _ in range(len(labels)):
            box = (lx, ly - th, lx + tw, ly + base)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3]
                       and b[1] < box[3] for b in placed):
                break
            ly += th + base + 2
        placed.append((lx, ly - th, lx + tw, ly + base))
        _outlined_text(canvas, geo, text, (lx, ly), colour)


def _configuration_legend(status) -> str:
    """The configuration flag of ``status`` (a result's
    ``configuration_status``) in a few words."""
    if status['status'] == 'used':
        # short: the legend fits a 512 px wide overlay
        text = f'implausible: > {status["threshold"]:.3g} sigma off the shape'
        if status.get('alpha') is not None:
            text += f' (alpha {status["alpha"]:g})'
        return text
    if status['status'] == 'none':
        return 'implausible: not fitted (no configuration model)'
    if status.get('num_scores') is not None and \
            status.get('alpha') is not None:
        return (f'implausible: no threshold ({status["num_scores"]} '
                f'calibration scores at alpha {status["alpha"]:g})')
    return 'implausible: not used (no threshold)'


def _flag_lines(result) -> List[tuple]:
    """The legend's colour key, what the ERE flag rests on (the threshold
    with its bootstrap interval and calibration images, or why there are
    no flags) and what the configuration flag rests on (or that it is not
    fitted), as ``(text, colour)`` lines."""
    status = getattr(result, 'flag_status', None)
    config = getattr(result, 'configuration_status', None)
    judged = any(lm.get('flagged') is not None for lm in result.landmarks)
    key = ('label = index: ERE [why flagged]   orange: flagged   green: ok'
           if judged and (status is not None or config is not None or
                          result.flag_threshold_mm is not None)
           else 'label = index: ERE   cyan: not flagged (flags off)')
    if not result.calibrated:
        key += '   UNCALIBRATED'
    lines = [(key, (255, 255, 255))]
    if status is not None:
        basis = flag_legend(status)
        if status['status'] != 'used':  # beside a configuration flag
            basis = 'ERE ' + basis
        if status['status'] == 'used' and not status['applied']:
            basis += '; not applied: no spacing'
        lines.append((basis, (255, 255, 255) if status['applied'] and judged
                      else _UNKNOWN))
    if config is not None:
        lines.append((_configuration_legend(config), (255, 255, 255)
                      if config['status'] == 'used' else _UNKNOWN))
    return lines


def _legend_band(canvas: np.ndarray, geo: _Canvas, result,
                 invalid: List[str]) -> np.ndarray:
    """The canvas with the legend in a band under the X-ray (never over
    the anatomy or a label): the colour key, what the flags rest on, what
    the blocky outlines are (when drawn) and the invalid landmarks (in the
    "check this" colour). The band has room for :data:`LEGEND_LINES`
    lines whatever is written, so overlays of one image line up."""
    lines = _flag_lines(result)
    regions = [_first_region(lm) for lm in result.landmarks]
    level = next((r['level'] for r in regions if r is not None), None)
    if level is not None:
        lines.append((f'blocky outline: {100 * level:.3g} % conformal '
                      'region', (255, 255, 255)))
    if invalid:
        lines.append(('INVALID (no answer, not drawn): ' + ', '.join(invalid),
                      _FLAGGED))
    (_, th), base = cv2.getTextSize('Ag', cv2.FONT_HERSHEY_SIMPLEX,
                                    geo.font_scale, geo.thick)
    step = th + base + 4
    band = np.zeros((max(LEGEND_LINES, len(lines)) * step + 8,
                     canvas.shape[1], 3), canvas.dtype)
    for i, (line, colour) in enumerate(lines):
        _outlined_text(band, geo, line, (8, 4 + th + i * step), colour)
    return np.concatenate([canvas, band], axis=0)


def draw_overlay(image_gray_uint8: np.ndarray,
                 result,
                 out_path: str,
                 levels: Sequence[float] = CONTOUR_LEVELS,
                 show_names: bool = False) -> np.ndarray:
    """Draws landmarks, probability contours and ERE on an X-ray.

    Each landmark gets its probability contours at ``levels`` of its map's
    maximum (thin to thick), the outline of its conformal region at the
    first coverage level when the result has regions (a thin, slightly
    transparent line along the heatmap pixels' edges, holes included, see
    :class:`~mmchh.apis.LandmarkResult`), a cross at the predicted point
    and a label ``index: ERE`` (mm with spacing, else image pixels; labels
    that would overlap are moved down); a flagged landmark's label ends
    with why (``flag_reasons``: ``ERE``, ``implausible`` -- off the shape
    the other landmarks give -- or ``ERE+implausible``). Flagged landmarks
    are orange-red, unflagged ones green, and landmarks that cannot be
    judged (no threshold or no spacing) cyan. Invalid landmarks (``valid``
    False: the model gave no answer) have no position: nothing is drawn
    for them, and the legend lists them as ``INVALID: name, ...`` in
    orange-red. The legend is a black band under the X-ray: the colour
    key, what the ERE flag rests on (``result.flag_status``: e.g. ``flag:
    ERE > 1.42 mm [1.1, 1.9], 4 images`` or ``ERE flags off: 2 calibration
    images (min 3)``), what the configuration flag rests on
    (``result.configuration_status``: e.g. ``implausible: > 3.03 sigma
    off the shape (alpha 0.01)``, the shape the other landmarks give, or
    ``implausible: not fitted (no configuration model)``), the region
    level and the invalid landmarks.

    Args:
        image_gray_uint8 (np.ndarray): (H, W) uint8 image the result was
            predicted on (e.g. from :func:`mmchh.apis.load_xray`).
        result (LandmarkResult): From ``predict_landmarks``; contours need
            ``return_heatmaps=True`` (without heatmaps only points, region
            outlines and text are drawn).
        out_path (str): PNG to write (atomically: temp name + rename).
        levels (Sequence[float]): Contour levels as fractions of the max.
        show_names (bool): Also write each landmark's name.

    Returns:
        np.ndarray: The (H' + band, W', 3) BGR overlay that was written
        (the magnified X-ray, then the legend band).

    Note:
        Contour points found in heatmap space are mapped to image pixels
        by the result's frame (``result.frame.heatmap_to_image``: the
        codec's grid, then the mapping MMPose uses for keypoints).
        Small images are upscaled (nearest) to >= 768 px on the long side
        so the text stays readable; coordinates are scaled accordingly.
    """
    canvas, geo = _grey_canvas(image_gray_uint8)
    drawn = [lm for lm in result.landmarks if _has_position(lm)]
    invalid = [lm['name'] for lm in result.landmarks
               if not _has_position(lm)]
    # regions first, under the contours, crosses and text
    _draw_regions(canvas, geo, drawn)
    labels = [
        _draw_landmark(canvas, geo, result, lm, levels, show_names)
        for lm in drawn
    ]
    # text last, on top of every contour
    _write_labels(canvas, geo, labels)
    canvas = _legend_band(canvas, geo, result, invalid)
    _atomic_png(canvas, out_path)
    return canvas
