# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Predict landmarks on an X-ray or on every file of a folder.

Writes DIR/landmarks.json, DIR/landmarks.csv and DIR/overlays/<stem>.png;
with --measurements also the eight ISBI 2015 cephalometric measurements
(ANB, SNB, SNA, ODI, APDI, FHI, FMA, MW) with mean, std, 95 % interval and
class probabilities, in the JSON and in DIR/measurements.csv.
Files that cannot be read are reported on stderr and in the JSON, then
skipped. Exit code 0 if at least one image was predicted, 1 otherwise.

Example:
    python tools/infer.py xrays/ --config configs/ceph/unet_r34_onehot.py \
        --checkpoint work_dirs/unet_r34_onehot/calibrated.pth \
        --out-dir preds/ --spacing 0.1 --measurements
"""
import argparse
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
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--measurements', action='store_true',
                        help='also compute the 8 ISBI 2015 measurements with '
                        'intervals and class probabilities (19-landmark '
                        'ISBI models; MW needs --spacing)')
    parser.add_argument('--num-samples', type=int, default=1000,
                        help='landmark draws per heatmap for --measurements')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the draws for --measurements')
    args = parser.parse_args(argv)
    if args.spacing is not None and len(args.spacing) > 2:
        parser.error('--spacing takes one value or two (x y)')
    if args.num_samples < 1:
        parser.error('--num-samples must be >= 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmchh.apis import init_landmark_model
    from mmchh.apis.batch_infer import infer_files

    if not osp.exists(args.input):
        sys.exit(f'infer.py: input {args.input} does not exist')
    try:
        model = init_landmark_model(args.config, args.checkpoint,
                                    args.device)
        if args.measurements:
            from mmchh.apis.inference import check_measurement_model
            check_measurement_model(model)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'infer.py: {e}')
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
        seed=args.seed)
    if not results:
        print(f'infer.py: no image could be predicted '
              f'({len(errors)} file(s) skipped, see '
              f'{osp.join(args.out_dir, "landmarks.json")})',
              file=sys.stderr)
        return 1
    print(f'infer.py: {len(results)} image(s) predicted, {len(errors)} '
          f'skipped; outputs in {args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
