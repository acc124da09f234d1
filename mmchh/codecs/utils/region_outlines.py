# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Outlines of a region of heatmap pixels, exact to the pixel squares.

A conformal region (:func:`~mmchh.codecs.utils.conformal_region_masks`) is a
set of heatmap pixels. Its outline is the boundary of the union of their
squares: on the codec's grid (:mod:`.heatmap_grid`) an integer heatmap
coordinate is a pixel centre and pixel ``(x, y)`` covers the square
``[x - 0.5, x + 0.5] x [y - 0.5, y + 0.5]`` (in model-input pixels the
block ``[x * sx - 0.5, (x + 1) * sx - 0.5)``: the same square mapped by
:func:`~mmchh.codecs.utils.heatmap_to_input`). So every vertex lies on a
pixel corner (half-integers), the outline holds every region pixel's centre
and no other, and the area it encloses is the pixel count exactly.

Rings and holes: the outline is a list of closed rings (the last vertex
joins the first; it is not repeated). Each ring keeps the region on its
left in ``(x, y)`` coordinates taken as a right-handed plane, so its signed
shoelace area (:func:`ring_area`) is positive for an outer boundary and
negative for the boundary of a hole; the signed areas of all rings add up
to the pixel count. Pixels that touch only at a corner are not joined
there (the region is taken 4-connected, its complement 8-connected): the
boundary goes round each of them, so rings (or two stretches of one ring)
may share such a corner but never cross. Only corners where the boundary
turns are kept (collinear vertices are dropped).

Any map of the plane with positive x and y scales (heatmap -> input ->
image, :class:`~mmchh.codecs.utils.HeatmapFrame`) keeps this orientation and
multiplies every area by the same factor ``|sx * sy|``.
"""
from typing import List

import numpy as np

__all__ = ['region_outlines', 'ring_area']

# directions of a boundary edge: +x, +y, -x, -y (left turn = d + 1)
_STEPS = np.array([(1, 0), (0, 1), (-1, 0), (0, -1)], dtype=np.int64)


def _boundary_edges(mask: np.ndarray):
    """Every directed boundary edge of the pixel squares.

    Returns:
        tuple: ``start`` (E, 2) int64 corner ``(i, j)`` (corner ``(i, j)``
        is the point ``(i - 0.5, j - 0.5)``) and ``direction`` (E,) int64
        in 0..3 (:data:`_STEPS`); the region lies left of each edge.
    """
    h, w = mask.shape
    pad = np.zeros((h + 2, w + 2), dtype=bool)
    pad[1:-1, 1:-1] = mask
    inner = pad[1:-1, 1:-1]
    # an edge of a region pixel whose neighbour across it is outside
    sides = (
        (pad[:-2, 1:-1], (0, 0)),  # top, neighbour y - 1: +x from (i, j)
        (pad[1:-1, 2:], (1, 0)),  # right, x + 1: +y from (i + 1, j)
        (pad[2:, 1:-1], (1, 1)),  # bottom, y + 1: -x from (i + 1, j + 1)
        (pad[1:-1, :-2], (0, 1)),  # left, x - 1: -y from (i, j + 1)
    )
    starts, dirs = [], []
    for d, (neighbour, (di, dj)) in enumerate(sides):
        y, x = np.nonzero(inner & ~neighbour)
        starts.append(np.stack((x + di, y + dj), axis=1))
        dirs.append(np.full(len(x), d, dtype=np.int64))
    return np.concatenate(starts).astype(np.int64), np.concatenate(dirs)


def _next_edges(start: np.ndarray, direction: np.ndarray,
                shape) -> np.ndarray:
    """For each edge, the edge that continues its ring at its end corner:
    a left turn if there is one (so pixels touching only at a corner stay
    apart), else straight on, else a right turn."""
    h, w = shape
    cols = w + 1
    # slot (corner, direction) -> edge leaving that corner that way
    slot = np.full((h + 1) * cols * 4, -1, dtype=np.int64)
    slot[(start[:, 1] * cols + start[:, 0]) * 4 + direction] = np.arange(
        len(start))
    end = start + _STEPS[direction]
    corner = (end[:, 1] * cols + end[:, 0]) * 4
    nxt = np.full(len(start), -1, dtype=np.int64)
    for turn in (1, 0, 3):  # left, straight, right
        cand = slot[corner + (direction + turn) % 4]
        nxt = np.where(nxt < 0, cand, nxt)
    if (nxt < 0).any():  # cannot happen for a boundary of pixel squares
        raise RuntimeError('region_outlines: an open boundary edge')
    return nxt


def region_outlines(mask: np.ndarray) -> List[np.ndarray]:
    """The outline of a region of heatmap pixels, as closed rings.

    Args:
        mask (np.ndarray): (H, W) bool, True for the region's pixels
            (``[y, x]``, as the maps).

    Returns:
        list[np.ndarray]: One (N, 2) float64 array of ``(x, y)`` vertices
        per ring, in heatmap pixel coordinates (half-integers: the pixel
        corners); outer boundaries have a positive :func:`ring_area`,
        holes a negative one (see the module docstring). An empty mask
        gives ``[]``.

    Raises:
        ValueError: If ``mask`` is not a 2-D array.

    Note:
        Shapes: ``mask`` (H, W); each ring (N, 2) with N >= 4, ``(x, y)``.
        ``sum(ring_area(r) for r in rings) == mask.sum()``.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError('region_outlines: mask must have shape (H, W); '
                         f'got {mask.shape}')
    mask = mask.astype(bool, copy=False)
    start, direction = _boundary_edges(mask)
    if not len(start):
        return []
    nxt = _next_edges(start, direction, mask.shape)
    seen = np.zeros(len(start), dtype=bool)
    rings = []
    for first in range(len(start)):
        if seen[first]:
            continue
        corners, e = [], first
        while not seen[e]:
            seen[e] = True
            n = nxt[e]
            if direction[n] != direction[e]:  # a turn: a vertex
                corners.append(start[n])
            e = n
        rings.append(np.asarray(corners, dtype=np.float64) - 0.5)
    return rings


def ring_area(ring: np.ndarray) -> float:
    """Signed shoelace area of a closed ring (positive when it turns
    left, i.e. counter-clockwise in a right-handed ``(x, y)`` plane).

    Args:
        ring (np.ndarray): (N, 2) vertices ``(x, y)``; the last joins the
            first.

    Returns:
        float: ``0.5 * sum(x_i * y_{i+1} - x_{i+1} * y_i)``, float64.
    """
    ring = np.asarray(ring, dtype=np.float64)
    if len(ring) < 3:
        return 0.0
    x, y = ring[:, 0], ring[:, 1]
    cross = np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1])
    return float(0.5 * (cross + x[-1] * y[0] - x[0] * y[-1]))
