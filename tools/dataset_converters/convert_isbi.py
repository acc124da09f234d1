"""Convert the ISBI 2015 cephalometric release to COCO-keypoint JSON.

The output folder is replaced as a whole and atomically (an interrupted run
leaves the previous conversion or the new one, never a mix); a non-empty
folder that is not an earlier conversion is refused. Options are checked
before anything is written. See :mod:`mmchh.datasets.converters` (the
library code, one module per step); ``tools/convert_isbi.py`` runs this.

Example:
    python tools/dataset_converters/convert_isbi.py /data/ISBI2015 \
        data/isbi2015_coco --resize 640 800
"""
import os.path as osp
import sys
import time

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    from mmchh.utils import cli
    parser = cli.ArgumentParser(
        prog='convert_isbi.py',
        description='Convert ISBI 2015 cephalometric data (RawImage/ + '
        'AnnotationsByMD/400_senior, 400_junior) to COCO-keypoint JSON files '
        'OUT_DIR/{train,val,calib,test1,test2}.json (test2 only when '
        'RawImage/Test2Data exists) and OUT_DIR/conversion.json.')
    parser.add_argument('root', help='the ISBI release folder')
    parser.add_argument(
        'out_dir', help='where to write the JSON files: a new or empty '
        'folder, or an earlier conversion (replaced as a whole)')
    parser.add_argument(
        '--gt', default='mean', choices=['mean', 'senior', 'junior'],
        help='training ground truth (default: mean of the annotators, as in '
        'the paper)')
    parser.add_argument('--num-val', type=cli.any_int, default=None,
                        help='training images held out for validation, >= 1 '
                        '(default: 10 %% of them, at least 1, at most 15)')
    parser.add_argument('--num-calib', type=cli.any_int, default=None,
                        help='training images held out for temperature '
                        'scaling, >= 1 (default: as --num-val)')
    parser.add_argument('--split-seed', type=cli.any_int, default=0)
    parser.add_argument(
        '--resize', **cli.size_pair(),
        help='write copies padded right/bottom to aspect W/H and resized to '
        'W x H, each in 1..16384 (the paper: 640 800)')
    parser.add_argument('--spacing', type=cli.any_float, nargs='+',
                        default=[0.1], metavar='MM',
                        help='mm per pixel of the original images: one '
                        'value, or x and y (default 0.1)')
    parser.add_argument('--skip-bad', action='store_true',
                        help='skip bad images with a warning instead of '
                        'stopping')
    return parser.parse_args(argv)


def _main(argv=None):
    start_time = time.time()
    args = parse_args(argv)
    from mmchh.datasets.converters import convert_isbi
    from mmchh.datasets.converters.conversion_tool import (one_line_warnings,
                                                           run_conversion)
    from mmchh.utils import cli
    one_line_warnings()
    run_conversion(
        'convert_isbi.py', lambda: convert_isbi(
            args.root, args.out_dir,
            resize=tuple(args.resize) if args.resize else None,
            spacing=cli.spacing_value(args.spacing),
            **cli.option_values(args, 'gt', 'num_val', 'num_calib',
                                'split_seed', 'skip_bad')),
        'use --skip-bad to skip bad images instead')
    cli.print_written('convert_isbi.py', [
        ('dataset', args.out_dir),
        ('conversion record', osp.join(args.out_dir, 'conversion.json'))
    ], since=start_time)


def main(argv=None):
    from mmchh.utils.cli import run_tool
    return run_tool('convert_isbi.py', _main, argv)


if __name__ == '__main__':
    sys.exit(main())
