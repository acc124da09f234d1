# HRNet-W32 on COCO at 256x192 with the softmax head: MMPose's
# own config (`td-hm_hrnet-w32_8xb64-210e_coco-256x192.py`) with three changes —
# the codec (SoftmaxHeatmap: flat target indices, heatmaps at 1/4 of the
# input), the head (SoftmaxHeatmapHead: 2D softmax + NLL; predicts
# calibrated mode probabilities and ERE) and the loss (SoftmaxNLLLoss).
# Everything else (data, schedule, flip test, CocoMetric) is inherited.
#
#   python tools/train.py \
#       configs/body_2d_keypoint/topdown_softmax/coco/td-sm_hrnet-w32_8xb64-210e_coco-256x192.py
#
# Temperatures: fit them on a held-out annotation file that is not the
# test set (docs/own_config.md, "Calibrate"), e.g. with tools/calibrate.py.
_base_ = [
    'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_hrnet-w32_8xb64-210e_coco-256x192.py'
]
custom_imports = dict(imports=['mmchh'], allow_failed_imports=False)

# heatmaps at 1/4 of the input; the position is refined inside the mode's
# 3x3 window (probabilities, scores and ERE are the unrefined maps')
codec = dict(
    type='SoftmaxHeatmap',
    input_size=(192, 256),
    heatmap_size=(48, 64),
    subpixel_radius=1)

model = dict(
    head=dict(
        type='SoftmaxHeatmapHead',
        loss=dict(type='SoftmaxNLLLoss', _delete_=True),
        decoder=dict(codec, _delete_=True)),
    # the flipped probability maps are averaged with the plain ones; the
    # SoftmaxHeatmap grid mirrors exactly, so no shift
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=False))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(type='RandomBBoxTransform'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
