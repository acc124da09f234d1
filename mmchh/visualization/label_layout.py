# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Where an overlay's labels go: inside the canvas, never over another
label or a reserved area (the legend), as close to their landmark as the
crowd allows, with a leader line when a label had to move away.

Pure geometry (no drawing): boxes are ``(x0, y0, x1, y1)`` canvas pixels,
half-open (a box covers ``x0 <= x < x1``, ``y0 <= y < y1``), so two boxes
that only touch do not intersect.

The algorithm, greedy by priority (the caller's order: flagged landmarks
first, then by decreasing ERE, so the labels that matter most get the
best places):

1. the eight positions around the point (upper right, lower right, upper
   left, lower left, ``gap`` pixels from it along both axes; then right,
   left, above, below, clear of the point's mark);
2. else rings of positions farther out (a spiral: radius growing by one
   label height, ever more positions per ring), the nearest free one;
3. else a scan of the whole canvas for the free position nearest the
   point.

A position must lie inside the canvas and intersect no label placed before
and no reserved box. Among those the cheapest wins: the eight first ones
cost nothing (in their order), one farther out its distance plus two label
heights; covering another landmark's mark costs :data:`POINT_PENALTY`
label heights more, and a leader line through a placed label
:data:`LEADER_PENALTY` more, so labels keep off the crosses and leaders
off the labels when they can. A label placed beyond the first
ring gets a leader line from its point to the nearest point of its box.
A label that fits nowhere (a canvas smaller than the labels) is left out:
``box`` None.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = ['LabelRequest', 'LabelPlacement', 'place_labels',
           'boxes_intersect', 'POINT_PENALTY', 'LEADER_PENALTY']

Box = Tuple[float, float, float, float]

#: What covering another landmark's mark costs, in label heights of
#: distance.
POINT_PENALTY = 3.0

#: What a leader line through another label costs, in label heights.
LEADER_PENALTY = 2.0

# the eight first positions, in order of preference: (dx, dy) of the box's
# corner from the point, in units of (gap, gap) for the diagonal ones, of
# (clear, clear) for the ones along an axis (clear of the point's cross),
# and of (w, h)
_FIRST_RING = (
    ((1, -1), (0, -1), False),  # upper right
    ((1, 1), (0, 0), False),  # lower right
    ((-1, -1), (-1, -1), False),  # upper left
    ((-1, 1), (-1, 0), False),  # lower left
    ((1, 0), (0, -0.5), True),  # right, centred
    ((-1, 0), (-1, -0.5), True),  # left, centred
    ((0, -1), (-0.5, -1), True),  # above
    ((0, 1), (-0.5, 0), True),  # below
)


@dataclass(frozen=True)
class LabelRequest:
    """One label to place.

    Attributes:
        anchor (tuple[float, float]): The point it labels (canvas pixels).
        size (tuple[float, float]): Its box's (width, height), pixels.
    """
    anchor: Tuple[float, float]
    size: Tuple[float, float]


@dataclass(frozen=True)
class LabelPlacement:
    """Where one label went.

    Attributes:
        box (tuple | None): ``(x0, y0, x1, y1)``, None when it fitted
            nowhere.
        leader (tuple | None): ``((x, y), (x, y))``: from the point to the
            nearest point of the box, when the label was moved beyond the
            first ring; else None.
    """
    box: Optional[Box]
    leader: Optional[Tuple[Tuple[float, float], Tuple[float, float]]]


def boxes_intersect(a: Box, b: Box) -> bool:
    """Whether two half-open boxes share an area (touching is not)."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _free(cands: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """(N,) mask of the candidate boxes (N, 4) that intersect none of
    ``blocked`` (M, 4)."""
    if not len(blocked):
        return np.ones(len(cands), bool)
    c, b = cands[:, None, :], blocked[None, :, :]
    hit = ((c[..., 0] < b[..., 2]) & (b[..., 0] < c[..., 2])
           & (c[..., 1] < b[..., 3]) & (b[..., 1] < c[..., 3]))
    return ~hit.any(axis=1)


def _hits(cands: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) how many of ``boxes`` (M, 4) each candidate box intersects."""
    if not len(boxes):
        return np.zeros(len(cands), int)
    c, b = cands[:, None, :], boxes[None, :, :]
    hit = ((c[..., 0] < b[..., 2]) & (b[..., 0] < c[..., 2])
           & (c[..., 1] < b[..., 3]) & (b[..., 1] < c[..., 3]))
    return hit.sum(axis=1)


def _leaders_crossing(cands: np.ndarray, x: float, y: float,
                      boxes: np.ndarray, samples: int = 12) -> np.ndarray:
    """(N,) how many of ``boxes`` the leader line from the point to each
    candidate would run through (sampled along the line)."""
    if not len(boxes):
        return np.zeros(len(cands), int)
    nx = np.clip(x, cands[:, 0], cands[:, 2])
    ny = np.clip(y, cands[:, 1], cands[:, 3])
    t = np.linspace(0.0, 1.0, samples)[None, :]
    px = (x + (nx[:, None] - x) * t)[:, :, None]
    py = (y + (ny[:, None] - y) * t)[:, :, None]
    b = boxes[None, None, :, :]
    inside = ((b[..., 0] <= px) & (px < b[..., 2]) & (b[..., 1] <= py)
              & (py < b[..., 3]))
    return inside.any(axis=1).sum(axis=1)


def _first_ring(x, y, w, h, gap, clear) -> np.ndarray:
    rows = []
    for (gx, gy), (fx, fy), axis in _FIRST_RING:
        d = clear if axis else gap
        x0, y0 = x + gx * d + fx * w, y + gy * d + fy * h
        rows.append([x0, y0, x0 + w, y0 + h])
    return np.array(rows, np.float64)


def _spiral(x, y, w, h, gap, rings: int) -> np.ndarray:
    """Boxes on rings around the point: ring ``r`` has its boxes' near
    edges ``gap + r h`` from the point, ``8 r`` of them."""
    out = []
    for r in range(1, rings + 1):
        n = 8 * r
        angle = 2 * np.pi * np.arange(n) / n
        dx, dy = np.cos(angle), np.sin(angle)
        reach = gap + r * h
        # the box's centre pushed out so its near edge is `reach` away
        cx = x + dx * (reach + w / 2)
        cy = y + dy * (reach + h / 2)
        out.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2,
                             cy + h / 2], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 4))


def _grid(w, h, width, height) -> np.ndarray:
    """Every box of size (w, h) on a half-height grid inside the canvas."""
    step = max(1.0, h / 2)
    xs = np.arange(0.0, width - w + 1e-9, step)
    ys = np.arange(0.0, height - h + 1e-9, step)
    if not len(xs) or not len(ys):
        return np.zeros((0, 4))
    gx, gy = np.meshgrid(xs, ys)
    gx, gy = gx.ravel(), gy.ravel()
    return np.stack([gx, gy, gx + w, gy + h], axis=1)


def _distance(boxes: np.ndarray, x: float, y: float) -> np.ndarray:
    """(N,) distance from the point to the nearest point of each box."""
    dx = np.maximum(np.maximum(boxes[:, 0] - x, x - boxes[:, 2]), 0)
    dy = np.maximum(np.maximum(boxes[:, 1] - y, y - boxes[:, 3]), 0)
    return np.hypot(dx, dy)


def _leader(box: Box, x: float, y: float):
    """The segment from the point to the nearest point of ``box``."""
    nx = min(max(x, box[0]), box[2])
    ny = min(max(y, box[1]), box[3])
    return ((x, y), (nx, ny))


def _choose(cands, x, y, h, blocked, marks, canvas, first):
    """The best candidate (row of ``cands``) or None; ``first`` marks the
    first-ring rows, preferred in their order."""
    width, height = canvas
    inside = ((cands[:, 0] >= 0) & (cands[:, 1] >= 0)
              & (cands[:, 2] <= width) & (cands[:, 3] <= height))
    ok = inside & _free(cands, blocked)
    if not ok.any():
        return None
    cands, idx = cands[ok], np.nonzero(ok)[0]
    # the first ring in its order of preference; farther out, the nearest
    cost = np.where(first[idx], 0.0, _distance(cands, x, y) + 2.0 * h)
    cost = cost + idx * 1e-6  # ties: the earlier candidate
    cost = cost + POINT_PENALTY * h * _hits(cands, marks)
    moved = ~first[idx]
    if moved.any():
        cost[moved] += LEADER_PENALTY * h * _leaders_crossing(
            cands[moved], x, y, blocked)
    return int(idx[np.argmin(cost)])


def place_labels(requests: Sequence[LabelRequest],
                 canvas_size: Tuple[float, float],
                 reserved: Sequence[Box] = (),
                 points: Sequence[Tuple[float, float]] = (),
                 gap: float = 6.0,
                 mark: float = 0.0,
                 rings: int = 12) -> List[LabelPlacement]:
    """Places labels greedily, in the order given (highest priority first).

    Args:
        requests (Sequence[LabelRequest]): The labels, most important first.
        canvas_size (tuple): (width, height) of the area labels may use.
        reserved (Sequence[tuple]): Boxes no label may intersect (e.g. a
            legend drawn over the canvas).
        points (Sequence[tuple]): Every landmark's point; a label avoids
            covering their marks where it can.
        gap (float): Distance from the point to a label of the first ring
            (along both axes for the diagonal positions).
        mark (float): Half the size of the mark drawn at each point (a
            cross's arm): the positions beside, above and below the point
            are ``mark + gap`` from it, and a label avoids the square of
            half-side ``mark`` around other points.
        rings (int): Rings of the spiral search before the canvas scan.

    Returns:
        list[LabelPlacement]: One per request, in the same order. Placed
        boxes lie inside the canvas and intersect no other placed box and
        no reserved box.
    """
    blocked = [tuple(map(float, b)) for b in reserved]
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    r = max(float(mark), 0.5)
    marks_all = np.concatenate([pts - r, pts + r], axis=1)
    out = []
    for req in requests:
        x, y = map(float, req.anchor)
        w, h = map(float, req.size)
        near = _first_ring(x, y, w, h, gap, gap + mark)
        cands = np.concatenate([near, _spiral(x, y, w, h, gap + mark,
                                              rings)])
        first = np.arange(len(cands)) < len(near)
        blocked_arr = np.asarray(blocked, np.float64).reshape(-1, 4)
        # a label never counts its own mark as covered
        marks = marks_all[np.hypot(pts[:, 0] - x, pts[:, 1] - y) > 0.5]
        i = _choose(cands, x, y, h, blocked_arr, marks, canvas_size, first)
        if i is None:
            cands = _grid(w, h, *canvas_size)
            first = np.zeros(len(cands), bool)
            i = _choose(cands, x, y, h, blocked_arr, marks, canvas_size,
                        first) if len(cands) else None
        if i is None:
            out.append(LabelPlacement(None, None))
            continue
        box = tuple(float(v) for v in cands[i])
        blocked.append(box)
        out.append(LabelPlacement(box, None if first[i] else
                                  _leader(box, x, y)))
    return out
