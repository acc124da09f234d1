# SimpleBaseline ResNet-50 on OneHand10K at 256x256 with the softmax head:
# MMPose's own config (`td-hm_res50_8xb32-210e_onehand10k-256x256.py`) with
# the codec, head and loss swapped (see docs/own_config.md). PCK, AUC and
# EPE are inherited; each prediction also carries the mode probability
# (`keypoint_scores`) and the ERE (`keypoint_ere`, input pixels).
#
#   python tools/train.py \
#       configs/hand_2d_keypoint/topdown_softmax/onehand10k/td-sm_res50_8xb32-210e_onehand10k-256x256.py
_base_ = [
    'mmpose::hand_2d_keypoint/topdown_heatmap/onehand10k/'
    'td-hm_res50_8xb32-210e_onehand10k-256x256.py'
]
custom_imports = dict(imports=['mmchh'], allow_failed_imports=False)

codec = dict(
    type='SoftmaxHeatmap',
    input_size=(256, 256),
    heatmap_size=(64, 64),
    subpixel_radius=1)

model = dict(
    head=dict(
        type='SoftmaxHeatmapHead',
        loss=dict(type='SoftmaxNLLLoss', _delete_=True),
        decoder=dict(codec, _delete_=True)),
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=False))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(
        type='RandomBBoxTransform', rotate_factor=180,
        scale_factor=(0.7, 1.3)),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
