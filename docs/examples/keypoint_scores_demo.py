# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The table of docs/method.md ("What keypoint_scores mean"): the demo
model's scores on its Test1 images through MMPose's ``MMPoseInferencer``
(no spacing: within 5 % of the box) and ``XrayInferencer`` with each
image's spacing (within 2 mm), beside the mode probability.

Usage (after ``make demo``): python docs/examples/keypoint_scores_demo.py
    [--config work_dirs/demo/unet_r34_onehot_synthetic_demo.py]
    [--checkpoint work_dirs/demo/calibrated.pth]
    [--ann data/synthetic_ceph_coco/test1.json]
"""
import argparse
import json
import os.path as osp

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--config', default='work_dirs/demo/unet_r34_onehot_synthetic_demo.py')
    parser.add_argument('--checkpoint',
                        default='work_dirs/demo/calibrated.pth')
    parser.add_argument('--ann', default='data/synthetic_ceph_coco/test1.json')
    args = parser.parse_args()
    import mmchh  # noqa: F401
    from mmpose.apis import MMPoseInferencer

    from mmchh.apis import XrayInferencer
    with open(args.ann) as f:
        images = json.load(f)['images']
    root = osp.dirname(args.ann)
    plain = MMPoseInferencer(pose2d=args.config,
                             pose2d_weights=args.checkpoint,
                             device='cpu',
                             det_model='whole_image')
    xray = XrayInferencer(args.config, args.checkpoint, device='cpu',
                          det_model='whole_image')
    box, mm, mode = [], [], []
    for image in images:
        path = osp.join(root, image['file_name'])
        (result, ) = list(plain(path))
        box.append(result['predictions'][0][0]['keypoint_scores'])
        (result, ) = list(xray(path, spacing=image['spacing']))
        pred = result['predictions'][0][0]
        mm.append(pred['keypoint_scores'])
        mode.append(pred['keypoint_mode_prob'])
    print('| score | median | smallest | above 0.3 | mean |')
    print('|---|---|---|---|---|')
    for name, values in (
            ('mode probability (`keypoint_mode_prob`)', mode),
            ('within 5 % of the box (`MMPoseInferencer`)', box),
            ('within 2 mm (`XrayInferencer(..., spacing=...)`)', mm)):
        v = np.asarray(values, np.float64)
        print(f'| {name} | {np.median(v):.3f} | {v.min():.3f} | '
              f'{int((v > 0.3).sum())} of {v.size} | {v.mean():.3f} |')


if __name__ == '__main__':
    main()
