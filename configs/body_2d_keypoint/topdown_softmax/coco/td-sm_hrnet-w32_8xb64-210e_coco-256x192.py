# HRNet-W32 on COCO at 256x192 with the softmax head: MMPose's
# own config (`td-hm_hrnet-w32_8xb64-210e_coco-256x192.py`) with three changes —
# the codec (SoftmaxHeatmap: flat target indices, heatmaps at 1/4 of the
# input), the head (SoftmaxHeatmapHead: 2D softmax + NLL; predicts
# calibrated mode probabilities and ERE) and the loss (SoftmaxNLLLoss).
# Everything else (data, schedule, flip test, CocoMetric) is inherited;
# val/test add the encoded ground truth and UncertaintyMetric (below).
#
#   python tools/train.py \
#       configs/body_2d_keypoint/topdown_softmax/coco/td-sm_hrnet-w32_8xb64-210e_coco-256x192.py
#
# Temperatures: fit them on a held-out annotation file that is not the
# test set (docs/own_config.md, "Calibrate"), e.g. with tools/calibrate.py.
_base_ = [
    'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_hrnet-w32_8xb64-210e_coco-256x192.py',
    '../../../_base_/softmax_heatmap_overlay.py'
]

from mmchh.utils.config_variants import softmax_overlay  # noqa: E402

# the softmax overrides (configs/_base_/softmax_heatmap_overlay.py) applied
# at the base codec's sizes, the base's train pipeline encoding with them,
# val/test with the ground truth encoded with the codec before
# PackPoseInputs, and UncertaintyMetric (unc/..., in image pixels) next to
# CocoMetric
(codec, model, train_pipeline, val_pipeline,
 val_evaluator) = softmax_overlay(_base_)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# on the ground-truth boxes (the base's detected boxes carry no ground truth
# to score NLL, ERE or coverage against; CocoMetric then reports AP with
# ground-truth boxes)
val_dataloader = dict(dataset=dict(pipeline=val_pipeline, bbox_file=None))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
