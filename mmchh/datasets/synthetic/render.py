# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""From full-size contours to a small grey radiograph: pose and pixels."""
import math

import cv2
import numpy as np

from .anatomy import FULL_H, FULL_W
from .geometry import vec

__all__ = ['BACKGROUND', 'NOISE_STD', 'pose_matrix', 'render_image']

#: Grey level of air, before the film response.
BACKGROUND = 16.0
#: Standard deviation of the film grain, in grey levels.
NOISE_STD = 3.0


def pose_matrix(rng, image_size):
    """Random similarity pose composed with the resize to ``image_size``.

    Returns:
        tuple: (2x2 linear part, translation) mapping full-size pixel
        coordinates to pixel coordinates of the output image.
    """
    w, h = image_size
    angle = math.radians(float(np.clip(rng.normal(0, 2.5), -6, 6)))
    # mean 1.05: the heads then span x ~ 500-1820, y ~ 850-2300 in a
    # full-size image, like the real ISBI landmarks
    scale = float(np.clip(rng.normal(1.05, 0.035), 0.96, 1.14))
    shift = np.clip(rng.normal(0, 30, 2), -80, 80)
    c, s = math.cos(angle), math.sin(angle)
    rot = scale * np.array([[c, -s], [s, c]])
    centre = vec((FULL_W - 1) / 2, (FULL_H - 1) / 2)
    # pixel centres: full-size pixel i covers [i - .5, i + .5]
    resize = np.diag([w / FULL_W, h / FULL_H])
    lin = resize @ rot
    off = resize @ (centre + shift - rot @ centre + 0.5) - 0.5
    return lin, off


def render_image(ops, lin, off, rng, image_size):
    """Draws the ops (full-size coordinates) into an 8-bit image.

    Args:
        ops (list[tuple]): ``(points, value, thickness)`` from
            :func:`~.drawing.draw_head`.
        lin (np.ndarray): (2, 2) linear part of the pose.
        off (np.ndarray): (2,) translation of the pose.
        rng (np.random.Generator): source of the tissue mottle, exposure
            ramp and grain.
        image_size (tuple[int, int]): output (W, H).

    Returns:
        np.ndarray: (H, W) uint8 image.
    """
    w, h = image_size
    px = math.sqrt(abs(np.linalg.det(lin)))  # output px per full-size px
    acc = np.full((h, w), BACKGROUND, np.float32)
    for pts, value, thickness in ops:
        p = pts @ lin.T + off
        if thickness is None:
            pad = 2.0
        else:
            width = max(1, int(round(abs(thickness) * px)))
            pad = width / 2.0 + 2.0
        x0 = max(int(math.floor(p[:, 0].min() - pad)), 0)
        y0 = max(int(math.floor(p[:, 1].min() - pad)), 0)
        x1 = min(int(math.ceil(p[:, 0].max() + pad)) + 1, w)
        y1 = min(int(math.ceil(p[:, 1].max() + pad)) + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue  # entirely outside the image
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        # 4 fractional bits: sub-pixel placement keeps thin structures
        # where the landmarks say they are, even at 160 x 200
        ip = np.round((p - (x0, y0)) * 16).astype(np.int32)
        if thickness is None:
            cv2.fillPoly(mask, [ip], 255, cv2.LINE_AA, shift=4)
        else:
            cv2.polylines(mask, [ip],
                          thickness < 0,
                          255,
                          width,
                          cv2.LINE_AA,
                          shift=4)
        acc[y0:y1,
            x0:x1] += mask.astype(np.float32) * np.float32(value / 255.0)
    # mottled tissue density: a coarse random field (fixed grid, so it is
    # the same at every image size) scaled by how much tissue is there
    field = cv2.resize(rng.normal(0, 1, (25, 20)).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    acc += field * np.float32(6.0 / 100.0) * (acc - np.float32(BACKGROUND))
    # film response: slight compression of the bright end
    acc = 255.0 * (1.0 - np.exp(-acc / 190.0)) / (1.0 - math.exp(-255 / 190))
    sigma = max(0.5, 2.0 * px)
    acc = cv2.GaussianBlur(acc, (0, 0), sigma)
    # uneven exposure, then grain after the blur so it stays sharp
    gx, gy = rng.normal(0, 0.05, 2)
    ramp_x = (np.arange(w, dtype=np.float32) / w - 0.5) * np.float32(gx)
    ramp_y = (np.arange(h, dtype=np.float32) / h - 0.5) * np.float32(gy)
    acc *= 1.0 + ramp_y[:, None] + ramp_x[None, :]
    acc += rng.standard_normal(
        (h, w), dtype=np.float32) * np.float32(NOISE_STD)
    return np.clip(np.rint(acc), 0, 255).astype(np.uint8)
