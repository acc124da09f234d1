import cv2
import numpy as np
import pytest

from mmchh.datasets.image_reader import ImageLoadError, read_image
from test_datasets.test_converters.landmark_files import Writers


@pytest.fixture
def writers():
    return Writers


@pytest.mark.parametrize('ext,dtype,as_is', [
    ('.png', np.uint8, True),
    ('.png', np.uint16, False),
    ('.tif', np.uint8, False),
    ('.tif', np.uint16, False),
    ('.bmp', np.uint8, True),
], ids=['png8', 'png16', 'tiff8', 'tiff16', 'bmp'])
def test_raster_pixels_kept_without_spacing(tmp_path, writers, ext, dtype,
                                            as_is):
    pixels = writers.pixels(3, dtype)
    path = str(tmp_path / f'x{ext}')
    cv2.imwrite(path, pixels)
    loaded = read_image(path)
    assert loaded.array.dtype == dtype and loaded.size == writers.size
    np.testing.assert_array_equal(loaded.array, pixels)
    assert (loaded.spacing, loaded.spacing_source) == (None, None)
    assert loaded.copy_as_is is as_is


@pytest.mark.parametrize('element,source', [
    ('PixelSpacing', 'PixelSpacing'),
    ('ImagerPixelSpacing', 'ImagerPixelSpacing'),
], ids=['pixel_spacing', 'imager_pixel_spacing_only'])
def test_dicom_spacing_is_row_column_swapped_to_xy(tmp_path, writers, element,
                                                   source):
    pixels = writers.pixels(1, np.uint16)
    path = str(tmp_path / 'x.dcm')
    writers.dicom(path, pixels, **{element: [0.2, 0.1]})  # (row, col)
    loaded = read_image(path)
    assert loaded.spacing == (0.1, 0.2)  # (x, y)
    assert loaded.spacing_source == source
    np.testing.assert_array_equal(loaded.array, pixels)
    assert loaded.array.dtype == np.uint16 and not loaded.copy_as_is


def test_dicom_pixel_spacing_wins_over_imager_pixel_spacing(tmp_path, writers):
    path = str(tmp_path / 'x.dcm')
    writers.dicom(path,
                  writers.pixels(1, np.uint16),
                  PixelSpacing=[0.3, 0.3],
                  ImagerPixelSpacing=[0.1, 0.1])
    assert read_image(path).spacing_source == 'PixelSpacing'


def test_dicom_monochrome1_is_inverted_over_the_stored_bits(tmp_path, writers):
    pixels = writers.pixels(2, np.uint16)
    path = str(tmp_path / 'x.dcm')
    writers.dicom(path, pixels, photometric='MONOCHROME1')
    loaded = read_image(path)
    np.testing.assert_array_equal(loaded.array, 4095 - pixels)
    assert loaded.spacing is None


def test_dicom_compressed_without_decoder_names_file_and_what_to_install(
        tmp_path, writers):
    from pydicom.uid import JPEGLSLossless
    path = str(tmp_path / 'x.dcm')
    writers.dicom(path, writers.pixels(1, np.uint16), syntax=JPEGLSLossless)
    with pytest.raises(ImageLoadError) as err:
        read_image(path)
    assert path in str(err.value) and 'JPEG-LS' in str(err.value)
    assert 'pylibjpeg' in str(err.value) and 'python-gdcm' in str(err.value)


def test_mha_with_one_slice_reads_header_spacing(tmp_path, writers):
    pixels = writers.pixels(4, np.uint16)
    path = str(tmp_path / 'x.mha')
    writers.mha(path, pixels, (0.3, 0.25))
    loaded = read_image(path)
    assert loaded.spacing == (0.3, 0.25) and loaded.spacing_source == 'header'
    np.testing.assert_array_equal(loaded.array, pixels)


def test_mha_without_spacing_field_has_no_spacing(tmp_path, writers):
    pixels = writers.pixels(4, np.uint8)
    raw = tmp_path / 'x.raw'
    raw.write_bytes(pixels.tobytes())
    header = tmp_path / 'x.mhd'
    header.write_text('ObjectType = Image\nNDims = 2\nDimSize = 40 32\n'
                      'ElementType = MET_UCHAR\nElementDataFile = x.raw\n')
    loaded = read_image(str(header))
    assert (loaded.spacing, loaded.spacing_source) == (None, None)
    np.testing.assert_array_equal(loaded.array, pixels)


def test_volume_and_unsupported_and_unreadable_are_refused(tmp_path, writers):
    import SimpleITK as sitk
    volume = str(tmp_path / 'v.mha')
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 32, 40), np.uint8)),
                    volume)
    with pytest.raises(ImageLoadError,
                       match=r'v\.mha: a 3-D image of size '
                       r'40x32x2'):
        read_image(volume)
    gif = tmp_path / 'x.gif'
    gif.write_bytes(b'GIF89a not really')
    with pytest.raises(ImageLoadError, match='unsupported image type'):
        read_image(str(gif))
    with pytest.raises(ImageLoadError, match=r'y\.png: no such file'):
        read_image(str(tmp_path / 'y.png'))
    bad = tmp_path / 'x.png'
    bad.write_bytes(b'not a png')
    with pytest.raises(ImageLoadError, match=r'x\.png: cannot read image'):
        read_image(str(bad))
    floats = str(tmp_path / 'f.tif')
    cv2.imwrite(floats, np.full((32, 40), 0.5, np.float32))
    with pytest.raises(ImageLoadError, match='not whole numbers'):
        read_image(floats)
