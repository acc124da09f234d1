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
    'td-hm_res50_8xb32-210e_onehand10k-256x256.py',
    '../../../_base_/softmax_heatmap_overlay.py'
]
# the softmax overrides (configs/_base_/softmax_heatmap_overlay.py) applied
# at the base codec's sizes, and the base's train pipeline encoding with them
codec = dict(
    _base_.softmax_overlay.codec,
    input_size=_base_.codec.input_size,
    heatmap_size=_base_.codec.heatmap_size)
model = dict(
    head=dict(_base_.softmax_overlay.head, decoder=dict(codec, _delete_=True)),
    test_cfg=_base_.softmax_overlay.test_cfg)
train_pipeline = [
    dict(t, encoder=codec) if t.type == 'GenerateTarget' else t
    for t in _base_.train_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# val/test: the ground truth encoded with the codec before PackPoseInputs,
# and UncertaintyMetric (unc/..., in image pixels) next to the base's
# PCK, AUC and EPE
val_pipeline = [
    step for t in _base_.val_pipeline for step in (
        [dict(_base_.softmax_overlay.target, encoder=codec), t]
        if t.type == 'PackPoseInputs' else [t])
]
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = [*_base_.val_evaluator, _base_.softmax_overlay.metric]
test_evaluator = val_evaluator
