# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""A tiny learnable COCO-keypoint set and a full Runner config for it.

Used by the test suite and ``make demo`` to train MMPose's own
``TopdownPoseEstimator`` with mmchh's head, codec and loss in seconds on a
CPU: real files, a real MMEngine ``Runner``, real checkpoints.
"""
import json
import os
import os.path as osp

import cv2
import numpy as np

TINY_KEYPOINT_NAMES = ('disc', 'square', 'cross')


def write_tiny_coco(root, num_images=8, size=64, seed=0):
    """Writes grey images with three bright marks and their COCO JSON.

    Each image holds a disc, a square and a cross at random integer pixel
    positions; the keypoints are their centres, so the task is learnable
    in a few epochs at 64 x 64.

    Returns:
        tuple: (annotation file path, metainfo file path)
    """
    rng = np.random.default_rng(seed)
    img_dir = osp.join(root, 'images')
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        img = rng.integers(0, 40, (size, size), dtype=np.uint8)
        pts = rng.integers(8, size - 8, (3, 2))
        cv2.circle(img, tuple(int(v) for v in pts[0]), 4, 255, -1)
        x, y = pts[1]
        img[y - 3:y + 4, x - 3:x + 4] = 200
        x, y = pts[2]
        img[y - 4:y + 5, x] = 150
        img[y, x - 4:x + 5] = 150
        name = f'{i:03d}.png'
        cv2.imwrite(osp.join(img_dir, name), img)
        images.append(dict(id=i + 1, file_name=name, width=size, height=size))
        kpts = np.concatenate([pts, np.full((3, 1), 2)], axis=1)
        annotations.append(
            dict(
                id=i + 1,
                image_id=i + 1,
                category_id=1,
                keypoints=kpts.reshape(-1).astype(float).tolist(),
                num_keypoints=3,
                bbox=[0, 0, size, size],
                area=size * size,
                iscrowd=0))
    coco = dict(
        images=images,
        annotations=annotations,
        categories=[
            dict(
                id=1,
                name='marks',
                keypoints=list(TINY_KEYPOINT_NAMES),
                skeleton=[])
        ])
    ann_file = osp.join(root, 'tiny.json')
    with open(ann_file, 'w') as f:
        json.dump(coco, f)
    meta_file = osp.join(root, 'tiny_meta.py')
    keypoint_info = {
        i: dict(name=n, id=i, color=[255, 0, 0], type='', swap='')
        for i, n in enumerate(TINY_KEYPOINT_NAMES)
    }
    with open(meta_file, 'w') as f:
        f.write('dataset_info = ' + repr(
            dict(
                dataset_name='tiny_marks',
                paper_info=dict(),
                keypoint_info=keypoint_info,
                skeleton_info=dict(),
                joint_weights=[1.0] * 3,
                sigmas=[0.025] * 3)) + '\n')
    return ann_file, meta_file


def tiny_runner_cfg(root, work_dir, max_epochs=8, input_size=(64, 64),
                    heatmap_size=(16, 16)):
    """A full MMPose/MMEngine config dict for the tiny dataset."""
    ann_file, meta_file = write_tiny_coco(root)
    codec = dict(
        type='SoftmaxHeatmap', input_size=input_size,
        heatmap_size=heatmap_size)
    train_pipeline = [
        dict(type='LoadImage', color_type='grayscale'),
        dict(type='GetBBoxCenterScale', padding=1.0),
        dict(type='TopdownAffine', input_size=input_size),
        dict(type='GenerateTarget', encoder=codec),
        dict(type='PackPoseInputs'),
    ]
    # validation and testing encode the ground truth on the model's grid
    # too (for scoring and calibration); images without keypoints
    # (inference) pass through
    test_pipeline = [
        dict(t, type='GenerateTargetIfAnnotated')
        if t['type'] == 'GenerateTarget' else t for t in train_pipeline
    ]
    dataset = dict(
        type='CocoDataset',
        data_root=root,
        data_mode='topdown',
        ann_file=ann_file,
        data_prefix=dict(img='images/'),
        metainfo=dict(from_file=meta_file))

    def loader(pipeline, shuffle, batch_size):
        return dict(
            batch_size=batch_size,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=shuffle),
            dataset=dict(dataset, pipeline=pipeline))

    # 3 deconvs take the stride-32 ResNet feature to stride 4: 64 -> 16.
    model = dict(
        type='TopdownPoseEstimator',
        data_preprocessor=dict(
            type='PoseDataPreprocessor', mean=[127.5], std=[64.0]),
        backbone=dict(type='ResNet', depth=18, in_channels=1),
        head=dict(
            type='SoftmaxHeatmapHead',
            in_channels=512,
            out_channels=3,
            deconv_out_channels=(64, 64, 64),
            loss=dict(type='SoftmaxNLLLoss'),
            decoder=codec),
        test_cfg=dict(flip_test=False))
    return dict(
        default_scope='mmpose',
        custom_imports=dict(imports=['mmchh'], allow_failed_imports=False),
        work_dir=work_dir,
        model=model,
        train_dataloader=loader(train_pipeline, True, 2),
        val_dataloader=loader(test_pipeline, False, 4),
        test_dataloader=loader(test_pipeline, False, 4),
        val_evaluator=dict(type='EPE'),
        test_evaluator=dict(type='EPE'),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
        val_cfg=dict(),
        test_cfg=dict(),
        optim_wrapper=dict(
            optimizer=dict(type='Adam', lr=2e-3, fused=True)),
        param_scheduler=[
            dict(type='MultiStepLR', by_epoch=True,
                 milestones=[max_epochs - 1], gamma=0.1)
        ],
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=1),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', interval=1),
            sampler_seed=dict(type='DistSamplerSeedHook')),
        env_cfg=dict(
            cudnn_benchmark=False,
            mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
            dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=0),
        log_level='WARNING',
        launcher='none')
