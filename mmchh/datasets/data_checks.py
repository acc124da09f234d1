# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Checks that a converted dataset's records agree with its files.

A COCO-style JSON records each image's ``width`` and ``height``; the
keypoints, the bounding box and the spacing (mm per pixel) are only right for
an image of exactly that size. An image of another size -- e.g. an output
folder whose images were rewritten by a later ``--resize`` while the old
JSONs stayed -- would be scored in the wrong units without a word, so every
image is checked against its record before anything is scored.

Only the image *header* is read (:func:`image_header_size`: Pillow opens
BMP, PNG, TIFF and JPEG lazily, without decoding the pixels), so checking
the 400 ISBI images takes milliseconds.
"""
import os.path as osp
import warnings
from typing import Tuple

from mmchh.utils.errors import InputError

__all__ = [
    'DatasetError', 'MissingDataError', 'image_header_size',
    'check_image_size'
]


class DatasetError(InputError):
    """A converted dataset file (JSON record or image) is unusable or
    inconsistent; the message names the file and both values."""


class MissingDataError(DatasetError, FileNotFoundError):
    """A dataset file does not exist (also a ``FileNotFoundError``)."""


def image_header_size(path: str) -> Tuple[int, int]:
    """(width, height) of an image file, read from its header.

    Pillow parses only the header (the pixels are decoded on first access,
    which never happens here); a format Pillow cannot identify is decoded
    with OpenCV instead, so any image the pipeline's ``LoadImage`` reads is
    measured.

    Args:
        path (str): The image file.

    Returns:
        tuple: (width, height) in pixels, as stored (EXIF orientation is
        not applied, as in ``tools/convert_isbi.py``).

    Raises:
        MissingDataError: the file does not exist.
        DatasetError: the file is not a readable image.
    """
    if not osp.isfile(path):
        raise MissingDataError(f'{path}: image file does not exist')
    from PIL import Image, UnidentifiedImageError
    try:
        with warnings.catch_warnings():
            # the header of a huge scan is fine to read
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return int(img.size[0]), int(img.size[1])
    except (UnidentifiedImageError, Image.DecompressionBombError):
        pass
    except OSError as e:
        raise DatasetError(f'{path}: cannot read the image header ({e})')
    import cv2
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise DatasetError(f'{path}: cannot read image (corrupt or not an '
                           'image)')
    return int(img.shape[1]), int(img.shape[0])


def check_image_size(path: str, width: int, height: int,
                     record: str) -> None:
    """Refuses an image whose size differs from its JSON record.

    Args:
        path (str): The image file.
        width (int): The record's ``width``.
        height (int): The record's ``height``.
        record (str): Where the record is (the JSON file), for the message.

    Raises:
        MissingDataError: the image does not exist.
        DatasetError: it is unreadable, or its size is not
            ``width`` x ``height``; the message names the image, the JSON
            and both sizes.
    """
    if not osp.isfile(path):
        raise MissingDataError(
            f'{path}: image file does not exist (recorded in {record})')
    w, h = image_header_size(path)
    if (w, h) != (width, height):
        raise DatasetError(
            f'{path}: the image is {w}x{h} pixels but {record} records '
            f'{width}x{height} (width x height); the keypoints and the mm '
            'spacing of the record do not fit this image (images and JSON '
            'from different conversions?). Re-run tools/convert_isbi.py '
            'into this folder.')
