# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Is an annotation file's embedded image the image it is paired with?

labelme stores the image it was drawn on in ``imageData`` (base64 of the
file's bytes). An annotation file is paired with its image by file stem,
so a mix-up (another patient's file under this name) would make its
points the ground truth of the wrong image. Each embedded image is decoded
once, when the annotation file is read, into a small
:class:`PictureSignature` (its size and a greyscale thumbnail), and
compared with the paired image by :func:`picture_mismatch`:

- a different size (width x height) is a mismatch;
- otherwise both are made greyscale (BGR weights of ``cv2.COLOR_BGR2GRAY``,
  alpha dropped), reduced by area averaging to at most
  :data:`THUMBNAIL_SIDE` pixels on the long side and standardised (mean 0,
  standard deviation 1), and a mismatch is a Pearson correlation below
  :data:`MIN_CORRELATION`.

Why correlation of standardised thumbnails: labelme re-encodes what it
embeds (JPEG images as JPEG again, 16-bit images through Pillow), and
datasets are often converted (16 to 8 bits, a 12-bit range rescaled,
recompressed). These change intensities by a near-linear map plus small
noise, which standardisation removes and area averaging shrinks. On the
synthetic 320x400 cephalograms of :mod:`mmchh.testing`, a JPEG copy
(quality 50) or an 8-bit copy of a 12-bit image correlates above 0.999
with the original, while two different cephalograms (same anatomy, same
layout, another pose) correlate 0.68 to 0.89: 0.98 leaves a margin on both
sides (the tests check both). The thumbnail keeps memory small (at most
:data:`THUMBNAIL_SIDE` squared floats per file) while every annotation
file is read before the images. A constant image matches only a constant
image of the same size.
"""
import base64
import binascii
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

__all__ = [
    'MIN_CORRELATION', 'THUMBNAIL_SIDE', 'PictureSignature',
    'decode_image_data', 'greyscale', 'picture_signature', 'picture_mismatch'
]

#: Longest side of the compared thumbnails (pixels).
THUMBNAIL_SIDE = 128
#: Smallest correlation of two thumbnails of one picture.
MIN_CORRELATION = 0.98


@dataclass
class PictureSignature:
    """What is compared of a picture.

    Attributes:
        size (tuple): (width, height) in pixels.
        thumbnail (np.ndarray, optional): The standardised greyscale
            thumbnail, float32 (h, w); None for a constant picture.
    """
    size: Tuple[int, int]
    thumbnail: Optional[np.ndarray]


def decode_image_data(text) -> np.ndarray:
    """The pixels of a base64-encoded image file (labelme's ``imageData``).

    Returns:
        np.ndarray: (H, W) or (H, W, C) as ``cv2.imdecode`` with
        ``IMREAD_UNCHANGED`` gives them.

    Raises:
        ValueError: not a string, not base64, or not a decodable image.
    """
    import cv2
    if not isinstance(text, str):
        raise ValueError(f'must be a base64 string, got {type(text).__name__}')
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f'not base64 ({e})') from e
    array = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.size == 0:
        raise ValueError('does not decode as an image')
    return array


def greyscale(array: np.ndarray) -> np.ndarray:
    """(H, W) float32 luminance of (H, W) or (H, W, C) OpenCV-ordered
    pixels (BGR weights of ``cv2.COLOR_BGR2GRAY``; alpha dropped)."""
    pixels = array.astype(np.float32)
    if pixels.ndim == 3 and pixels.shape[2] >= 3:
        return pixels[..., :3] @ np.float32([0.114, 0.587, 0.299])
    return pixels if pixels.ndim == 2 else pixels[..., 0]


def picture_signature(array: np.ndarray) -> PictureSignature:
    """The :class:`PictureSignature` of decoded pixels (H, W[, C])."""
    import cv2
    grey = greyscale(array)
    h, w = grey.shape
    scale = min(1.0, THUMBNAIL_SIDE / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size != (w, h):
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    std = float(grey.std())
    if not std > 1e-6 * max(1.0, abs(float(grey.mean()))):
        return PictureSignature((w, h), None)
    return PictureSignature((w, h), ((grey - grey.mean()) / std).astype(
        np.float32))


def picture_mismatch(embedded: PictureSignature,
                     paired: PictureSignature) -> Optional[str]:
    """Why ``embedded`` is not the picture ``paired``, or None.

    Returns:
        str or None: e.g. ``'it is 40x32, the image 32x40'`` or
        ``'their pixels differ (correlation 0.41 < 0.98)'``.
    """
    if embedded.size != paired.size:
        return (f'it is {embedded.size[0]}x{embedded.size[1]}, the image '
                f'{paired.size[0]}x{paired.size[1]}')
    a, b = embedded.thumbnail, paired.thumbnail
    if a is None or b is None:
        if a is None and b is None:
            return None
        which = 'it is' if a is None else 'the image is'
        return f'their pixels differ ({which} constant, the other not)'
    correlation = float(np.mean(a * b))
    if correlation < MIN_CORRELATION:
        return (f'their pixels differ (correlation {correlation:.3f} < '
                f'{MIN_CORRELATION})')
    return None
