# The paper's recipe with heatmaps at 1/4 of the input (160x200 for a
# 640x800 input): the U-Net decoder stops after three blocks (stride 32 ->
# 4), the head maps its 64 channels to 19 logit maps, and the position is
# refined inside the mode's 3x3 window (subpixel_radius=1). 16x fewer
# logits per image (2.4 MB instead of 39 MB) and a cheaper decoder; see
# docs/own_config.md ("Heatmaps smaller than the input") for what the
# resolution costs in accuracy.
#   python tools/train.py configs/ceph/unet_r34_onehot_quarter.py
_base_ = ['./unet_r34_onehot.py']

from mmchh.utils.config_variants import smaller_heatmaps  # noqa: E402

codec, model, train_pipeline, val_pipeline = smaller_heatmaps(_base_, 4)
train_dataloader, val_dataloader = (dict(dataset=dict(pipeline=p))
                                    for p in (train_pipeline, val_pipeline))
test_dataloader = calib_dataloader = val_dataloader
