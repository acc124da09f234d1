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

from mmchh.utils.config_variants import softmax_overlay  # noqa: E402

# the softmax overrides (configs/_base_/softmax_heatmap_overlay.py) applied
# at the base codec's sizes, the base's train pipeline encoding with them,
# val/test with the ground truth encoded with the codec before
# PackPoseInputs, and UncertaintyMetric (unc/..., in image pixels) next to
# the base's PCK, AUC and EPE
(codec, model, train_pipeline, val_pipeline,
 val_evaluator) = softmax_overlay(_base_)
train_dataloader, val_dataloader = (dict(dataset=dict(pipeline=p))
                                    for p in (train_pipeline, val_pipeline))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
