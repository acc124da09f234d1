# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Stand in for the clinician who reviews predictions in labelme.

Usage: python docs/examples/simulate_review.py REVIEW_DIR READING_CSV
    [--move-mm MM]

Only for the example of docs/own_data.md: with your own X-rays a clinician
opens REVIEW_DIR in labelme instead. READING_CSV (``image,keypoint,x,y``)
is the clinician's own reading of the images (``make_own_xrays.py`` writes
one for the new X-rays). Every predicted point further than ``--move-mm``
(default 2) from that reading is moved onto it, the others are left
exactly where the model put them, and each labelme file is saved in place,
as labelme saves it (its ``mmchh`` note kept). The spacing of each image is
the one recorded in its labelme file's ``mmchh`` note.
"""
import argparse
import csv
import glob
import json
import math
import os.path as osp
import sys


def read_reading(path):
    """(image stem, keypoint) -> (x, y)."""
    with open(path, newline='') as f:
        return {
            (osp.splitext(row['image'])[0], row['keypoint']):
            (float(row['x']), float(row['y']))
            for row in csv.DictReader(f)
        }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('review_dir', help='the labelme files to edit')
    parser.add_argument('reading', help='CSV image,keypoint,x,y')
    parser.add_argument('--move-mm',
                        type=float,
                        default=2.0,
                        help='move a point further than this (default 2)')
    args = parser.parse_args(argv)
    reading = read_reading(args.reading)
    files = sorted(glob.glob(osp.join(args.review_dir, '*.json')))
    if not files:
        sys.exit(f'simulate_review: no labelme files in {args.review_dir}')
    moved = kept = 0
    for path in files:
        with open(path, encoding='utf-8') as f:
            doc = json.load(f)
        stem = osp.splitext(osp.basename(path))[0]
        sx, sy = doc['mmchh']['spacing']
        for shape in doc['shapes']:
            (x, y), = shape['points']
            tx, ty = reading[(stem, shape['label'])]
            dist = math.hypot((x - tx) * sx, (y - ty) * sy)
            if dist > args.move_mm:
                shape['points'] = [[tx, ty]]
                moved += 1
                print(f'  {stem} {shape["label"]}: moved {dist:.1f} mm')
            else:
                kept += 1
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(doc, f, indent=2)
    print(f'simulate_review: {moved} points moved (further than '
          f'{args.move_mm:g} mm from the reading), {kept} kept, in '
          f'{len(files)} files')


if __name__ == '__main__':
    main()
