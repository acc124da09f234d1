# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Writes synthetic samples to disk in the ISBI 2015 layout."""
import os
import os.path as osp

import cv2
import numpy as np

from mmchh.datasets.ceph_meta import (ISBI_ANNOTATOR_FOLDERS,
                                      ISBI_IMAGE_FOLDERS, ISBI_SPACING_MM)
from mmchh.utils.io import atomic_write_bytes
from .anatomy import FULL_H, FULL_W
from .sample import check_image_size, is_int, synthetic_ceph_sample

__all__ = ['make_synthetic_ceph', 'write_bmp', 'write_txt']


def write_bmp(path, image):
    """Writes a grey uint8 image as a .bmp, atomically."""
    ok, data = cv2.imencode('.bmp', image)
    if not ok:
        raise OSError(f'cv2.imencode could not encode {path}')
    atomic_write_bytes(path, data.tobytes())


def write_txt(path, points, labels):
    """Writes one ISBI annotation file: ``x,y`` lines, then the labels."""
    lines = [f'{int(x)},{int(y)}' for x, y in points]
    lines += [str(int(v)) for v in labels]
    # CRLF, as in the original challenge release
    atomic_write_bytes(
        path, ''.join(line + '\r\n' for line in lines).encode('ascii'))


def make_synthetic_ceph(out_root,
                        num_train=10,
                        num_test1=4,
                        num_test2=4,
                        image_size=(320, 400),
                        seed=0,
                        nested=True,
                        progress=True):
    """Writes a synthetic data set in the ISBI 2015 on-disk layout.

    Images are numbered consecutively across the splits, as in the real
    release (train ``001..num_train``, then Test1, then Test2); names have
    3 digits unless there are more than 999 images. Existing files with the
    same names are replaced; other files under ``out_root`` are left alone.

    Args:
        out_root (str): folder to write into (created if missing).
        num_train (int): images in ``RawImage/TrainingData``.
        num_test1 (int): images in ``RawImage/Test1Data``.
        num_test2 (int): images in ``RawImage/Test2Data``.
        image_size (tuple[int, int]): (W, H) of every image; the original
            is ``ISBI_IMAGE_SIZE`` = (1935, 2400).
        seed (int): non-negative seed; image ``k`` is drawn from
            ``np.random.default_rng([seed, k])``.
        nested (bool): put the annotator folders under ``AnnotationsByMD/``
            (True) or directly under ``out_root`` (False).
        progress (bool): print one line per split.

    Returns:
        dict: ``out_root``, ``image_size`` (W, H), ``spacing_mm`` (x, y:
        the anatomy is life-size at 0.1 mm/px in a 1935 x 2400 image, so
        smaller images have coarser pixels), ``seed``, ``nested``,
        ``num_images`` (total), ``splits`` (split name -> count),
        ``image_dirs`` (split name -> folder) and ``annotation_dirs``
        (annotator folder name -> folder).

    Raises:
        ValueError: on a non-positive count, a too small or malformed
            ``image_size`` or a negative seed.
    """
    counts = (num_train, num_test1, num_test2)
    for arg, value in zip(('num_train', 'num_test1', 'num_test2'), counts):
        if not is_int(value) or value < 1:
            raise ValueError(f'{arg} must be a positive integer, got '
                             f'{value!r}')
    w, h = check_image_size(image_size)
    if not is_int(seed) or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
    out_root = os.fspath(out_root)

    total = sum(counts)
    digits = max(3, len(str(total)))
    image_dirs = {
        split: osp.join(out_root, 'RawImage', folder)
        for folder, split in ISBI_IMAGE_FOLDERS
    }
    ann_base = osp.join(out_root, 'AnnotationsByMD') if nested else out_root
    ann_dirs = {
        folder: osp.join(ann_base, folder)
        for folder, _ in ISBI_ANNOTATOR_FOLDERS
    }
    for folder in list(image_dirs.values()) + list(ann_dirs.values()):
        os.makedirs(folder, exist_ok=True)

    number = 0
    splits = {}
    for (_, split), count in zip(ISBI_IMAGE_FOLDERS, counts):
        for _ in range(count):
            number += 1
            name = f'{number:0{digits}d}'
            sample = synthetic_ceph_sample(
                np.random.default_rng([int(seed), number]), (w, h))
            for folder, who in ISBI_ANNOTATOR_FOLDERS:
                write_txt(osp.join(ann_dirs[folder], name + '.txt'),
                          sample['annotations'][who], sample['labels'])
            # the image last: a complete .bmp implies complete annotations
            write_bmp(osp.join(image_dirs[split], name + '.bmp'),
                      sample['image'])
        splits[split] = count
        if progress:
            noun = 'image' if count == 1 else 'images'
            print(f'make_synthetic_ceph: wrote {count} {split} {noun} '
                  f'({w}x{h}) to {image_dirs[split]}')
    return dict(out_root=out_root,
                image_size=(w, h),
                spacing_mm=(ISBI_SPACING_MM * FULL_W / w,
                            ISBI_SPACING_MM * FULL_H / h),
                seed=int(seed),
                nested=bool(nested),
                num_images=total,
                splits=splits,
                image_dirs=image_dirs,
                annotation_dirs=ann_dirs)
