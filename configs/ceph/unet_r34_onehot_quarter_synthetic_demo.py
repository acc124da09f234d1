# The demo (unet_r34_onehot_synthetic_demo.py: 128x160 input, synthetic
# ISBI-format set) with heatmaps at 1/4 of the input (32x40) and sub-pixel
# decoding: the low-resolution measurement of docs/own_config.md.
#   python tools/train.py configs/ceph/unet_r34_onehot_quarter_synthetic_demo.py
#   python tools/test.py configs/ceph/unet_r34_onehot_quarter_synthetic_demo.py \
#       work_dirs/unet_r34_onehot_quarter_synthetic_demo/calibrated.pth \
#       --cfg-options model.head.decoder.subpixel_radius=0   # the plain mode
_base_ = ['./unet_r34_onehot_synthetic_demo.py']

input_size = (128, 160)
codec = dict(
    type='SoftmaxHeatmap',
    input_size=input_size,
    heatmap_size=(32, 40),
    subpixel_radius=1)
model = dict(
    neck=dict(decoder_channels=(256, 128, 64)),
    head=dict(in_channels=64, decoder=codec))

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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
