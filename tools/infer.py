# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Predict landmarks on an X-ray or on every file of a folder.

Writes DIR/results/<name>.json and DIR/overlays/<name>.png per image as
soon as it is predicted, and DIR/landmarks.json and DIR/landmarks.csv
after every batch ("complete": false until the end, so an interrupted run
keeps what was done); with --measurements also the eight ISBI 2015
cephalometric measurements (ANB, SNB, SNA, ODI, APDI, FHI, FMA, MW) with
mean, std, 95 % interval and class probabilities, in the JSON and in
DIR/measurements.csv; with --format labelme also DIR/labelme/<name>.json,
the prediction as a labelme file for a clinician's review (exact
coordinates, flagged landmarks marked; read back with
tools/convert_landmarks.py --labelme reviewed=DIR/labelme). <name> is the
file's stem, or its whole name where two inputs share a stem (a.bmp,
a.png). A DIR holding an earlier run's outputs is refused unless
--overwrite is given (which removes them first). Options are checked
before the model is loaded. Files that cannot be read
are reported on stderr and in the JSON, then skipped. Exit code 0 if at
least one image was predicted, 1 otherwise (one line on stderr for a bad
option, file or checkpoint).

Example:
    python tools/infer.py xrays/ --config configs/ceph/unet_r34_onehot.py \
        --checkpoint work_dirs/unet_r34_onehot/calibrated.pth \
        --out-dir preds/ --spacing 0.1 --measurements --format labelme
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('input', help='an image file or a folder')
    parser.add_argument('--config', required=True, help='config file')
    parser.add_argument('--checkpoint', required=True,
                        help='checkpoint (normally calibrated.pth)')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--device', default='cpu',
                        help="'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument('--spacing', type=float, nargs='+', metavar='MM',
                        help='mm per pixel of the input images: one value '
                        'or x y (gives ERE in mm and the flags)')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--no-overlay', action='store_true',
                        help='do not draw overlays')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the outputs of an earlier run in '
                        '--out-dir (they are removed first)')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--measurements', action='store_true',
                        help='also compute the 8 ISBI 2015 measurements with '
                        'intervals and class probabilities (19-landmark '
                        'ISBI models; MW needs --spacing)')
    parser.add_argument('--num-samples', type=int, default=1000,
                        help='landmark draws per heatmap for --measurements')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the draws for --measurements')
    parser.add_argument('--format', action='append', choices=('labelme', ),
                        default=[], metavar='FORMAT',
                        help='an extra output on top of the standard ones '
                        '(JSON, CSV, overlays: always written): labelme = '
                        'DIR/labelme/<name>.json per image for review, '
                        'read back by tools/convert_landmarks.py --labelme '
                        'reviewed=DIR/labelme')
    args = parser.parse_args(argv)
    if args.spacing is not None and len(args.spacing) > 2:
        parser.error('--spacing takes one value or two (x y)')
    if args.num_samples < 1:
        parser.error('--num-samples must be >= 1')
    return args


#: What a run writes into --out-dir (removed by --overwrite, nothing else).
OUTPUT_FILES = ('landmarks.json', 'landmarks.csv', 'measurements.csv')
OUTPUT_FOLDERS = (('results', '.json'), ('overlays', '.png'),
                  ('labelme', '.json'))  # labelme_export.LABELME_FOLDER


def _earlier_outputs(out_dir):
    """The files of an earlier run in ``out_dir`` (paths)."""
    found = [osp.join(out_dir, n) for n in OUTPUT_FILES
             if osp.isfile(osp.join(out_dir, n))]
    for folder, ext in OUTPUT_FOLDERS:
        path = osp.join(out_dir, folder)
        if osp.isdir(path):
            found += [osp.join(path, n) for n in sorted(os.listdir(path))
                      if n.endswith(ext)]
    return found


def check_options(args):
    """Checks every option before any work (before the model is loaded).

    Raises:
        InputError: naming the option, its value and what is expected.
    """
    import math

    import torch

    from mmchh.utils.errors import InputError
    if not osp.exists(args.input):
        raise InputError(f'input {args.input} does not exist')
    if args.batch_size < 1:
        raise InputError(f'--batch-size must be >= 1; got {args.batch_size}')
    if args.spacing is not None and not all(
            math.isfinite(v) and v > 0 for v in args.spacing):
        raise InputError('--spacing must be positive, finite mm per pixel; '
                         f'got {" ".join(str(v) for v in args.spacing)}')
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
    out = args.out_dir
    if osp.exists(out) and not osp.isdir(out):
        raise InputError(f'--out-dir {out} is a file, not a folder')
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise InputError(f'--out-dir {out} cannot be created: '
                         f'{e.strerror or e}') from e
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(f'--out-dir {out} is not writable')
    earlier = _earlier_outputs(out)
    if earlier and not args.overwrite:
        raise InputError(
            f'--out-dir {out} already holds the outputs of an earlier run '
            f'({len(earlier)} file(s), e.g. {earlier[0]}); choose another '
            'folder or pass --overwrite to replace them')


def _main(argv=None):
    args = parse_args(argv)
    check_options(args)
    from mmchh.apis import init_landmark_model
    from mmchh.apis.batch_infer import infer_files

    if args.overwrite:
        for path in _earlier_outputs(args.out_dir):
            os.remove(path)
    from mmchh.utils.errors import InputError
    try:
        model = init_landmark_model(args.config, args.checkpoint,
                                    args.device)
        if args.measurements:
            from mmchh.apis.inference import check_measurement_model
            check_measurement_model(model)
    except ValueError as e:
        # the model does not fit the config / the task: the user's to fix
        raise InputError(str(e)) from e
    results, errors = infer_files(
        model,
        args.input,
        args.out_dir,
        spacing=args.spacing,
        batch_size=args.batch_size,
        overlay=not args.no_overlay,
        progress=not args.no_progress,
        measurements=args.measurements,
        num_samples=args.num_samples,
        seed=args.seed,
        labelme='labelme' in args.format)
    if not results:
        print(f'infer.py: no image could be predicted '
              f'({len(errors)} file(s) skipped, see '
              f'{osp.join(args.out_dir, "landmarks.json")})',
              file=sys.stderr)
        return 1
    print(f'infer.py: {len(results)} image(s) predicted, {len(errors)} '
          f'skipped; outputs in {args.out_dir}')
    if 'labelme' in args.format:
        from mmchh.apis.labelme_export import LABELME_FOLDER, labelme_summary
        print(labelme_summary(results,
                              osp.join(args.out_dir, LABELME_FOLDER)))
    return 0


def main(argv=None):
    from mmchh.utils.cli import run_tool
    return run_tool('infer.py', _main, argv)


if __name__ == '__main__':
    sys.exit(main())
