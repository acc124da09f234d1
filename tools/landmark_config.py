"""Write the training config for a folder converted by convert_landmarks.

MMEngine cannot carry ``--cfg-options data_root=...`` into the datasets
nor read the landmark count from a folder, so this writes a small config
deriving from the generic one (``configs/landmark/unet_r34_onehot.py`` by
default) with the folder as every dataset's ``data_root`` and the head's
``out_channels`` from its ``metainfo.py``; ``--input-size``,
``--heatmap-size`` and ``--epochs`` resize and lengthen the recipe
consistently (codec, pipelines, decoder; milestones follow the epochs).
Train, calibrate, test and infer
with the written config. An existing CONFIG is replaced only with
``--force``; a CONFIG inside a conversion folder (one holding
``conversion.json``) is always refused.

Example:
    python tools/convert_landmarks.py data/own_coco --images xrays/ \
        --keypoints sella nasion menton --labelme dr_a=labels_a/
    python tools/landmark_config.py data/own_coco own_unet_r34_onehot.py
    python tools/train.py own_unet_r34_onehot.py
    # smaller and shorter: 128x160 input and heatmaps, 40 epochs
    python tools/landmark_config.py data/own_coco own_128x160.py \
        --input-size 128 160 --epochs 40
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

DEFAULT_BASE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                        'configs', 'landmark', 'unet_r34_onehot.py')


def parse_args(argv=None):
    from mmchh.utils.cli import ArgumentParser, positive_int, size_pair
    parser = ArgumentParser(
        description='Write the training config for a folder converted by '
        'tools/convert_landmarks.py')
    parser.add_argument('data_root',
                        help='the output folder of convert_landmarks.py')
    parser.add_argument('config', help='the config file to write')
    parser.add_argument('--base', default=DEFAULT_BASE,
                        help='the generic config it derives from (default: '
                        'configs/landmark/unet_r34_onehot.py)')
    parser.add_argument('--input-size', **size_pair(positive_int),
                        help='the network input (multiples of 32): the '
                        'codec, every pipeline step with a size and the '
                        'decoder follow (default: the base\'s, 640 800)')
    parser.add_argument('--heatmap-size', **size_pair(positive_int),
                        help='the heatmaps: the input size (default) or it '
                        'divided by 2, 4 or 8; needs --input-size')
    parser.add_argument('--epochs', type=positive_int, metavar='N',
                        help='training epochs (default: the base\'s, 15); '
                        'the learning-rate milestones are fractions of them')
    parser.add_argument('--force', action='store_true',
                        help='replace CONFIG if it exists (never a file in '
                        'a conversion folder)')
    return parser.parse_args(argv)


def _main(argv=None):
    args = parse_args(argv)
    from mmchh.datasets.landmark_config import write_landmark_config
    num = write_landmark_config(
        args.data_root,
        args.config,
        args.base,
        args.force,
        input_size=tuple(args.input_size) if args.input_size else None,
        heatmap_size=tuple(args.heatmap_size) if args.heatmap_size else None,
        epochs=args.epochs)
    print(f'landmark_config.py: wrote {args.config} ({num} landmarks, '
          f'data_root {args.data_root}); train with: python tools/train.py '
          f'{args.config}')
    return 0


def main(argv=None):
    from mmchh.utils.cli import run_tool
    return run_tool('landmark_config.py', _main, argv)


if __name__ == '__main__':
    sys.exit(main())
