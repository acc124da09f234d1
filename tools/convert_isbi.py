"""Convert the ISBI 2015 cephalometric release to COCO-keypoint JSON.

Example:
    python tools/convert_isbi.py /data/ISBI2015 data/isbi2015_coco --resize 640 800
"""
import argparse
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert ISBI 2015 cephalometric data (RawImage/ + '
        'AnnotationsByMD/400_senior, 400_junior) to COCO-keypoint JSON files '
        'OUT_DIR/{train,val,calib,test1,test2}.json.')
    parser.add_argument('root', help='the ISBI release folder')
    parser.add_argument('out_dir', help='where to write the JSON files')
    parser.add_argument(
        '--gt', default='mean', choices=['mean', 'senior', 'junior'],
        help='training ground truth (default: mean of the annotators, as in '
        'the paper)')
    parser.add_argument('--num-val', type=int, default=None,
                        help='training images held out for validation '
                        '(default: 10 %% of them, at least 1, at most 15)')
    parser.add_argument('--num-calib', type=int, default=None,
                        help='training images held out for temperature '
                        'scaling (default: as --num-val)')
    parser.add_argument('--split-seed', type=int, default=0)
    parser.add_argument(
        '--resize', type=int, nargs=2, metavar=('W', 'H'),
        help='write copies padded right/bottom to aspect W/H and resized to '
        'W x H (the paper: 640 800)')
    parser.add_argument('--spacing', type=float, nargs='+', default=[0.1],
                        metavar='MM', help='mm per pixel of the original '
                        'images: one value, or x and y (default 0.1)')
    parser.add_argument('--skip-bad', action='store_true',
                        help='skip bad images with a warning instead of '
                        'stopping')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmchh.datasets.isbi_converter import ConversionError, convert_isbi
    warnings.simplefilter('always')
    warnings.formatwarning = lambda msg, *a, **k: f'warning: {msg}\n'
    try:
        summary = convert_isbi(
            args.root,
            args.out_dir,
            gt=args.gt,
            num_val=args.num_val,
            num_calib=args.num_calib,
            split_seed=args.split_seed,
            resize=tuple(args.resize) if args.resize else None,
            spacing=args.spacing[0] if len(args.spacing) == 1 else
            tuple(args.spacing),
            skip_bad=args.skip_bad)
    except ConversionError as e:
        sys.exit(f'convert_isbi: error: {e}\n(use --skip-bad to skip bad '
                 'images instead)')
    except ValueError as e:
        sys.exit(f'convert_isbi: error: {e}')
    print(summary.format())


if __name__ == '__main__':
    main()
