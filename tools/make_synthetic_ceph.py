# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Write a synthetic data set in the ISBI 2015 cephalometric layout.

Usage: python tools/make_synthetic_ceph.py OUT_ROOT [--num-train N]
    [--num-test1 N] [--num-test2 N] [--size W H] [--seed S] [--flat]
"""
import argparse
import os.path as osp
import sys

# run from a checkout without installing the package
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from mmchh.utils import cli
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('out_root', help='folder to write the data set into')
    parser.add_argument('--num-train', type=cli.any_int, default=10)
    parser.add_argument('--num-test1', type=cli.any_int, default=4)
    parser.add_argument('--num-test2', type=cli.any_int, default=4)
    parser.add_argument(
        '--size', **cli.size_pair(), default=(320, 400),
        help='image width and height (the real set is 1935 2400)')
    parser.add_argument('--seed', type=cli.any_int, default=0)
    parser.add_argument(
        '--flat', action='store_true',
        help='put 400_senior/ and 400_junior/ directly under OUT_ROOT '
        'instead of under AnnotationsByMD/')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # imported late: it pulls in cv2 and numpy, not needed for --help
    from mmchh.datasets.synthetic import make_synthetic_ceph

    try:
        summary = make_synthetic_ceph(
            args.out_root,
            num_train=args.num_train,
            num_test1=args.num_test1,
            num_test2=args.num_test2,
            image_size=tuple(args.size),
            seed=args.seed,
            nested=not args.flat)
    except ValueError as err:  # bad sizes/counts: the user's to fix
        from mmchh.utils.cli import fail
        fail('make_synthetic_ceph.py', err)
    w, h = summary['image_size']
    splits = ', '.join(f'{n} {k}' for k, n in summary['splits'].items())
    print(f'make_synthetic_ceph: {summary["num_images"]} images ({splits}), '
          f'{w}x{h}, seed {summary["seed"]}, in {summary["out_root"]}')


if __name__ == '__main__':
    sys.exit(main())
