"""Convert annotated images (labelme, CSV or COCO landmarks) to the
COCO-keypoint layout mmchh trains on.

Images of any supported kind (PNG/JPEG/BMP/TIFF 8/16-bit, DICOM,
MetaImage/NRRD/NIfTI) are paired with their annotations by file stem;
spacing comes from the image header, else ``--spacing``, else it is
unknown (written as null and reported). Writes OUT/{train,val,calib,test}
.json, OUT/images/, OUT/metainfo.py, OUT/conversion_report.json and
OUT/conversion.json; the folder is replaced as a whole and atomically. See
:mod:`mmchh.datasets.converters.landmarks`; ``tools/convert_landmarks.py``
runs this.

Example:
    python tools/dataset_converters/convert_landmarks.py data/own_coco \
        --images xrays/ --keypoints sella nasion menton \
        --labelme dr_a=labels_a/ --labelme dr_b=labels_b/ --skip-bad
    # the names of an earlier conversion (or a file, one name per line)
    python tools/dataset_converters/convert_landmarks.py data/reviewed \
        --images new_xrays/ --keypoints-file data/own_coco/metainfo.py \
        --labelme reviewed=preds/labelme/ --test-fraction 1
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def _annotator_dir(text: str):
    name, sep, folder = text.partition('=')
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(
            f'expected ANNOTATOR=DIR, got {text!r}')
    return name, folder


def parse_args(argv=None):
    from mmchh.utils import cli
    parser = cli.ArgumentParser(
        prog='convert_landmarks.py',
        description='Convert images annotated with landmarks (labelme JSON '
        'per annotator, a long-format CSV, or a COCO file) to COCO-keypoint '
        'JSON files OUT/{train,val,calib,test}.json with OUT/images/, '
        'OUT/metainfo.py, OUT/conversion_report.json and '
        'OUT/conversion.json.')
    parser.add_argument(
        'out_dir',
        metavar='OUT',
        help='where to write: a new or empty '
        'folder, or an earlier conversion (replaced as a whole)')
    parser.add_argument('--images',
                        required=True,
                        metavar='DIR',
                        help='the folder of images (paired with annotations '
                        'by file stem)')
    names = parser.add_mutually_exclusive_group(required=True)
    names.add_argument('--keypoints',
                       nargs='+',
                       metavar='NAME',
                       help='the keypoint names (labels), in output order')
    names.add_argument('--keypoints-file',
                       metavar='FILE',
                       help='the keypoint names from a file: one name per '
                       'line (blank lines and # comments ignored), or a '
                       'converted folder\'s metainfo.py (or the folder), '
                       'read without running it')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--labelme',
                        action='append',
                        type=_annotator_dir,
                        metavar='ANNOTATOR=DIR',
                        help='a folder of labelme JSON files of one '
                        'annotator (repeat for each annotator)')
    source.add_argument('--csv',
                        metavar='FILE',
                        help='long-format CSV: image,keypoint,x,y'
                        '[,annotator]')
    source.add_argument('--coco',
                        metavar='FILE',
                        help='an existing COCO-keypoint file')
    parser.add_argument('--spacing',
                        type=cli.any_float,
                        nargs='+',
                        metavar='MM',
                        help='mm per pixel (one value, or x and y) of images '
                        'whose file has none in its header')
    parser.add_argument('--skip-bad',
                        action='store_true',
                        help='record every fault in '
                        'OUT/conversion_report.json and go on instead of '
                        'stopping at the first')
    parser.add_argument('--resize', **cli.size_pair(),
                        help='write copies padded right/bottom to aspect W/H '
                        'and resized to W x H')
    parser.add_argument('--test-fraction',
                        type=cli.any_float,
                        default=0.2,
                        metavar='F',
                        help='share of the images held out as '
                        'the test split (default 0.2; 0: none; 1: every '
                        'image, one included, as a test-only folder with '
                        'test.json alone, e.g. a reviewed batch to score)')
    parser.add_argument('--num-val',
                        type=cli.any_int,
                        default=None,
                        help='images held out for validation, >= 1 '
                        '(default: 10 %% of the rest, at least 1, at most 15)')
    parser.add_argument('--num-calib',
                        type=cli.any_int,
                        default=None,
                        help='images held out for temperature scaling, >= 1 '
                        '(default: as --num-val)')
    parser.add_argument('--split-seed', type=cli.any_int, default=0)
    parser.add_argument(
        '--duplicates',
        choices=('together', 'drop', 'error'),
        default='together',
        help='images with the same pixels (or nearly: resized, '
        'recompressed, another bit depth): keep each cluster in one split '
        '(together, default), keep only its first image by name (drop), or '
        'stop (error); every pair is reported')
    parser.add_argument('--groups',
                        metavar='FILE',
                        help='CSV "image,group" (or "stem,group"): the '
                        'patient of every image; one group\'s images share '
                        'a split')
    parser.add_argument('--gt',
                        default='mean',
                        metavar='mean|ANNOTATOR',
                        help='ground truth: mean of the annotators who '
                        'marked each landmark (default), or one annotator')
    args = parser.parse_args(argv)
    if args.spacing is not None and len(args.spacing) > 2:
        parser.error('--spacing takes one value, or x and y')
    return args


def _main(argv=None):
    start_time = time.time()
    args = parse_args(argv)
    from mmchh.datasets.converters import (ConversionError,
                                           convert_landmarks,
                                           read_keypoint_names)
    from mmchh.datasets.converters.conversion_tool import (one_line_warnings,
                                                           run_conversion)
    from mmchh.utils import cli
    one_line_warnings()
    labelme = None
    if args.labelme:
        labelme = {}
        for name, folder in args.labelme:
            if name in labelme:
                raise ConversionError(f'--labelme {name}=...: annotator '
                                      f'{name} given twice')
            labelme[name] = folder
    run_conversion(
        'convert_landmarks.py', lambda: convert_landmarks(
            args.out_dir, args.images,
            args.keypoints or read_keypoint_names(args.keypoints_file),
            labelme=labelme, spacing=cli.spacing_value(args.spacing),
            resize=tuple(args.resize) if args.resize else None,
            **cli.option_values(args, 'csv', 'coco', 'gt', 'skip_bad',
                                'test_fraction', 'num_val', 'num_calib',
                                'split_seed', 'duplicates', 'groups')),
        'use --skip-bad to record faults and go on instead')
    cli.print_written('convert_landmarks.py', [
        ('dataset', args.out_dir),
        ('landmark names', osp.join(args.out_dir, 'metainfo.py')),
        ('conversion record', osp.join(args.out_dir, 'conversion.json')),
        ('conversion report',
         osp.join(args.out_dir, 'conversion_report.json'))
    ], since=start_time)


def main(argv=None):
    from mmchh.utils.cli import run_tool
    return run_tool('convert_landmarks.py', _main, argv)


if __name__ == '__main__':
    sys.exit(main())
