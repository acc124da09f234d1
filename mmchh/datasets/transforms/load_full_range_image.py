# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Loads 8- and 16-bit images, a 12-bit image at its full range.

Why our own: MMPose's ``LoadImage(color_type='color')`` decodes with
OpenCV's ``IMREAD_COLOR``, which reduces a 16-bit PNG or TIFF to 8 bits by
dividing by 256. X-ray detectors often store 12-bit values (0..4095) in a
16-bit file, which would arrive as 0..15: nearly black, the contrast lost.
Here the file is decoded at its own depth (``IMREAD_ANYDEPTH``) and a
16-bit image becomes 8-bit by the rule inference uses for the same file
(:func:`sixteen_bit_to_uint8`, as ``mmchh.apis.load_xray``), so a model
sees the same grey levels in training and at inference. An 8-bit image is
decoded exactly as ``LoadImage`` decodes it.

Files OpenCV cannot decode (DICOM, MetaImage, NRRD, NIfTI) are read by the
one image reader, :func:`mmchh.datasets.image_reader.read_image` (the
converters' and inference's), and made 8-bit by the same rule; their
header's spacing becomes the ``spacing`` key when the sample has none
(a dataset record's spacing wins), so the head gives ERE in mm for them in
MMPose's own ``inference_topdown`` too.
"""
from typing import Optional

import cv2
import numpy as np
from mmpose.datasets.transforms import LoadImage
from mmpose.registry import TRANSFORMS

from ..image_reader import (DICOM_EXTENSIONS, ITK_EXTENSIONS, read_image,
                            split_image_name)

#: Largest value of 12-bit data: a 16-bit image whose maximum is at most
#: this is taken as 12-bit detector data.
TWELVE_BIT_MAX = 4095

#: ``LoadImage``'s ``color_type`` -> the same OpenCV flag at the file's own
#: bit depth (identical to the plain flag for 8-bit files).
_ANY_DEPTH_FLAGS = {
    'color': cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH,
    'grayscale': cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH,
}


def is_twelve_bit(img: np.ndarray) -> bool:
    """Whether a 16-bit image holds 12-bit detector data: its maximum is
    at most 4095 and it is not an 8-bit image widened by x257."""
    top = int(img.max()) if img.size else 0
    return bool(0 < top <= TWELVE_BIT_MAX and (img % 257).any())


def sixteen_bit_to_uint8(img: np.ndarray) -> np.ndarray:
    """A 16-bit image as 8 bits, using a 12-bit image's full range.

    ``round(v * 255 / 4095)`` when the maximum is at most 4095 (12-bit
    detector data stored in 16 bits) unless every value is a multiple of
    257 (an 8-bit image widened by x257); else ``round(v / 257)``, which
    maps 0..65535 onto 0..255 exactly at both ends.

    Args:
        img (np.ndarray): uint16 image, any shape.

    Returns:
        np.ndarray: uint8, the same shape.
    """
    if is_twelve_bit(img):
        scaled = img.astype(np.float64) * (255.0 / TWELVE_BIT_MAX)
    else:
        scaled = img.astype(np.float64) / 257.0
    return np.round(scaled).clip(0, 255).astype(np.uint8)


@TRANSFORMS.register_module()
class LoadFullRangeImage(LoadImage):
    """``LoadImage`` for 8- and 16-bit images (PNG, TIFF), DICOM and
    MetaImage/NRRD/NIfTI.

    An 8-bit file gives exactly ``LoadImage``'s result (same flag, same
    bytes). A 16-bit file is decoded at 16 bits and made 8-bit by
    :func:`sixteen_bit_to_uint8` (then float32 with ``to_float32``). A
    DICOM/MetaImage/NRRD/NIfTI file is read by
    :func:`~mmchh.datasets.image_reader.read_image` (header spacing into
    ``spacing`` when absent; see the module).

    Required Keys:

        - img_path
        - img (optional)

    Modified Keys:

        - img
        - img_shape
        - ori_shape
        - img_path (optional)
        - spacing (a header's, only when absent)

    Args:
        color_type (str): ``'color'`` (3 identical channels for a grey
            image, as ``LoadImage``) or ``'grayscale'``.
        **kwargs: As :class:`mmpose.datasets.transforms.LoadImage` (the
            decoding backend must be ``'cv2'``).

    Note:
        ``img`` is (H, W, 3) for ``'color'``, (H, W) for ``'grayscale'``;
        uint8 (float32 with ``to_float32``).
    """

    def __init__(self,
                 color_type: str = 'color',
                 to_float32: bool = False,
                 **kwargs) -> None:
        if color_type not in _ANY_DEPTH_FLAGS:
            raise ValueError(f'LoadFullRangeImage: color_type must be one of '
                             f'{", ".join(_ANY_DEPTH_FLAGS)}; got '
                             f'{color_type!r}')
        if kwargs.get('imdecode_backend', 'cv2') != 'cv2':
            raise ValueError('LoadFullRangeImage decodes with OpenCV; '
                             'imdecode_backend must be "cv2", got '
                             f'{kwargs["imdecode_backend"]!r}')
        # the parent never casts: a 16-bit image is made 8-bit first
        super().__init__(color_type=color_type, to_float32=False, **kwargs)
        self.cast_float32 = to_float32
        self.color_name = color_type
        # mmcv.imfrombytes takes an OpenCV flag as well as a name
        self.color_type = _ANY_DEPTH_FLAGS[color_type]

    def _read_with_image_reader(self, results: dict) -> dict:
        """A DICOM/MetaImage/NRRD/NIfTI file through ``read_image``, in
        ``LoadImage``'s layout (3 channels for ``'color'``)."""
        path = results['img_path']
        loaded = read_image(path)
        img = loaded.array
        if img.dtype == np.uint16:
            img = sixteen_bit_to_uint8(img)
        if self.color_name == 'color' and img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        elif self.color_name == 'grayscale' and img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        results['img'] = np.ascontiguousarray(img)
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        if results.get('spacing') is None and loaded.spacing is not None:
            results['spacing'] = np.asarray(loaded.spacing, np.float32)
        return results

    def transform(self, results: dict) -> Optional[dict]:
        """Loads the image; a 16-bit one becomes 8-bit (see the class)."""
        path = results.get('img_path')
        if results.get('img') is None and isinstance(path, str) and \
                split_image_name(path)[1].lower() in (DICOM_EXTENSIONS +
                                                      ITK_EXTENSIONS):
            results = self._read_with_image_reader(results)
        else:
            results = super().transform(results)
        if results is None:
            return None
        img = results['img']
        if img.dtype == np.uint16:
            img = sixteen_bit_to_uint8(img)
        results['img'] = img.astype(np.float32) if self.cast_float32 else img
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(color_type={self.color_name!r}, '
                f'to_float32={self.cast_float32})')
