"""Small files the converter tests write: images of every kind (40x32
pixels), labelme JSON per annotator, DICOM and MetaImage (imported as
``from landmark_files import ...``; not a conftest, which would shadow
``tests/conftest.py`` for tests that import it by name)."""
import base64
import json
import os
import os.path as osp

import cv2
import numpy as np

KEYPOINTS = ('sella', 'nasion', 'menton')
SIZE = (40, 32)  # (width, height)


def write_labelme(path,
                  points,
                  image_path=None,
                  image_data=None,
                  size=SIZE,
                  extra_shapes=()):
    """Writes a labelme 5.x JSON; ``points``: label -> (x, y)."""
    shapes = [
        dict(label=label,
             points=[[float(x), float(y)]],
             group_id=None,
             description='',
             shape_type='point',
             flags={}) for label, (x, y) in points.items()
    ] + list(extra_shapes)
    data = dict(version='5.4.1',
                flags={},
                shapes=shapes,
                imagePath=image_path or osp.basename(path)[:-5] + '.png',
                imageData=image_data,
                imageHeight=size[1],
                imageWidth=size[0])
    with open(path, 'w') as f:
        json.dump(data, f)


def write_dicom(path,
                pixels,
                photometric='MONOCHROME2',
                syntax=None,
                **elements):
    """Writes an uncompressed 16-bit (12 stored) DICOM; ``elements`` are
    set on the dataset (e.g. PixelSpacing)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.1.1'
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    for key, value in elements.items():
        setattr(ds, key, value)
    ds.PixelData = (pixels.astype('<u2').tobytes() if syntax is None else
                    encapsulate([b'\xff\xd8not really jpeg-ls\xff\xd9']))
    ds.save_as(path, enforce_file_format=True)


def write_mha(path, pixels, spacing):
    """Writes a MetaImage stored 3-D with one slice (W H 1)."""
    import SimpleITK as sitk
    image = sitk.GetImageFromArray(pixels[None])
    image.SetSpacing(tuple(spacing) + (1.0, ))
    sitk.WriteImage(image, path)


def make_pixels(seed=0, dtype=np.uint8):
    """Deterministic (H, W) pixels of SIZE."""
    rng = np.random.default_rng(seed)
    high = 256 if dtype == np.uint8 else 4096
    return rng.integers(0, high, (SIZE[1], SIZE[0])).astype(dtype)


def write_landmark_set(root,
                       count=6,
                       annotators=('dr_a', 'dr_b'),
                       embed=False,
                       seed=0):
    """Writes ``root/images/NNN.png`` and ``root/<annotator>/NNN.json``.

    Returns:
        dict: stem -> annotator -> (K, 2) float points written.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    truth = {}
    for i in range(1, count + 1):
        stem = f'{i:03d}'
        img_path = osp.join(root, 'images', f'{stem}.png')
        cv2.imwrite(img_path, make_pixels(i))
        data = None
        if embed:
            with open(img_path, 'rb') as f:
                data = base64.b64encode(f.read()).decode()
        truth[stem] = {}
        for a in annotators:
            os.makedirs(osp.join(root, a), exist_ok=True)
            # arbitrary floats: many digits, inside the image
            pts = rng.uniform([1, 1], [SIZE[0] - 2, SIZE[1] - 2],
                              (len(KEYPOINTS), 2))
            truth[stem][a] = pts
            write_labelme(osp.join(root, a, f'{stem}.json'),
                          dict(zip(KEYPOINTS, pts)),
                          image_data=data)
    return truth


class Writers:
    """The file writers above, in one namespace."""
    keypoints = KEYPOINTS
    size = SIZE
    labelme = staticmethod(write_labelme)
    dicom = staticmethod(write_dicom)
    mha = staticmethod(write_mha)
    pixels = staticmethod(make_pixels)
