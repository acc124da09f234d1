# SimpleBaseline ResNet-50 on COCO at 256x192 with the softmax head: the
# HRNet-W32 softmax config (td-sm_hrnet-w32_8xb64-210e_coco-256x192.py:
# MMPose's config with the codec, the head (SoftmaxHeatmapHead: 2D softmax
# + NLL; predicts calibrated mode probabilities and ERE), the loss and the
# val/test changes) with the model of MMPose's own
# `td-hm_res50_8xb64-210e_coco-256x192.py`, the only place the two MMPose
# configs differ: a torchvision ResNet-50 backbone and the head's default
# three deconvolutions on its 2048 channels. Data, schedule, flip test and
# CocoMetric are inherited; tests/test_configs/test_config_derivation.py
# checks this config against that MMPose config.
#
#   python tools/train.py \
#       configs/body_2d_keypoint/topdown_softmax/coco/td-sm_res50_8xb64-210e_coco-256x192.py
#
# Temperatures: fit them on a held-out annotation file that is not the
# test set (docs/own_config.md, "Calibrate"), e.g. with tools/calibrate.py.
_base_ = ['./td-sm_hrnet-w32_8xb64-210e_coco-256x192.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    # HRNet's head reads 32 channels without deconvolutions; ResNet-50's
    # upsamples its 2048 with HeatmapHead's default ones
    head=dict(
        {k: v for k, v in _base_.model.head.items()
         if k != 'deconv_out_channels'},
        in_channels=2048,
        _delete_=True))
