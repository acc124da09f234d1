# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The padded resize of a conversion, and the exact coordinate mapping.

An image is padded right/bottom with 0 to the target aspect, then resized
with ``cv2.INTER_AREA``. Keypoints follow with ``x' = (x + 0.5) * sx - 0.5``
(pixel centres map to where their pixel went) and the spacing becomes
``spacing / s`` per axis.
"""
import math
from typing import Tuple

import numpy as np

from .atomic_output import write_synced
from .errors import ConversionError

__all__ = [
    'padded_resize_params', 'resize_keypoints', 'resize_padded', 'write_png',
    'write_resized_image'
]


def padded_resize_params(width: int, height: int, target: Tuple[int,
                                                                int]) -> dict:
    """Right/bottom padding to the target aspect, then the resize factors.

    Returns:
        dict: ``padded_size`` (W, H) after padding, ``scale`` (sx, sy) and
        ``size`` (the target W, H).
    """
    tw, th = target
    pw = max(width, int(math.ceil(height * tw / th)))
    ph = max(height, int(math.ceil(width * th / tw)))
    return dict(padded_size=(pw, ph), scale=(tw / pw, th / ph), size=(tw, th))


def resize_keypoints(points: np.ndarray, scale: Tuple[float,
                                                      float]) -> np.ndarray:
    """Maps keypoints of the original image into the resized one.

    Note:
        - points: (K, 2) 0-based pixels, pixel centres at integers

    Returns:
        np.ndarray: (K, 2) ``(p + 0.5) * scale - 0.5``.
    """
    sx, sy = scale
    return (points + 0.5) * np.array([sx, sy]) - 0.5


def resize_padded(img: np.ndarray, params: dict) -> np.ndarray:
    """``img`` padded right/bottom with 0 and resized by ``params`` (from
    :func:`padded_resize_params`).

    Note:
        - img: (H, W) or (H, W, C); the result (h, w[, C]) of the target
    """
    import cv2
    pw, ph = params['padded_size']
    pad = [(0, ph - img.shape[0]), (0, pw - img.shape[1])]
    pad += [(0, 0)] * (img.ndim - 2)
    img = np.pad(img, pad)
    return cv2.resize(img, params['size'], interpolation=cv2.INTER_AREA)


def write_png(dst: str, img: np.ndarray, what: str = 'image') -> None:
    """Writes ``img`` (uint8 or uint16, kept) to ``dst`` as PNG, synced.

    Raises:
        ConversionError: naming ``dst`` when it cannot be encoded.
    """
    import cv2
    ok, buf = cv2.imencode('.png', img)
    if not ok:
        raise ConversionError(f'{dst}: could not encode {what}')
    write_synced(dst, buf.tobytes())


def write_resized_image(src: str, dst: str, params: dict) -> None:
    """Writes the image at ``src`` padded and resized by ``params`` (from
    :func:`padded_resize_params`) to ``dst`` as PNG, synced to disk."""
    import cv2
    img = cv2.imread(src, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ConversionError(f'{src}: cannot read image')
    write_png(dst, resize_padded(img, params), 'resized image')
