# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Plane geometry the synthetic anatomy is drawn with.

Points and vectors are float64 ``(x, y)`` arrays in image axes (x right,
y down). Contours are Hermite splines through knots whose tangents may be
pinned, so that a landmark knot is the extreme point its name promises.
"""
import math

import numpy as np

__all__ = [
    'direction', 'ellipse', 'knot', 'perp', 'rounded_box', 'spline', 'tooth',
    'unit', 'vec'
]


def vec(x, y):
    """A 2D point or vector ``(x, y)`` as a float64 array."""
    return np.array([x, y], dtype=np.float64)


def unit(vector):
    """``vector`` scaled to length 1."""
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


def perp(vector):
    """Rotates by +90 degrees in image axes (x right, y down)."""
    return np.array([-vector[1], vector[0]], dtype=np.float64)


def direction(deg_from_x):
    """Unit vector at an angle measured from +x towards +y (down)."""
    rad = math.radians(deg_from_x)
    return vec(math.cos(rad), math.sin(rad))


def knot(point, tangent=None, tangent_out=None):
    """A contour knot; ``tangent_out`` differs from ``tangent`` at corners."""
    tin = None if tangent is None else unit(tangent)
    tout = tin if tangent_out is None else unit(tangent_out)
    return (np.asarray(point, dtype=np.float64), tin, tout)


def spline(knots, closed=False, tension=0.8):
    """Cubic Hermite curve through knots.

    Knots with a given tangent keep it exactly (that is what makes a
    landmark knot the extreme point of its contour, e.g. pogonion has a
    vertical tangent); the others get a Catmull-Rom tangent. The tangent
    length is ``tension`` times the chord, which keeps each coordinate
    monotone between knots whose tangents agree with the chord.

    Returns:
        np.ndarray: (M, 2) points along the curve, knots included.
    """
    pts = [k[0] for k in knots]
    n = len(knots)
    tin, tout = [], []
    for i, (p, ti, to) in enumerate(knots):
        if ti is None:
            prev = pts[i - 1] if (i > 0 or closed) else p
            nxt = pts[(i + 1) % n] if (i < n - 1 or closed) else p
            t = unit(nxt - prev)
            ti = to = t
        tin.append(ti)
        tout.append(to)
    out = []
    pairs = n if closed else n - 1
    for i in range(pairs):
        j = (i + 1) % n
        p0, p1 = pts[i], pts[j]
        chord = float(np.linalg.norm(p1 - p0))
        m0, m1 = tout[i] * chord * tension, tin[j] * chord * tension
        # Fritsch-Carlson limit: a tangent component more than 3x the
        # chord's (same sign) would overshoot past the knot and move the
        # extreme point of the contour off the landmark
        delta = p1 - p0
        lim = 3.0 * np.abs(delta)
        same0, same1 = m0 * delta > 0, m1 * delta > 0
        m0 = np.where(same0, np.clip(m0, -lim, lim), m0)
        m1 = np.where(same1, np.clip(m1, -lim, lim), m1)
        steps = int(min(max(chord / 6.0, 6), 80))
        s = np.arange(steps, dtype=np.float64)[:, None] / steps
        s2, s3 = s * s, s * s * s
        out.append((2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * m0 +
                   (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * m1)
    if not closed:
        out.append(pts[-1][None])
    return np.concatenate(out)


def ellipse(center, ax, ay, start=0.0, stop=360.0, steps=64):
    """Points on an axis-aligned ellipse, angles in degrees (y down)."""
    t = np.radians(np.linspace(start, stop, steps))
    return np.stack([center[0] + ax * np.cos(t), center[1] + ay * np.sin(t)],
                    axis=1)


def rounded_box(center, half_w, half_h, axis, radius_frac=0.35, steps=8):
    """A rounded rectangle whose long side follows ``axis`` (unit vector)."""
    r = radius_frac * min(half_w, half_h)
    quadrant, j = np.divmod(np.arange(4 * steps), steps)
    # corner arcs at quadrants 0..3, each from q*90 to q*90 + 90 degrees
    t = np.radians(quadrant * 90.0 + j * (90.0 / (steps - 1)))
    cx = np.where((quadrant == 0) | (quadrant == 3), 1.0, -1.0) * (half_w - r)
    cy = np.where(quadrant < 2, 1.0, -1.0) * (half_h - r)
    lx, ly = cx + r * np.cos(t), cy + r * np.sin(t)
    return (center + lx[:, None] * perp(axis)[None] +
            ly[:, None] * np.asarray(axis)[None])


def tooth(tip, apex, max_half_width, crown_frac=0.4, steps=16):
    """Outline of a single-rooted tooth from its incisal tip to its apex.

    The outline is a wedge widening from a sharp incisal tip (so the
    landmark is the outline's extreme point) to the cemento-enamel junction
    at ``crown_frac`` of the length, then a root tapering to the apex.

    Returns:
        np.ndarray: (M, 2) closed outline.
    """
    axis = unit(apex - tip)
    length = float(np.linalg.norm(apex - tip))
    side = perp(axis)
    f = np.linspace(0.0, 1.0, steps)
    crown = np.clip(f / crown_frac, 0, 1)**0.6
    root_len = max(1.0 - crown_frac, 1e-6)
    root = 1.0 - 0.8 * np.clip((f - crown_frac) / root_len, 0, 1)**1.6
    hw = max_half_width * np.where(f < crown_frac, crown, root)
    along = tip + (f * length)[:, None] * axis
    one = along + hw[:, None] * side
    other = along - hw[:, None] * side
    return np.concatenate([one, other[::-1][:-1]])
