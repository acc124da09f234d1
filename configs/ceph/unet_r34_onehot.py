# The paper's recipe (McCouat & Voiculescu, CVPR 2022): ResNet-34 U-Net,
# 2D-softmax heatmaps at input resolution trained with NLL on one-hot
# targets, ISBI 2015 cephalograms resized to 640x800.
#
# Data (see docs/isbi.md):
#   python tools/convert_isbi.py /path/to/ISBI2015 data/isbi2015_coco \
#       --resize 640 800
# Train / test:
#   python tools/train.py configs/ceph/unet_r34_onehot.py
#   python tools/test.py configs/ceph/unet_r34_onehot.py \
#       work_dirs/unet_r34_onehot/best_ceph_MRE_epoch_*.pth
# Offline (no ImageNet weights):
#   --cfg-options model.backbone.init_cfg=None
_base_ = [
    '../_base_/default_runtime.py', '../_base_/datasets/isbi2015_ceph.py'
]

input_size = (640, 800)  # (w, h): divisible by 32 for the U-Net skips
num_keypoints = 19

# 15 epochs, Adam 1e-3, lr x 0.1 at epochs 4, 6 and 8: at 4/15, 6/15 and
# 8/15 of the run, so the milestones follow max_epochs (a 30-epoch run, by
# a derived config or --cfg-options train_cfg.max_epochs=30, decays at
# epochs 8, 12 and 16; FractionMultiStepLR reads the run's length when the
# Runner builds it)
train_cfg = dict(by_epoch=True, max_epochs=15, val_interval=1)
# fused=True: the whole Adam update in one kernel per step (the same
# update as torch's default loop over parameters, 2x faster on a CPU:
# docs/benchmarks.md)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3, fused=True))
param_scheduler = [
    dict(
        type='FractionMultiStepLR',
        by_epoch=True,
        milestone_fractions=(4 / 15, 6 / 15, 8 / 15),
        gamma=0.1)
]
auto_scale_lr = dict(base_batch_size=4)

default_hooks = dict(
    checkpoint=dict(save_best='ceph/MRE', rule='less', max_keep_ckpts=1))

codec = dict(
    type='SoftmaxHeatmap', input_size=input_size, heatmap_size=input_size)

# the encoder: stem (stride 2) + the four ResNet stages (strides 4..32)
backbone = dict(
    type='ResNetWithStem',
    depth=34,
    init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet34'))

model = dict(
    type='TopdownPoseEstimator',
    # grey X-rays are loaded as 3 identical channels for the ImageNet stem
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=backbone,
    # channels and strides are read from the backbone config
    neck=dict(
        type='UNetDecoder',
        backbone=backbone,
        decoder_channels=(256, 128, 64, 32, 32)),
    head=dict(
        type='SoftmaxHeatmapHead',
        in_channels=32,
        out_channels=num_keypoints,
        deconv_out_channels=None,
        final_layer=dict(kernel_size=3, padding=1),
        loss=dict(type='SoftmaxNLLLoss'),
        decoder=codec),
    # lateral cephalograms have no left/right pairs: no flip test
    test_cfg=dict(flip_test=False))

# the paper's augmentation: translate +-10 px, scale 0.95-1.05, rotate
# +-3 deg, intensity x0.5-1.0 and gamma, elastic deformation; no flip.
# LoadFullRangeImage reads every image kind the converters read: 8-bit files
# exactly as MMPose's LoadImage does (ISBI unchanged), 16-bit PNG/TIFF at
# their full range, DICOM/MetaImage/NRRD/NIfTI through the converters' own
# reader, so any converted split trains and tests
train_pipeline = [
    dict(type='LoadFullRangeImage'),
    dict(type='GetBBoxCenterScale', padding=1.0),
    dict(
        type='UniformRandomBBoxTransform',
        shift_factor=(10 / 640, 10 / 800),
        scale_factor=(0.95, 1.05),
        rotate_factor=3.0),
    dict(type='TopdownAffine', input_size=input_size),
    dict(type='RandomIntensityGamma'),
    dict(type='ElasticDeformation', reference_size=(640, 800)),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs', meta_keys={{_base_.ceph_meta_keys}}),
]
val_pipeline = [
    dict(type='LoadFullRangeImage'),
    dict(type='GetBBoxCenterScale', padding=1.0),
    dict(type='TopdownAffine', input_size=input_size),
    # the ground truth on the model's grid, as in training: the head scores
    # its predictions against it (NLL, mode hit) and calibration fits on it
    dict(type='GenerateTargetIfAnnotated', encoder=codec),
    dict(type='PackPoseInputs', meta_keys={{_base_.ceph_meta_keys}}),
]

dataset = dict(
    type={{_base_.dataset_type}},
    data_root={{_base_.data_root}},
    data_mode='topdown',
    data_prefix=dict(img=''))
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(dataset, ann_file='train.json', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        dataset, ann_file='val.json', test_mode=True,
        pipeline=val_pipeline))
test_dataloader = dict(
    val_dataloader,
    dataset=dict(
        dataset, ann_file='test1.json', test_mode=True,
        pipeline=val_pipeline))
# temperature scaling after training, on the held-out calibration split
# (never a test split): calibrated.pth, calibration.json and the
# before/after reliability diagram land in the work dir
calib_dataloader = dict(
    val_dataloader,
    dataset=dict(
        dataset, ann_file='calib.json', test_mode=True,
        pipeline=val_pipeline))
custom_hooks = [
    dict(type='SyncBuffersHook'),
    dict(
        type='TemperatureScalingHook',
        calib_dataloader='calib_dataloader',
        erroneous_mm=2.0,
        target_tpr=0.5),
]
