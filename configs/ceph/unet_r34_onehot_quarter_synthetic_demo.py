# The demo (unet_r34_onehot_synthetic_demo.py: 128x160 input, synthetic
# ISBI-format set) with heatmaps at 1/4 of the input (32x40) and sub-pixel
# decoding: the low-resolution measurement of docs/own_config.md.
#   python tools/train.py configs/ceph/unet_r34_onehot_quarter_synthetic_demo.py
#   python tools/test.py configs/ceph/unet_r34_onehot_quarter_synthetic_demo.py \
#       work_dirs/unet_r34_onehot_quarter_synthetic_demo/calibrated.pth \
#       --cfg-options model.head.decoder.subpixel_radius=0   # the plain mode
_base_ = ['./unet_r34_onehot_synthetic_demo.py']

codec = dict(_base_.codec, heatmap_size=(32, 40), subpixel_radius=1)
model = dict(
    neck=dict(decoder_channels=(256, 128, 64)),
    head=dict(in_channels=64, decoder=codec))
train_pipeline, val_pipeline = ([
    dict(t, encoder=codec) if 'encoder' in t else t
    for t in pipeline
] for pipeline in (_base_.train_pipeline, _base_.val_pipeline))
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
calib_dataloader = val_dataloader
