"""Convert the ISBI 2015 cephalometric release to COCO-keypoint JSON.

The documented short name of ``tools/dataset_converters/convert_isbi.py``:
it runs that tool's ``main`` (same options, output and messages).

Example:
    python tools/convert_isbi.py /data/ISBI2015 data/isbi2015_coco --resize 640 800
"""
import os.path as osp
import runpy
import sys

main = runpy.run_path(
    osp.join(osp.dirname(osp.abspath(__file__)), 'dataset_converters',
             'convert_isbi.py'))['main']

if __name__ == '__main__':
    sys.exit(main())
