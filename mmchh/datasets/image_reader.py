# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Reading an image file of any supported kind: pixels, spacing, its source.

The one reader of image files: the converters
(:mod:`mmchh.datasets.converters`), the test pipeline's
``LoadFullRangeImage`` for files OpenCV cannot decode, and inference
(:func:`mmchh.apis.load_xray`, ``tools/infer.py``) all read through
:func:`read_image`, so a DICOM or MetaImage gives the same pixels and the
same spacing wherever it is read. Making them 8-bit is not done here: that
is the one rule of :mod:`.transforms.load_full_range_image`.

- PNG, JPEG, BMP, TIFF (8- or 16-bit, grey or colour): OpenCV with
  ``IMREAD_UNCHANGED`` (16 bits stay 16 bits; 12-bit detectors store
  0..4095 in them). No spacing in the file. An EXIF orientation other than
  "normal" is refused (the annotations are in stored pixels, the training
  pipeline's ``LoadImage`` would rotate the image).
- DICOM (``.dcm``, ``.dicom``): ``pydicom``. Spacing from ``PixelSpacing``
  (at the patient), else ``ImagerPixelSpacing`` (at the detector, as
  projection radiographs give it; ``EstimatedRadiographicMagnification
  Factor``, which relates it to the patient plane, is not applied), the
  source recorded. Both are stored (row, column), i.e. (y, x): they are
  swapped to (x, y) here. ``MONOCHROME1`` (white = low) is inverted over the
  stored bit range so bone is bright as in every other format; signed
  pixels are shifted to unsigned; the modality LUT (rescale slope and
  intercept) is not applied (it maps to physical units, not to display).
  Compressed transfer syntaxes need a decoder plugin: when none is
  installed the error names the file, the transfer syntax and what to
  install (``pylibjpeg`` with ``pylibjpeg-libjpeg``/``-openjpeg``, or
  ``python-gdcm``).
- MetaImage (``.mha``, ``.mhd``), NRRD (``.nrrd``), NIfTI (``.nii``,
  ``.nii.gz``): ``SimpleITK``. ``GetSpacing()`` is already (x, y[, z]). A
  third axis of size 1 (a radiograph stored as ``W H 1``) is accepted; any
  other 3-D image is refused. ITK reports spacing 1 when a header has none,
  so for MetaImage and NRRD the header itself is checked for a spacing
  field (``ElementSpacing``/``ElementSize``, ``spacings``/``space
  directions``); NIfTI always carries ``pixdim``, taken as given.

Pixels written to PNG must be unsigned 8 or 16 bits: other types are
accepted when every value is a whole number in 0..65535 (stored as 16
bits), refused otherwise (:func:`to_storable`).

Every fault is an :class:`ImageLoadError` (an ``InputError``) naming the
file.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from mmchh.utils.errors import InputError
from mmchh.utils.spacing import Spacing

__all__ = [
    'RASTER_EXTENSIONS', 'DICOM_EXTENSIONS', 'ITK_EXTENSIONS',
    'ALL_IMAGE_EXTENSIONS', 'COPY_AS_IS_EXTENSIONS', 'ImageLoadError',
    'LoadedImage', 'check_exif_orientation', 'to_storable', 'read_image',
    'split_image_name'
]

RASTER_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
DICOM_EXTENSIONS = ('.dcm', '.dicom')
ITK_EXTENSIONS = ('.mha', '.mhd', '.nrrd', '.nii', '.nii.gz')
ALL_IMAGE_EXTENSIONS = RASTER_EXTENSIONS + DICOM_EXTENSIONS + ITK_EXTENSIONS
#: 8-bit files of these kinds are readable by the training pipeline as they
#: are and are copied byte for byte; every other image is written as PNG.
COPY_AS_IS_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp')

#: Extensions made of two parts, kept whole by :func:`split_image_name`.
COMPOUND_EXTENSIONS = ('.nii.gz', )

#: What to install for DICOM transfer syntaxes pydicom cannot decode alone.
DICOM_DECODERS_HINT = ('pip install pylibjpeg pylibjpeg-libjpeg '
                       'pylibjpeg-openjpeg (JPEG, JPEG-LS, JPEG 2000) or '
                       'pip install python-gdcm')


class ImageLoadError(InputError):
    """A file or array could not be read as an image.

    Args:
        path (str | None): The file (None for an in-memory array).
        reason (str): Why it could not be used, in words.
    """

    def __init__(self, path: Optional[str], reason: str):
        self.path = None if path is None else str(path)
        self.reason = reason
        where = self.path if self.path is not None else '<array>'
        super().__init__(f'{where}: {reason}')


def split_image_name(name: str) -> Tuple[str, str]:
    """(stem, extension) of a file name; the extension keeps its case and
    covers both parts of ``.nii.gz``."""
    for ext in COMPOUND_EXTENSIONS:
        if name.lower().endswith(ext) and len(name) > len(ext):
            return name[:-len(ext)], name[-len(ext):]
    return osp.splitext(name)


@dataclass
class LoadedImage:
    """An image's pixels and what its file says about their size in mm.

    Attributes:
        array (np.ndarray): The pixels, uint8 or uint16, in the orientation
            the annotations refer to (OpenCV channel order for colour).
        spacing (tuple, optional): (x, y) mm per pixel from the file, None
            when the file has none.
        spacing_source (str, optional): Where ``spacing`` comes from
            (``'PixelSpacing'``, ``'ImagerPixelSpacing'``, ``'header'``).
        copy_as_is (bool): The file itself can be copied into the output
            (8-bit PNG, JPEG, BMP); otherwise it is written as PNG.

    Note:
        - array: (H, W) or (H, W, C)
    """
    array: np.ndarray
    spacing: Optional[Tuple[float, float]]
    spacing_source: Optional[str]
    copy_as_is: bool

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.array.shape[1]), int(self.array.shape[0])


def check_exif_orientation(path: str) -> None:
    """Refuses an image whose EXIF orientation is not "normal" (the
    annotations are in stored pixels, ``LoadImage`` would rotate it)."""
    from PIL import Image
    try:
        with Image.open(path) as pil:
            orientation = pil.getexif().get(0x0112, 1)
    except (OSError, ValueError):  # Pillow cannot parse it: no EXIF
        orientation = 1
    if orientation not in (0, 1):
        raise ImageLoadError(
            path, f'EXIF orientation {orientation} (rotated/flipped): the '
            'annotations are in stored pixels but LoadImage would rotate '
            'the image; save it without the orientation tag first')


def to_storable(array: np.ndarray, path: str) -> np.ndarray:
    """``array`` as uint8/uint16 pixels a PNG can hold.

    Raises:
        ImageLoadError: naming ``path`` when a value is negative, above
            65535 or not a whole number.
    """
    if array.dtype in (np.uint8, np.uint16):
        return array
    if array.size and np.isfinite(array).all():
        low, high = array.min(), array.max()
        if low >= 0 and high <= 65535 and (np.issubdtype(
                array.dtype, np.integer) or (array == np.round(array)).all()):
            return array.astype(np.uint16)
    raise ImageLoadError(
        path, f'pixel values of type {array.dtype} are not whole numbers in '
        '0..65535, so they cannot be stored as a 16-bit PNG; rescale the '
        'image to 8 or 16 bits first')


def _decode_raster(path: str) -> Optional[np.ndarray]:
    """OpenCV's decoding of the file at its own depth (``np.fromfile`` +
    ``imdecode`` also reads non-ASCII paths on every OS); None when OpenCV
    cannot decode it."""
    import cv2
    if not osp.isfile(path):
        raise ImageLoadError(path, 'no such file')
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise ImageLoadError(path, f'cannot read file ({e})') from e
    if buf.size == 0:
        raise ImageLoadError(path, 'empty file')
    array = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return None if array is None or array.size == 0 else array


def _read_raster(path: str, array: np.ndarray) -> LoadedImage:
    check_exif_orientation(path)
    ext = split_image_name(path)[1].lower()
    array = to_storable(array, path)
    return LoadedImage(
        array, None, None, ext in COPY_AS_IS_EXTENSIONS
        and array.dtype == np.uint8)


def _dicom_pixels(ds, path: str) -> np.ndarray:
    """The decoded pixels, with a clear error for a missing decoder."""
    syntax = getattr(getattr(ds, 'file_meta', None), 'TransferSyntaxUID', None)
    try:
        return ds.pixel_array
    except (RuntimeError, NotImplementedError, ValueError) as e:
        if syntax is not None and syntax.is_compressed:
            raise ImageLoadError(
                path, f'cannot decode its compressed transfer syntax '
                f'{syntax.name} ({syntax}) with the installed decoders; '
                f'install one: {DICOM_DECODERS_HINT}') from e
        raise ImageLoadError(path, f'cannot decode the DICOM pixel data '
                             f'({e})') from e


def _read_dicom(path: str) -> LoadedImage:
    import pydicom
    from pydicom.errors import InvalidDicomError
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError) as e:
        raise ImageLoadError(path, f'cannot read DICOM file ({e})') from e
    if 'PixelData' not in ds:
        raise ImageLoadError(path, f'DICOM file holds no image (no '
                             'PixelData)')
    if int(getattr(ds, 'NumberOfFrames', 1) or 1) > 1:
        raise ImageLoadError(
            path, f'DICOM file holds '
            f'{ds.NumberOfFrames} frames; one radiograph '
            'per file is expected')
    array = np.asarray(_dicom_pixels(ds, path))
    bits = int(getattr(ds, 'BitsStored', 8 * array.dtype.itemsize))
    if getattr(ds, 'PixelRepresentation', 0) == 1:  # signed: shift up
        array = array.astype(np.int64) + (1 << (bits - 1))
    if getattr(ds, 'PhotometricInterpretation', '') == 'MONOCHROME1':
        array = ((1 << bits) - 1) - array.astype(np.int64)
    if array.ndim == 3 and array.shape[2] == 3:
        array = array[..., ::-1]  # RGB -> OpenCV's BGR
    if bits <= 8 and array.dtype != np.uint8 and array.size and \
            0 <= array.min() and array.max() <= 255:
        array = array.astype(np.uint8)  # stays 8-bit (else: 16-bit)
    spacing, source = None, None
    for key in ('PixelSpacing', 'ImagerPixelSpacing'):
        # DICOM's pair is (row, column) spacing, y first: read as it is
        # stored, then turned into (x, y)
        row_col = Spacing.from_header(ds[key].value, key) \
            if key in ds else None
        if row_col is not None:
            spacing, source = (row_col.y, row_col.x), key
            break
    return LoadedImage(to_storable(np.ascontiguousarray(array), path), spacing,
                       source, False)


def _itk_header_has_spacing(path: str) -> bool:
    """Whether a MetaImage/NRRD header names a spacing (ITK reports 1 when
    it does not); NIfTI always has one."""
    ext = split_image_name(path)[1].lower()
    if ext in ('.nii', '.nii.gz'):
        return True
    keys = (('elementspacing', 'elementsize') if ext in ('.mha', '.mhd') else
            ('spacings', 'space directions'))
    with open(path, 'rb') as f:
        for raw in f:
            line = raw.decode('latin-1').strip()
            if not line or line.lower().startswith('elementdatafile'):
                break  # end of the header
            key = line.split('=' if '=' in line else ':', 1)[0]
            if key.strip().lower() in keys:
                return True
    return False


def _read_itk(path: str) -> LoadedImage:
    import SimpleITK as sitk
    try:
        image = sitk.ReadImage(path)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else ''
        raise ImageLoadError(path, f'cannot read image ({first})') from e
    size = image.GetSize()
    if len(size) == 3 and size[2] == 1:
        image = image[:, :, 0]
    elif len(size) != 2:
        raise ImageLoadError(
            path, f'a {len(size)}-D image of size {"x".join(map(str, size))}'
            '; only 2-D images (or 3-D with a single slice, W x H x 1) are '
            'radiographs this converter reads')
    array = sitk.GetArrayFromImage(image)  # (H, W[, C])
    if array.ndim == 3 and array.shape[2] == 3:
        array = array[..., ::-1]  # RGB -> OpenCV's BGR
    found = Spacing.from_header(image.GetSpacing()[:2], 'header') \
        if _itk_header_has_spacing(path) else None
    return LoadedImage(to_storable(np.ascontiguousarray(array), path),
                       None if found is None else found.xy,
                       None if found is None else found.source, False)


def read_image(path: str) -> LoadedImage:
    """Reads an image of any supported kind (see the module docstring).

    Args:
        path (str): The image file; its extension says its kind (a file
            with another extension is read if OpenCV decodes it).

    Returns:
        LoadedImage: pixels, spacing (or None) and its source.

    Raises:
        ImageLoadError: naming the file, for a missing or empty file, an
            unsupported kind, an unreadable file, a missing DICOM decoder,
            a 3-D volume or pixel values no PNG can hold.
    """
    ext = split_image_name(osp.basename(path))[1].lower()
    if ext in DICOM_EXTENSIONS:
        return _read_dicom(path)
    if ext in ITK_EXTENSIONS:
        return _read_itk(path)
    array = _decode_raster(path)
    if array is not None:
        return _read_raster(path, array)
    if ext in RASTER_EXTENSIONS:
        raise ImageLoadError(
            path, 'cannot read image (corrupt or not an '
            'image: OpenCV could not decode it)')
    raise ImageLoadError(
        path, f'unsupported image type {ext!r} (OpenCV '
        'could not decode it either); supported: '
        f'{", ".join(ALL_IMAGE_EXTENSIONS)}')
