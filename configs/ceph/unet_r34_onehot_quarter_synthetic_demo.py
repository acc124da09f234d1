# The demo (unet_r34_onehot_synthetic_demo.py: 128x160 input, synthetic
# ISBI-format set) with heatmaps at 1/4 of the input (32x40) and sub-pixel
# decoding: the low-resolution measurement of docs/own_config.md.
#   python tools/train.py configs/ceph/unet_r34_onehot_quarter_synthetic_demo.py
#   python tools/test.py configs/ceph/unet_r34_onehot_quarter_synthetic_demo.py \
#       work_dirs/unet_r34_onehot_quarter_synthetic_demo/calibrated.pth \
#       --cfg-options model.head.decoder.subpixel_radius=0   # the plain mode
_base_ = ['./unet_r34_onehot_synthetic_demo.py']

from mmchh.utils.config_variants import smaller_heatmaps  # noqa: E402

codec, model, train_pipeline, val_pipeline = smaller_heatmaps(_base_, 4)
train_dataloader, val_dataloader = (dict(dataset=dict(pipeline=p))
                                    for p in (train_pipeline, val_pipeline))
test_dataloader = calib_dataloader = val_dataloader
