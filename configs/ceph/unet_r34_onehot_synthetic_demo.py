# CPU demo of the paper's recipe on the embedded synthetic ISBI-format set
# (`make demo` runs it end to end). Same model, loss, codec and
# augmentation as unet_r34_onehot.py, shrunk for 2 CPU cores: 128x160
# input (heatmaps at input resolution), no ImageNet weights, more epochs on
# fewer images.
#   python tools/make_synthetic_ceph.py data/synthetic_ceph --num-train 24 \
#       --num-test1 8
#   python tools/convert_isbi.py data/synthetic_ceph data/synthetic_ceph_coco \
#       --num-val 4 --num-calib 4 --resize 128 160 --spacing 0.6047 0.6
#   python tools/train.py configs/ceph/unet_r34_onehot_synthetic_demo.py
_base_ = ['./unet_r34_onehot.py']

input_size = (128, 160)
data_root = 'data/synthetic_ceph_coco/'

train_cfg = dict(max_epochs=40, val_interval=10)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[30, 36], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=5), checkpoint=dict(interval=10, max_keep_ckpts=1))
randomness = dict(seed=0)

codec = dict(
    type='SoftmaxHeatmap', input_size=input_size, heatmap_size=input_size)
model = dict(backbone=dict(init_cfg=None), head=dict(decoder=codec))

train_pipeline = [
    dict(type='LoadImage'),
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
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale', padding=1.0),
    dict(type='TopdownAffine', input_size=input_size),
    dict(type='PackPoseInputs', meta_keys={{_base_.ceph_meta_keys}}),
]
train_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=val_pipeline))
test_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=val_pipeline))
calib_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=val_pipeline))
