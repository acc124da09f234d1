# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Overlays of predicted landmarks with their probability contours and
conformal regions.

MMPose's ``PoseLocalVisualizer`` draws keypoints and skeletons but not the
contours of a probability map, which is what shows a clinician *where* the
model hesitates, nor a region that holds the landmark with a stated
probability; so this is a plain OpenCV drawing. Where the labels go is
:mod:`~mmchh.visualization.label_layout`'s; sizes and colours are
:mod:`~mmchh.visualization.overlay_style`'s; the band under the X-ray is
:mod:`~mmchh.visualization.overlay_legend`'s.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from mmchh.utils.io import atomic_write_bytes
from .label_layout import LabelRequest, place_labels
from .overlay_legend import (LEGEND_LINES, draw_legend_band,
                             legend_band_height, legend_lines)
from .overlay_style import (CanvasStyle, canvas_geometry, grey_canvas,
                            landmark_colour, outlined_text)

__all__ = [
    'draw_overlay', 'overlay_layout', 'OverlayLayout', 'PlacedLabel',
    'label_ids', 'CONTOUR_LEVELS', 'LEGEND_LINES', 'REASON_LABELS',
    'REGION_ALPHA', 'OVERLAY_SHOWS', 'NAME_LABEL_MAX_CHARS'
]

#: Contour levels, as fractions of each map's maximum.
CONTOUR_LEVELS = (0.05, 0.25, 0.5)

#: Opacity of the conformal region outlines (drawn under everything else).
REGION_ALPHA = 0.7

#: How a flagged landmark's label names each reason it is flagged for.
REASON_LABELS = dict(ere='ERE', implausible='implausible')

#: What an overlay may show: ``all`` (every landmark: conformal region
#: outline, probability contours, cross and label), ``flagged`` (the same,
#: for the flagged landmarks only), ``regions`` (every landmark's region
#: outline, cross and label, no contours), ``points`` (crosses and labels
#: only).
OVERLAY_SHOWS = ('all', 'flagged', 'regions', 'points')

# the legend's line for each show but 'all'
_SHOW_NOTES = dict(
    flagged='showing the flagged landmarks only ({n} of {k})',
    regions='showing regions, points and labels (no contours)',
    points='showing points and labels only (no contours, no regions)')

#: Labels carry landmark names when every name has at most this many
#: characters; else 1-based numbers, with the legend naming each number.
NAME_LABEL_MAX_CHARS = 12


@dataclass(frozen=True)
class PlacedLabel:
    """One label of an overlay.

    Attributes:
        index (int): The landmark's index (0-based, model order).
        text (str): What the label says.
        box (tuple | None): ``(x0, y0, x1, y1)`` canvas pixels (half-open);
            None when no room was found (the legend says so).
        leader (tuple | None): ``((x, y), (x, y))`` line from the landmark
            to its moved label; None when the label sits beside it.
        colour (tuple): BGR.
    """
    index: int
    text: str
    box: Optional[Tuple[float, float, float, float]]
    leader: Optional[tuple]
    colour: Tuple[int, int, int]


@dataclass(frozen=True)
class OverlayLayout:
    """What an overlay draws where, before any pixel is drawn.

    Attributes:
        style (CanvasStyle): Zoom, text scale and line widths.
        image_size (tuple[int, int]): (width, height) of the X-ray part of
            the canvas (the area labels may use).
        drawn (list[int]): Indices of the landmarks drawn, in drawing
            order (flagged last, so on top).
        labels (list[PlacedLabel]): In placement order (flagged first,
            then by decreasing ERE).
        legend_box (tuple): ``(x0, y0, x1, y1)`` of the legend band under
            the X-ray.
        legend (list[tuple]): The band's ``(text, colour)`` lines.
        show (str): One of :data:`OVERLAY_SHOWS`.
    """
    style: CanvasStyle
    image_size: Tuple[int, int]
    drawn: List[int]
    labels: List[PlacedLabel]
    legend_box: Tuple[int, int, int, int]
    legend: List[tuple]
    show: str


def _has_position(lm: dict) -> bool:
    return not (lm.get('valid') is False or lm.get('x') is None
                or lm.get('y') is None)


def _first_region(lm: dict):
    """The landmark's region at the first coverage level, or None."""
    regions = lm.get('regions')
    return regions[0] if regions else None


def _ere(lm: dict) -> float:
    value = lm.get('ere_mm') if lm.get('ere_mm') is not None else \
        lm.get('ere_px')
    return float(value) if value is not None else -np.inf


def label_ids(names: Sequence[str], show_names=None) -> Tuple[List[str], bool]:
    """What each landmark's label starts with, and whether those are
    numbers (the legend then names each).

    Args:
        names (Sequence[str]): The landmark names, model order.
        show_names (bool | None): True: names; False: 1-based numbers;
            None: names when every one has at most
            :data:`NAME_LABEL_MAX_CHARS` characters, else numbers.

    Returns:
        tuple[list[str], bool]: The ids and whether they are numbers.
    """
    if show_names is None:
        show_names = all(len(str(n)) <= NAME_LABEL_MAX_CHARS for n in names)
    if show_names:
        return [str(n) for n in names], False
    return [str(k + 1) for k in range(len(names))], True


def _ere_unit(result) -> str:
    """``'mm'`` when every drawn ERE is in mm, else ``'px'`` (image
    pixels)."""
    return 'mm' if all(lm.get('ere_mm') is not None
                       for lm in result.landmarks if _has_position(lm)) \
        else 'px'


def _label_text(lm: dict, label_id: str, unit: str) -> str:
    """``id: ERE`` (the unit is the legend's), and for a flagged landmark
    why (``ERE``, ``implausible`` or ``ERE+implausible``): a sharp map in
    the wrong place has a small ERE, and the label must not read as if the
    ERE flagged it."""
    ere = lm['ere_mm'] if unit == 'mm' else lm['ere_px']
    text = f'{label_id}: {ere:.1f}'
    why = '+'.join(REASON_LABELS[r] for r in lm.get('flag_reasons') or ()
                   if r in REASON_LABELS)
    if lm.get('flagged') and why:
        text += f' {why}'
    return text


def _drawn_landmarks(result, show: str) -> List[int]:
    """Indices drawn under ``show``, in drawing order: not flagged, cannot
    judge, then flagged (on top)."""
    rank = {False: 0, None: 1, True: 2}
    keep = [k for k, lm in enumerate(result.landmarks) if _has_position(lm)
            and (show != 'flagged' or lm.get('flagged') is True)]
    return sorted(keep, key=lambda k: rank.get(
        result.landmarks[k].get('flagged'), 1))


def overlay_layout(image_shape: Sequence[int],
                   result,
                   show: str = 'all',
                   show_names: Optional[bool] = None) -> OverlayLayout:
    """Plans an overlay: which landmarks are drawn, every label's text and
    box (:func:`~mmchh.visualization.label_layout.place_labels`) and the
    legend band.

    Args:
        image_shape (Sequence[int]): (H, W) of the image drawn on.
        result (LandmarkResult): The prediction.
        show (str): One of :data:`OVERLAY_SHOWS`.
        show_names (bool | None): See :func:`label_ids`.

    Returns:
        OverlayLayout: The plan :func:`draw_overlay` draws.
    """
    if show not in OVERLAY_SHOWS:
        raise ValueError(f'show must be one of {", ".join(OVERLAY_SHOWS)}; '
                         f'got {show!r}')
    h, w = int(image_shape[0]), int(image_shape[1])
    (cw, ch), style = canvas_geometry(h, w)
    lms = result.landmarks
    ids, numbered = label_ids([lm['name'] for lm in lms], show_names)
    drawn = _drawn_landmarks(result, show)
    order = sorted(drawn, key=lambda k: (lms[k].get('flagged') is not True,
                                         -_ere(lms[k]), k))
    anchors = {k: tuple(style.canvas_xy([lms[k]['x'], lms[k]['y']]))
               for k in drawn}
    unit = _ere_unit(result)
    texts = {k: _label_text(lms[k], ids[k], unit) for k in drawn}
    placements = place_labels(
        [LabelRequest(anchors[k], style.text_box_size(texts[k]))
         for k in order], (cw, ch),
        points=[anchors[k] for k in drawn],
        gap=style.thick + 3, mark=6 * style.thick + style.thick, rings=16)
    labels = [PlacedLabel(k, texts[k], p.box, p.leader,
                          landmark_colour(lms[k].get('flagged')))
              for k, p in zip(order, placements)]
    region = next((_first_region(lms[k]) for k in drawn
                   if _first_region(lms[k]) is not None), None)
    lines = legend_lines(
        result, f'{"number" if numbered else "name"}: ERE in {unit}',
        region['level'] if region is not None and show != 'points' else None,
        [lm['name'] for lm in lms if not _has_position(lm)],
        [(ids[k], lms[k]['name']) for k in sorted(drawn)] if numbered else [],
        [ids[lab.index] for lab in labels if lab.box is None], style, cw,
        _SHOW_NOTES.get(show, '').format(
            n=len(drawn), k=sum(_has_position(lm) for lm in lms)))
    legend_box = (0, ch, cw, ch + legend_band_height(style, len(lines)))
    return OverlayLayout(style, (cw, ch), drawn, labels, legend_box, lines,
                         show)


def _contours_image(result, k: int, levels: Sequence[float]):
    """Contours (list of (level, (N, 2) float arrays, image pixels)) of
    map k."""
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


def _draw_regions(canvas: np.ndarray, style: CanvasStyle,
                  landmarks: list) -> None:
    """Outlines each landmark's first-level conformal region (its rings,
    holes included) with a thin line in the landmark's colour, blended at
    :data:`REGION_ALPHA` so the bone under it stays visible."""
    layer = canvas.copy()
    drawn = False
    width = max(1, style.thick - 1)
    for lm in landmarks:
        region = _first_region(lm)
        if region is None:
            continue
        rings = [
            style.fixed(np.asarray(ring, np.float64)).reshape(-1, 1, 2)
            for ring in region['outline'] if len(ring)
        ]
        cv2.polylines(layer, rings, True, landmark_colour(lm.get('flagged')),
                      width, cv2.LINE_AA, style.shift)
        drawn = drawn or bool(rings)
    if drawn:
        cv2.addWeighted(layer, REGION_ALPHA, canvas, 1 - REGION_ALPHA, 0,
                        dst=canvas)


def _draw_landmark(canvas: np.ndarray, style: CanvasStyle, result, k: int,
                   levels: Sequence[float]) -> None:
    """Draws one landmark's contours (when ``levels``) and cross."""
    lm = result.landmarks[k]
    colour = landmark_colour(lm.get('flagged'))
    thick, mult = style.thick, style.mult
    if levels and getattr(result, 'heatmaps', None) is not None:
        for level, pts in _contours_image(result, k, levels):
            width = thick + sorted(levels).index(level) // 2
            cv2.polylines(canvas, [style.fixed(pts).reshape(-1, 1, 2)], True,
                          colour, width, cv2.LINE_AA, style.shift)
    cx, cy = style.fixed([lm['x'], lm['y']])
    arm = int(6 * thick * mult)
    for a, b in (((cx - arm, cy), (cx + arm, cy)),
                 ((cx, cy - arm), (cx, cy + arm))):
        if thick > 1:  # a dark edge, where the line is wide enough
            cv2.line(canvas, a, b, (0, 0, 0), thick + 2, cv2.LINE_AA,
                     style.shift)
        cv2.line(canvas, a, b, colour, thick, cv2.LINE_AA, style.shift)


def _write_labels(canvas: np.ndarray, style: CanvasStyle,
                  labels: Sequence[PlacedLabel]) -> None:
    """Leader lines first (dark under the colour), then the texts, the
    first placed (flagged) last so they end on top."""
    width = max(1, style.thick - 1)
    for lab in labels:
        if lab.leader is not None:
            a, b = (tuple(int(round(v * style.mult)) for v in p)
                    for p in lab.leader)
            cv2.line(canvas, a, b, (0, 0, 0), width + 2, cv2.LINE_AA,
                     style.shift)
            cv2.line(canvas, a, b, lab.colour, width, cv2.LINE_AA,
                     style.shift)
    for lab in reversed(labels):
        if lab.box is not None:
            outlined_text(canvas, style, lab.text, lab.box[:2], lab.colour)


def draw_overlay(image_gray_uint8: np.ndarray,
                 result,
                 out_path: str,
                 levels: Sequence[float] = CONTOUR_LEVELS,
                 show_names: Optional[bool] = None,
                 show: str = 'all') -> np.ndarray:
    """Draws landmarks, probability contours, regions and ERE on an X-ray.

    Each landmark gets its probability contours at ``levels`` of its map's
    maximum (thin to thick), the outline of its conformal region at the
    first coverage level when the result has regions (a thin, slightly
    transparent line along the heatmap pixels' edges, holes included, see
    :class:`~mmchh.apis.LandmarkResult`), a cross at the predicted point
    and a label ``id: ERE`` (mm with spacing, else image pixels: the
    legend says which), ``id``
    the landmark's name, or its 1-based number when a name is long (see
    :func:`label_ids`; the legend then names each number). Labels are
    placed by :func:`~mmchh.visualization.label_layout.place_labels`:
    inside the X-ray, never over another label or the legend, flagged
    landmarks' first, then by decreasing ERE, with a leader line where a
    label had to move away from its point. A flagged landmark's label ends
    with why (``flag_reasons``: ``ERE``, ``implausible`` -- off the shape
    the other landmarks give -- or ``ERE+implausible``). Flagged landmarks
    are orange-red and drawn last (on top), unflagged ones green, and
    landmarks that cannot be judged (no threshold or no spacing) cyan.
    Invalid landmarks (``valid`` False: the model gave no answer) have no
    position: nothing is drawn for them, and the legend lists them as
    ``INVALID: name, ...`` in orange-red. The legend is a black band under
    the X-ray: the colour key, what the ERE flag rests on
    (``result.flag_status``: e.g. ``flag: ERE > 1.42 mm [1.1, 1.9], 4
    images`` or ``ERE flags off: 2 calibration images (min 3)``), what
    the configuration flag rests on (``result.configuration_status``),
    the region level, the numbers' names and the invalid landmarks.

    Args:
        image_gray_uint8 (np.ndarray): (H, W) uint8 image the result was
            predicted on (e.g. from :func:`mmchh.apis.load_xray`).
        result (LandmarkResult): From ``predict_landmarks``; contours need
            ``return_heatmaps=True`` (without heatmaps only points, region
            outlines and text are drawn).
        out_path (str): PNG to write (atomically: temp name + rename).
        levels (Sequence[float]): Contour levels as fractions of the max.
        show_names (bool | None): Labels by name (True), by 1-based number
            with the names in the legend (False), or by the rule of
            :func:`label_ids` (None).
        show (str): What to draw (:data:`OVERLAY_SHOWS`): ``'all'``;
            ``'flagged'``: only the flagged landmarks; ``'regions'``: no
            contours; ``'points'``: crosses and labels only.

    Returns:
        np.ndarray: The (H' + band, W', 3) BGR overlay that was written
        (the magnified X-ray, then the legend band).

    Note:
        Contour points found in heatmap space are mapped to image pixels
        by the result's frame (``result.frame.heatmap_to_image``: the
        codec's grid, then the mapping MMPose uses for keypoints).
        Small images are upscaled (nearest) to >= 768 px on the long side;
        text size and line widths grow with the canvas
        (:class:`~mmchh.visualization.overlay_style.CanvasStyle`).
    """
    layout = overlay_layout(np.shape(image_gray_uint8)[:2], result, show,
                            show_names)
    canvas, style = grey_canvas(image_gray_uint8)
    drawn = [result.landmarks[k] for k in layout.drawn]
    # regions first, under the contours, crosses and text
    if show != 'points':
        _draw_regions(canvas, style, drawn)
    for k in layout.drawn:
        _draw_landmark(canvas, style, result, k,
                       levels if show in ('all', 'flagged') else ())
    # text last, on top of every contour
    _write_labels(canvas, style, layout.labels)
    canvas = draw_legend_band(canvas, style, layout.legend)
    _atomic_png(canvas, out_path)
    return canvas
