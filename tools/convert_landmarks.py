"""Convert annotated images (labelme, CSV or COCO landmarks) to the
COCO-keypoint layout mmchh trains on.

The documented short name of
``tools/dataset_converters/convert_landmarks.py``: it runs that tool's
``main`` (same options, output and messages).

Example:
    python tools/convert_landmarks.py data/own_coco --images xrays/ \
        --keypoints sella nasion menton \
        --labelme dr_a=labels_a/ --labelme dr_b=labels_b/ --skip-bad
"""
import os.path as osp
import runpy
import sys

main = runpy.run_path(
    osp.join(osp.dirname(osp.abspath(__file__)), 'dataset_converters',
             'convert_landmarks.py'))['main']

if __name__ == '__main__':
    sys.exit(main())
