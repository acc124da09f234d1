"""Write the training config for a folder converted by convert_landmarks.

MMEngine cannot carry ``--cfg-options data_root=...`` into the datasets
nor read the landmark count from a folder, so this writes a small config
deriving from the generic one (``configs/landmark/unet_r34_onehot.py`` by
default) with the folder as every dataset's ``data_root`` and the head's
``out_channels`` from its ``metainfo.py``. Train, calibrate, test and infer
with the written config. An existing CONFIG is replaced only with
``--force``; a CONFIG inside a conversion folder (one holding
``conversion.json``) is always refused.

Example:
    python tools/convert_landmarks.py data/own_coco --images xrays/ \
        --keypoints sella nasion menton --labelme dr_a=labels_a/
    python tools/landmark_config.py data/own_coco own_unet_r34_onehot.py
    python tools/train.py own_unet_r34_onehot.py
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

DEFAULT_BASE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                        'configs', 'landmark', 'unet_r34_onehot.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write the training config for a folder converted by '
        'tools/convert_landmarks.py')
    parser.add_argument('data_root',
                        help='the output folder of convert_landmarks.py')
    parser.add_argument('config', help='the config file to write')
    parser.add_argument('--base',
                        default=DEFAULT_BASE,
                        help='the generic config it derives from (default: '
                        'configs/landmark/unet_r34_onehot.py)')
    parser.add_argument('--force',
                        action='store_true',
                        help='replace CONFIG if it exists (never a file in '
                        'a conversion folder)')
    return parser.parse_args(argv)


def _main(argv=None):
    args = parse_args(argv)
    from mmchh.datasets.landmark_config import write_landmark_config
    num = write_landmark_config(args.data_root, args.config, args.base,
                                args.force)
    print(f'landmark_config.py: wrote {args.config} ({num} landmarks, '
          f'data_root {args.data_root}); train with: python tools/train.py '
          f'{args.config}')
    return 0


def main(argv=None):
    from mmchh.utils.cli import run_tool
    return run_tool('landmark_config.py', _main, argv)


if __name__ == '__main__':
    sys.exit(main())
