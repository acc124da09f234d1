# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Make a labelme review folder for predictions on DICOM/MetaImage X-rays.

Usage: python docs/examples/labelme_review_copies.py LABELME_DIR REVIEW_DIR

labelme opens PNG, JPEG, BMP and TIFF files, not DICOM or MetaImage (nor
16-bit PNG). ``tools/infer.py --format labelme`` writes one labelme file per
image whose ``imagePath`` is the inferred file itself, so for a .dcm or
.mha labelme cannot show the image. This script writes, for every labelme
file ``LABELME_DIR/<name>.json``:

- ``REVIEW_DIR/<name>.png``: an 8-bit copy of the image for display (its
  own minimum to maximum stretched to 0..255), the same pixel grid, so
  every point stays where it is;
- ``REVIEW_DIR/<name>.json``: the labelme file unchanged except
  ``imagePath``, which names that copy.

Open REVIEW_DIR in labelme, move the points, save. Convert the reviewed
folder back against the original X-rays (``tools/convert_landmarks.py
--images NEW_XRAYS/ --labelme reviewed=REVIEW_DIR/``): annotations and
images are paired by file stem, so the spacing comes from the original
file's header; the converter's report notes that ``imagePath`` names the
PNG copy.
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys

# run from a checkout without installing the package
sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def display_copy(array):
    """8-bit grey pixels: the image's own range stretched to 0..255."""
    import numpy as np
    if array.ndim == 3:  # colour (BGR): its mean as grey
        array = array.mean(axis=2)
    low, high = float(array.min()), float(array.max())
    scaled = (array.astype(np.float64) - low) * (255.0 / max(high - low, 1))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('labelme_dir',
                        help='the labelme folder tools/infer.py wrote')
    parser.add_argument('review_dir', help='the folder to write (created)')
    args = parser.parse_args(argv)
    import cv2

    from mmchh.datasets.image_reader import read_image
    files = sorted(glob.glob(osp.join(args.labelme_dir, '*.json')))
    if not files:
        sys.exit(f'labelme_review_copies: no labelme files in '
                 f'{args.labelme_dir}')
    os.makedirs(args.review_dir, exist_ok=True)
    for path in files:
        with open(path, encoding='utf-8') as f:
            doc = json.load(f)
        image = osp.join(osp.dirname(path), doc['imagePath'])
        pixels = read_image(image).array
        if pixels.shape[:2] != (doc['imageHeight'], doc['imageWidth']):
            sys.exit(f'labelme_review_copies: {image} is '
                     f'{pixels.shape[1]}x{pixels.shape[0]}, {path} says '
                     f'{doc["imageWidth"]}x{doc["imageHeight"]}')
        stem = osp.splitext(osp.basename(path))[0]
        png = stem + '.png'
        if not cv2.imwrite(osp.join(args.review_dir, png),
                           display_copy(pixels)):
            sys.exit(f'labelme_review_copies: could not write {png}')
        doc['imagePath'] = png
        with open(osp.join(args.review_dir, stem + '.json'),
                  'w',
                  encoding='utf-8') as f:
            json.dump(doc, f, indent=2)
    print(f'labelme_review_copies: {len(files)} labelme files with 8-bit '
          f'PNG copies in {args.review_dir}; open it in labelme')


if __name__ == '__main__':
    main()
