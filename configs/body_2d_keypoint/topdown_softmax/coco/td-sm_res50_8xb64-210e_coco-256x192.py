# SimpleBaseline ResNet-50 on COCO at 256x192 with the softmax head: MMPose's
# own config (`td-hm_res50_8xb64-210e_coco-256x192.py`) with three changes —
# the codec (SoftmaxHeatmap: flat target indices, heatmaps at 1/4 of the
# input), the head (SoftmaxHeatmapHead: 2D softmax + NLL; predicts
# calibrated mode probabilities and ERE) and the loss (SoftmaxNLLLoss).
# Everything else (data, schedule, flip test, CocoMetric) is inherited;
# val/test add the encoded ground truth and UncertaintyMetric (below).
#
#   python tools/train.py \
#       configs/body_2d_keypoint/topdown_softmax/coco/td-sm_res50_8xb64-210e_coco-256x192.py
#
# Temperatures: fit them on a held-out annotation file that is not the
# test set (docs/own_config.md, "Calibrate"), e.g. with tools/calibrate.py.
_base_ = [
    'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_res50_8xb64-210e_coco-256x192.py',
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
# on the ground-truth boxes (the base's detected boxes carry no ground
# truth to score NLL, ERE or coverage against; CocoMetric then reports AP
# with ground-truth boxes), and UncertaintyMetric (unc/..., in image
# pixels) next to CocoMetric
val_pipeline = [
    step for t in _base_.val_pipeline for step in (
        [dict(_base_.softmax_overlay.target, encoder=codec), t]
        if t.type == 'PackPoseInputs' else [t])
]
val_dataloader = dict(dataset=dict(pipeline=val_pipeline, bbox_file=None))
test_dataloader = val_dataloader
val_evaluator = [_base_.val_evaluator, _base_.softmax_overlay.metric]
test_evaluator = val_evaluator
