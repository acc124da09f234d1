# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Zoomed crops of single landmarks for the review report.

A crop is a square window of the X-ray centred on the predicted point,
magnified to :data:`CROP_SIZE` pixels, with the landmark's first-level
conformal region outlined and the prediction marked (and, on a split with
ground truth, the true position). The window is wide enough to hold the
region, a few EREs and the true position, so a reviewer sees the
landmark's neighbourhood rather than a blur of pixels.
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    'CROP_SIZE', 'MAX_HALF_ERES', 'MIN_HALF_WIDTH', 'crop_half_width', 'crop_transform',
    'crop_view', 'landmark_crop'
]

#: Side of a crop, in pixels of the PNG.
CROP_SIZE = 192
#: The narrowest window (half its side, image pixels).
MIN_HALF_WIDTH = 8.0
#: The widest window, in EREs (half its side): a region scattered over
#: the skull or a true position far away would zoom the crop out to the
#: whole image, which the overlay already shows.
MAX_HALF_ERES = 8.0

# BGR, as the overlay's
_FLAGGED = (0, 100, 255)
_TRUTH = (60, 200, 60)
_SHIFT = 4  # cv2's fixed-point sub-pixel drawing


def crop_half_width(x: float, y: float, ere_px: Optional[float],
                    outline: Sequence[Sequence[Sequence[float]]] = (),
                    truth: Optional[Sequence[float]] = None) -> float:
    """Half the side (image pixels) of the window shown around ``(x, y)``.

    The largest of three EREs, 1.25 times the farthest outline vertex
    from the point along either axis and 1.25 times the true position's
    distance along either axis; at least :data:`MIN_HALF_WIDTH` and, with
    an ERE, at most :data:`MAX_HALF_ERES` EREs (a part of the region or
    the truth may then lie outside the crop).

    Args:
        x (float): Predicted x (image pixels).
        y (float): Predicted y.
        ere_px (float, optional): The landmark's ERE in image pixels.
        outline (Sequence): The region's rings, each a list of ``[x, y]``.
        truth (Sequence[float], optional): The true ``[x, y]``.

    Returns:
        float: The half width.
    """
    half, widest = MIN_HALF_WIDTH, np.inf
    if ere_px is not None and np.isfinite(ere_px):
        half = max(half, 3.0 * float(ere_px))
        widest = max(MIN_HALF_WIDTH, MAX_HALF_ERES * float(ere_px))
    points = [np.asarray(r, np.float64).reshape(-1, 2) for r in outline
              if len(r)]
    if truth is not None:
        points.append(np.asarray(truth, np.float64).reshape(1, 2))
    if points:
        reach = np.abs(np.concatenate(points) - [x, y]).max()
        if np.isfinite(reach):
            half = max(half, 1.25 * float(reach))
    return float(min(half, widest))


def crop_transform(x: float, y: float, half: float,
                   size: int = CROP_SIZE) -> Tuple[float, float, float]:
    """The affine ``p' = scale * p + (tx, ty)`` from image pixels to crop
    pixels: ``(x, y)`` goes to the crop's centre ``(size - 1) / 2`` and a
    window ``2 * half`` wide fills it.

    Returns:
        tuple: ``(scale, tx, ty)``.
    """
    scale = size / (2.0 * half)
    centre = (size - 1) / 2.0
    return scale, centre - scale * x, centre - scale * y


def crop_view(grey: np.ndarray, x: float, y: float, half: float,
              size: int = CROP_SIZE) -> np.ndarray:
    """The window of ``grey`` around ``(x, y)``, magnified to ``size``
    pixels (nearest pixel when magnified, so the X-ray's pixels stay
    visible; bilinear when shrunk); outside the image is black.

    Note:
        Shapes: ``grey`` (H, W) uint8; returns (size, size) uint8. Crop
        pixel ``(i, j)`` (row, column) shows image pixel
        ``((j - tx) / scale, (i - ty) / scale)`` of
        :func:`crop_transform`.
    """
    scale, tx, ty = crop_transform(x, y, half, size)
    matrix = np.array([[scale, 0.0, tx], [0.0, scale, ty]], np.float64)
    flags = cv2.INTER_NEAREST if scale >= 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(np.ascontiguousarray(grey, np.uint8), matrix,
                          (size, size), flags=flags,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def landmark_crop(grey: np.ndarray, landmark: dict,
                  truth: Optional[Sequence[float]] = None,
                  size: int = CROP_SIZE) -> Tuple[np.ndarray, float]:
    """One landmark's crop: the window (:func:`crop_half_width`), its
    first-level region outlined and the prediction crossed in orange, the
    true position (when given) circled in green.

    Args:
        grey (np.ndarray): (H, W) uint8, the image the landmark is on.
        landmark (dict): One of a ``LandmarkResult``'s ``landmarks`` with
            a position (``x``, ``y``, ``ere_px``, ``regions``).
        truth (Sequence[float], optional): The true ``[x, y]``.
        size (int): Side of the crop.

    Returns:
        tuple: The (size, size, 3) BGR crop and the window's half width
        (image pixels).
    """
    x, y = float(landmark['x']), float(landmark['y'])
    regions = landmark.get('regions') or []
    outline = regions[0]['outline'] if regions else []
    half = crop_half_width(x, y, landmark.get('ere_px'), outline, truth)
    crop = cv2.cvtColor(crop_view(grey, x, y, half, size),
                        cv2.COLOR_GRAY2BGR)
    scale, tx, ty = crop_transform(x, y, half, size)
    mult = float(1 << _SHIFT)

    def fixed(points):
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        return np.round((pts * scale + [tx, ty]) * mult).astype(np.int32)

    rings = [fixed(r).reshape(-1, 1, 2) for r in outline if len(r)]
    if rings:
        cv2.polylines(crop, rings, True, _FLAGGED, 2, cv2.LINE_AA, _SHIFT)
    c = int(round((size - 1) / 2.0 * mult))
    arm = int(round(size / 12 * mult))
    cv2.line(crop, (c - arm, c), (c + arm, c), _FLAGGED, 2, cv2.LINE_AA,
             _SHIFT)
    cv2.line(crop, (c, c - arm), (c, c + arm), _FLAGGED, 2, cv2.LINE_AA,
             _SHIFT)
    if truth is not None and np.all(np.isfinite(truth)):
        tx_, ty_ = fixed(truth)[0]
        cv2.circle(crop, (int(tx_), int(ty_)), int(round(size / 24 * mult)),
                   _TRUTH, 2, cv2.LINE_AA, _SHIFT)
    return crop, half
