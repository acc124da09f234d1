# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Pillow opens DICOM, MetaImage, NRRD and NIfTI files through our reader.

Why: MMPose's ``inference_topdown(model, path)`` without boxes takes the
whole image as the box, sizing it with ``PIL.Image.open(path).size``.
Pillow knows none of these formats, so the call failed on an X-ray that
the model's test pipeline (``LoadFullRangeImage``) reads perfectly well.
Importing :mod:`mmchh` registers :class:`XrayImageFile` with Pillow's
documented plugin mechanism (``Image.register_open``, as pillow-heif
does), which makes ``Image.open`` work for them; no Pillow, mmcv or MMPose
function is replaced.

The box is then ``[0, 0, w, h]`` with ``(w, h)`` the size of the pixels
:func:`~mmchh.datasets.image_reader.read_image` gives: exactly the box of
:func:`~mmchh.datasets.whole_image_box.whole_image_bbox` that the dataset
and :func:`~mmchh.apis.predict_landmarks` use (centre ``(w / 2, h / 2)``,
scale ``(w, h)``), so MMPose's coordinates equal ours on the same file.

Design choices:

- Which files: only a file opened by path whose extension is one of
  ``DICOM_EXTENSIONS`` or ``ITK_EXTENSIONS`` of the reader. The reader
  goes by extension too, so Pillow and the pipeline agree on what a file
  is. Pillow tries its plugins in the order they were registered and this
  one is appended, so a plugin registered before it that claims the file
  wins (a DICOM whose 128-byte preamble holds a TIFF header can be opened
  as that TIFF); for an ordinary DICOM or ITK file none does. A file
  object without a path is declined (the reader needs a path).
- Decoding on open, not on ``load()``: ``_open`` calls ``read_image``
  itself instead of parsing the DICOM/ITK headers a second time, so the
  size and mode are the reader's by construction (its ``W x H x 1``
  rule, its refusal of multi-frame DICOM and of pixel values no PNG can
  hold), and an unreadable file raises the reader's ``ImageLoadError``
  naming the file and the reason, out of ``Image.open`` (Pillow passes
  on errors other than "not my format"). The price is one decode per
  ``Image.open``, which ``inference_topdown`` repeats in its pipeline:
  tens of milliseconds for a radiograph, small beside the network.
- Pixels: the stored ones where Pillow has a mode for them: (H, W) uint8
  as ``'L'``, (H, W) uint16 as ``'I;16'`` (as Pillow gives a 16-bit
  PNG), (H, W, 3) uint8 as ``'RGB'``. Other layouts (16-bit colour, 2 or
  4 channels) are refused with an ``ImageLoadError`` naming the file.
- No extensions are registered (``Image.register_extensions``): they
  serve ``Image.save``, and this plugin cannot write.
"""
import os
from typing import Optional

import numpy as np
from PIL import Image, ImageFile

from mmchh.datasets.image_reader import (DICOM_EXTENSIONS, ITK_EXTENSIONS,
                                         ImageLoadError, read_image,
                                         split_image_name)

__all__ = ['XRAY_FORMAT', 'XrayImageFile']

#: Pillow's name of the format (``Image.open(path).format``).
XRAY_FORMAT = 'MMCHH_XRAY'

#: The extensions this plugin opens: those the reader reads without OpenCV.
PLUGIN_EXTENSIONS = DICOM_EXTENSIONS + ITK_EXTENSIONS


def _pillow_layout(pixels: np.ndarray, path: str):
    """(mode, C-contiguous pixels in Pillow's channel order) of the
    reader's pixels, or an ``ImageLoadError`` naming ``path``."""
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 2 and pixels.dtype == np.uint8:
        return 'L', np.ascontiguousarray(pixels)
    if pixels.ndim == 2 and pixels.dtype == np.uint16:
        # 'I;16' is little-endian whatever the machine
        return 'I;16', np.ascontiguousarray(pixels, dtype='<u2')
    if pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        # the reader gives OpenCV's BGR order
        return 'RGB', np.ascontiguousarray(pixels[..., ::-1])
    layout = f'{pixels.shape[2]}-channel' if pixels.ndim == 3 else 'grey'
    raise ImageLoadError(
        path, f'Pillow has no mode for {layout} {pixels.dtype} pixels '
        f'(shape {pixels.shape}); read it with '
        'mmchh.datasets.image_reader.read_image (or pass MMPose '
        'inference_topdown the box, mmchh.datasets.whole_image_box.'
        'whole_image_bbox(w, h))')


class XrayImageFile(ImageFile.ImageFile):
    """A DICOM/MetaImage/NRRD/NIfTI file as a Pillow image (see the
    module).

    Note:
        ``size`` is (W, H) of the reader's (H, W[, 3]) pixels; the pixels
        are held from ``Image.open`` until the first ``load()``.
    """

    format = XRAY_FORMAT
    format_description = ('DICOM, MetaImage, NRRD or NIfTI read by '
                          'mmchh.datasets.image_reader.read_image')
    _pixels: Optional[np.ndarray] = None  # decoded, not yet given to Pillow

    def _open(self) -> None:
        path = os.fsdecode(self.filename) if self.filename else ''
        ext = split_image_name(os.path.basename(path))[1].lower()
        if not path or ext not in PLUGIN_EXTENSIONS:
            # SyntaxError is Pillow's "not this format": it tries the next
            raise SyntaxError('not a file mmchh reads')
        mode, pixels = _pillow_layout(read_image(path).array, path)
        self._mode = mode
        self._size = (int(pixels.shape[1]), int(pixels.shape[0]))
        self._pixels = pixels

    def load(self):
        """Hands the decoded pixels to Pillow (once) and closes the file
        Pillow opened."""
        if self._pixels is not None:
            pixels, self._pixels = self._pixels, None
            self.load_prepare()
            self.frombytes(pixels.tobytes(), 'raw', self.mode)
            # as ImageFile.load ends: the file is no longer needed
            if self._exclusive_fp and self.fp is not None:
                self.fp.close()
            self.fp = None
        return Image.Image.load(self)


# no accept function: the extension, which only ``_open`` sees, decides
Image.register_open(XRAY_FORMAT, XrayImageFile)
