# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Predict landmarks on an X-ray or on every file of a folder.

Any image the converters read (PNG/JPEG/BMP/TIFF 8/16-bit, DICOM,
MetaImage, NRRD, NIfTI), each with its spacing: the file's header first,
then --spacing or the image's row of --spacing-file (a CSV
image,spacing_x,spacing_y), else none; a given spacing that contradicts a
header is a warning and the header wins unless --spacing-overrides-header.

Writes DIR/results/<name>.json and DIR/overlays/<name>.png per image as
soon as it is predicted, and DIR/landmarks.json and DIR/landmarks.csv
after every batch ("complete": false until the end, so an interrupted run
keeps what was done). Each landmark says whether it is flagged for
review and why (flag_reasons: ere, implausible -- off the shape the other
landmarks give, with a checkpoint calibrated with a configuration model --
or invalid); the summary prints both flags' thresholds and basis. With
--measurements also the eight ISBI 2015
cephalometric measurements (ANB, SNB, SNA, ODI, APDI, FHI, FMA, MW) with
mean, std, interval and class probabilities, in the JSON and in
DIR/measurements.csv (the intervals fitted by calibration, stored in the
checkpoint, as tools/measure.py gives them; a checkpoint without a stored
scale: one warning and the full-map intervals, labelled FULL-MAP;
--intervals full-map asks for those); with --format labelme also DIR/labelme/<name>.json,
the prediction as a labelme file for a clinician's review (exact
coordinates, flagged landmarks marked with their reasons; read back with
tools/convert_landmarks.py --labelme reviewed=DIR/labelme); with --report
also DIR/report.html, one page for review that opens from disk: the images
that most need review first, each flagged landmark zoomed (DIR/report/)
with its region and ERE, by decreasing ERE (the last line printed names
it). <name> is the
file's stem, or its whole name where two inputs share a stem (a.bmp,
a.png). A DIR holding an earlier run's outputs is refused unless
--overwrite is given: the run then writes into a staging folder beside DIR
that replaces it only when the run succeeded (files of DIR that infer.py
does not write are carried over), so a bad checkpoint or a crash leaves
the earlier results as they were. One run at a time per DIR (the lock
DIR/.infer.lock; a second run stops with one line naming the first).
Options are checked before the model is loaded. Files that cannot be read
are reported on stderr and in the JSON, then skipped; invalid landmarks
(non-finite heatmaps) are counted in a warning line. Exit code 0 if at
least one image was predicted with at least one valid landmark; 1 with one
line on stderr for a bad option, file or checkpoint, no predicted image or
no valid landmark at all; 130 on Ctrl-C, after writing the tables for the
images done ("interrupted after N of M images").

The checkpoint carries its recipe (model, grid, test pipeline, landmark
names), so --config is not needed; a --config whose input/heatmap size,
landmark count or names differ from the checkpoint's is refused (one line
naming both) unless --allow-config-mismatch.

Example:
    python tools/infer.py xrays/ \
        --checkpoint work_dirs/unet_r34_onehot/calibrated.pth \
        --out-dir preds/ --spacing 0.1 --measurements --format labelme
"""
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from mmchh.utils import cli
    parser = cli.ArgumentParser(prog='infer.py',
                                description=__doc__.splitlines()[0])
    parser.add_argument('input', help='an image file or a folder')
    parser.add_argument('--config', help='config file (default: the '
                        "checkpoint's own recipe; a config given is checked "
                        'against it)')
    cli.add_allow_config_mismatch(parser)
    cli.add_amp_option(parser)
    parser.add_argument('--checkpoint', required=True,
                        help='checkpoint (normally calibrated.pth)')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--device', default='cpu',
                        help="'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument('--spacing-file', metavar='CSV',
                        help='a CSV image,spacing_x,spacing_y giving images '
                        'their mm per pixel (each row an input file, once); '
                        'not with --spacing')
    parser.add_argument('--spacing-overrides-header', action='store_true',
                        help='use --spacing / --spacing-file even where an '
                        "image's header (DICOM, MetaImage...) has another "
                        "spacing (by default the header's wins, with a "
                        'warning)')
    parser.add_argument('--spacing', type=cli.finite_positive_float, nargs='+', metavar='MM',
                        help='mm per pixel of the input images: one value '
                        'or x y (gives ERE in mm and the flags); an image '
                        "whose header (DICOM, MetaImage...) has a spacing "
                        'keeps its own')
    parser.add_argument('--batch-size', type=cli.positive_int, default=4)
    parser.add_argument('--no-overlay', action='store_true',
                        help='do not draw overlays')
    cli.add_overlay_show_option(parser)
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the outputs of an earlier run in '
                        '--out-dir, only once this run has succeeded (it '
                        'writes into a staging folder beside it)')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--measurements', action='store_true',
                        help='also compute the 8 ISBI 2015 measurements with '
                        'intervals and class probabilities (19-landmark '
                        'ISBI models; MW needs --spacing)')
    parser.add_argument('--intervals', choices=('fitted', 'full-map'),
                        default='fitted', help='--measurements intervals: '
                        'fitted (default): the scale calibration stored in '
                        'the checkpoint (as tools/measure.py); full-map: '
                        'the full-map draws\' 95 %% intervals, labelled as '
                        'such')
    parser.add_argument('--num-samples', type=cli.positive_int, default=1000,
                        help='landmark draws per heatmap for --measurements')
    parser.add_argument('--seed', type=cli.any_int, default=0,
                        help='seed of the draws for --measurements')
    parser.add_argument('--format', action='append', choices=('labelme', ),
                        default=[], metavar='FORMAT',
                        help='an extra output on top of the standard ones '
                        '(JSON, CSV, overlays: always written): labelme = '
                        'DIR/labelme/<name>.json per image for review, '
                        'read back by tools/convert_landmarks.py --labelme '
                        'reviewed=DIR/labelme')
    parser.add_argument('--report', action='store_true',
                        help='also write DIR/report.html: the images that '
                        'most need review first, each flagged landmark '
                        'zoomed (DIR/report/) with its region and ERE')
    args = parser.parse_args(argv)
    if args.spacing is not None and len(args.spacing) > 2:
        parser.error('--spacing takes one value or two (x y)')
    if args.spacing is not None and args.spacing_file is not None:
        parser.error('--spacing and --spacing-file: give one of them')
    if args.num_samples < 1:
        parser.error('--num-samples must be >= 1')
    return args


def check_options(args):
    """Checks every option before any work (before the model is loaded).

    Raises:
        InputError: naming the option, its value and what is expected.
    """
    import torch

    from mmchh.utils.errors import InputError
    from mmchh.utils.spacing import Spacing
    if not osp.exists(args.input):
        raise InputError(f'input {args.input} does not exist')
    if args.batch_size < 1:
        raise InputError(f'--batch-size must be >= 1; got {args.batch_size}')
    Spacing.parse_optional(args.spacing, '--spacing')
    try:
        device = torch.device(args.device)
    except (RuntimeError, ValueError) as e:
        raise InputError(f'--device {args.device} is not a torch device '
                         "('cpu', 'cuda', 'cuda:N')") from e
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise InputError(f'--device {args.device}: CUDA is not '
                             'available on this machine; use --device cpu')
        if device.index is not None and \
                device.index >= torch.cuda.device_count():
            raise InputError(f'--device {args.device}: there are only '
                             f'{torch.cuda.device_count()} CUDA device(s)')
    elif device.type not in ('cpu', 'mps', 'xpu'):
        raise InputError(f'--device {args.device}: unsupported device type '
                         f'{device.type!r}')
    from mmchh.apis.infer_output import check_out_dir
    if args.spacing_file is not None:
        # every row checked before the model is loaded
        from mmchh.apis.batch_infer import list_inputs
        from mmchh.apis.image_spacing import read_spacing_file
        read_spacing_file(args.spacing_file, list_inputs(args.input))
    check_out_dir(args.out_dir, args.overwrite, args.report)


def _load_model(args):
    """The model, or an ``InputError`` when it does not fit the config or
    the task."""
    from mmchh.apis import init_landmark_model
    from mmchh.utils.errors import InputError
    try:
        model = init_landmark_model(
            args.config, args.checkpoint, args.device,
            allow_config_mismatch=args.allow_config_mismatch, amp=args.amp)
        if args.measurements:
            from mmchh.apis.inference import check_measurement_model
            check_measurement_model(model)
    except ValueError as e:
        # the model does not fit the config / the task: the user's to fix
        raise InputError(str(e)) from e
    return model


def _main(argv=None):
    start_time = time.time()
    args = parse_args(argv)
    check_options(args)
    from mmchh.apis.batch_infer import InferenceInterrupted, infer_files
    from mmchh.apis.infer_output import InferOutput
    from mmchh.utils.cli import option_values

    with InferOutput(args.out_dir, args.overwrite, 'infer.py') as output:
        model = _load_model(args)
        try:
            results, errors = infer_files(
                model, args.input, output.path,
                overlay=not args.no_overlay and args.overlay_show,
                progress=not args.no_progress,
                labelme='labelme' in args.format,
                **option_values(args, 'spacing', 'spacing_file',
                                'spacing_overrides_header', 'batch_size',
                                'measurements', 'num_samples', 'seed',
                                'intervals', 'report'))
        except InferenceInterrupted as stop:
            output.keep()
            kept = f' (not swapped in: the earlier results in ' \
                f'{args.out_dir} are unchanged)' if args.overwrite else ''
            print(f'infer.py: interrupted after {stop.done} of {stop.total} '
                  f'images; results for those are in {output.path}{kept}',
                  file=sys.stderr)
            return 130
        from mmchh.apis.infer_summary import infer_outcome
        status = infer_outcome(args, output, results, errors, model)
        if status == 0:
            # what it wrote; the review report, when asked for, last: the
            # file to open next
            from mmchh.utils.cli import print_written
            print_written('infer.py', [
                (what, osp.join(args.out_dir, name)) for what, name in (
                    ('predictions', 'landmarks.json'),
                    ('table', 'landmarks.csv'),
                    ('measurements', 'measurements.csv'),
                    ('overlays', 'overlays'))
            ], since=start_time)
        if args.report and status == 0:
            print('infer.py: review report (open this first): '
                  f'{osp.join(args.out_dir, "report.html")}')
        return status


def main(argv=None):
    from mmchh.utils.cli import run_tool
    return run_tool('infer.py', _main, argv)


if __name__ == '__main__':
    sys.exit(main())
