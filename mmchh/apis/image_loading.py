# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Reading X-rays as 8-bit grey: any file the converters read, or an array.

Files are read by the one image reader,
:func:`mmchh.datasets.image_reader.read_image` (PNG/JPEG/BMP/TIFF 8/16-bit,
DICOM, MetaImage/NRRD/NIfTI), which also gives the spacing of the file's
header; 16 bits become 8 by the rule training uses (``sixteen_bit_to_uint8``
of :mod:`mmchh.datasets.transforms.load_full_range_image`).
"""
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import cv2
import numpy as np

from mmchh.datasets.image_reader import ImageLoadError, read_image
from mmchh.datasets.transforms.load_full_range_image import (
    TWELVE_BIT_MAX, is_twelve_bit, sixteen_bit_to_uint8)

__all__ = [
    'ImageInput', 'ImageLoadError', 'TWELVE_BIT_MAX', 'XRay', 'load_xray',
    'read_xray'
]


@dataclass(frozen=True)
class XRay:
    """An X-ray read for inference.

    Attributes:
        grey (np.ndarray): (H, W) uint8, in the stored pixels' frame.
        path (str | None): The file, None for an array.
        header_spacing (tuple | None): (x, y) mm per pixel from the file's
            header, None when it has none (and for an array).
    """
    grey: np.ndarray
    path: Optional[str] = None
    header_spacing: Optional[Tuple[float, float]] = None


ImageInput = Union[str, Path, np.ndarray, XRay]



def _to_uint8(img: np.ndarray, path: Optional[str]) -> np.ndarray:
    """An (H, W) or (H, W, C) image as uint8 (see :func:`load_xray`)."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        if is_twelve_bit(img):
            top = int(img.max())
            warnings.warn(
                f'{path or "<array>"}: 16-bit image whose maximum is {top} '
                f'(<= {TWELVE_BIT_MAX}): taken as 12-bit data stored in 16 '
                f'bits and rescaled by 255/{TWELVE_BIT_MAX} (the 16-bit '
                f'conversion /257 would have made its maximum {top / 257:.0f}'
                ' of 255, an almost black image). Convert it to 8 bits '
                'yourself if this is not what you want (docs/faq.md)',
                UserWarning, stacklevel=3)
        # training (LoadFullRangeImage) converts by the same rule
        return sixteen_bit_to_uint8(img)
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    if np.issubdtype(img.dtype, np.floating):
        img = np.nan_to_num(img.astype(np.float64))
        # floats in [0, 1] are normalised intensities; others are taken as
        # 8-bit grey levels
        if img.size and img.min() >= 0 and img.max() <= 1:
            img = img * 255.0
        return np.clip(np.round(img), 0, 255).astype(np.uint8)
    raise ImageLoadError(path, f'unsupported pixel type {img.dtype} '
                         '(expected 8- or 16-bit)')


def _grey(img: np.ndarray, path: Optional[str]) -> np.ndarray:
    """(H, W[, C]) pixels as (H, W) uint8 grey (see :func:`load_xray`)."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[2] in (3, 4):
        colour = img[..., :3]
        if (colour == colour[..., :1]).all():
            # grey stored as colour: keep the values exactly
            img = colour[..., 0]
        else:
            img = _to_uint8(np.ascontiguousarray(colour), path)
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if img.ndim != 2:
        raise ImageLoadError(path, f'unsupported image shape {img.shape} '
                             '(expected grey, BGR or BGRA)')
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise ImageLoadError(path, f'image too small: {img.shape}')
    return np.ascontiguousarray(_to_uint8(img, path))


def read_xray(image: ImageInput) -> XRay:
    """Reads an X-ray as 8-bit grey, with its header's spacing.

    Args:
        image (str | Path | np.ndarray | XRay): A file of any kind
            :func:`~mmchh.datasets.image_reader.read_image` reads, an array
            (3 or 4 channels in OpenCV's BGR(A) order), or an :class:`XRay`
            (returned as it is).

    Returns:
        XRay: The grey pixels, the path and the header's spacing.

    Raises:
        ImageLoadError: naming the file, as :func:`load_xray`.
    """
    if isinstance(image, XRay):
        return image
    if isinstance(image, (str, Path)):
        path = str(image)
        loaded = read_image(path)
        return XRay(_grey(loaded.array, path), path, loaded.spacing)
    if isinstance(image, np.ndarray):
        return XRay(_grey(image, None))
    raise ImageLoadError(None, f'expected a path or a numpy array; got '
                         f'{type(image).__name__}')


def load_xray(image: ImageInput) -> np.ndarray:
    """Reads an X-ray as an 8-bit grey image.

    Args:
        image (str | Path | np.ndarray | XRay): A PNG/JPEG/BMP/TIFF (8 or
            16 bits), DICOM or MetaImage/NRRD/NIfTI file (any file
            :func:`~mmchh.datasets.image_reader.read_image` reads: DICOM
            ``MONOCHROME1`` inverted, a ``W x H x 1`` volume as its one
            slice), or an array. Arrays with 3 or 4 channels are in
            OpenCV's BGR(A) order.

    Returns:
        np.ndarray: (H, W) uint8, in the stored pixels' frame.

    Raises:
        ImageLoadError: If the file is missing, empty, not an image (or of
            a kind no reader knows), or the array has an unsupported shape
            or type.

    Note:
        - 16-bit images become 8-bit by ``round(v / 257)``; an 8-bit image
          stored as 16-bit by multiplying by 257 gives identical values.
        - A 16-bit image whose maximum is at most 4095 (12-bit detector
          data stored in 16 bits; /257 would leave it almost black) becomes
          ``round(v * 255 / 4095)`` instead, with a ``UserWarning`` naming
          the file and its maximum. (An 8-bit image widened by x257 is
          recognised and still converted by /257.)
        - Colour becomes grey with ``cv2.cvtColor`` (alpha dropped); three
          identical channels are used as they are, so an RGB copy of a grey
          image gives exactly the grey image.
        - :func:`read_xray` also gives the header's spacing.
    """
    return read_xray(image).grey
