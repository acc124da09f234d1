# The demo (unet_r34_onehot_synthetic_demo.py) trained on every annotator
# instead of their mean: the comparison of docs/multi_annotator.md.
#   python tools/train.py configs/ceph/unet_r34_multiannotator_synthetic_demo.py
_base_ = ['./unet_r34_onehot_synthetic_demo.py']

from mmchh.utils.config_variants import annotator_targets  # noqa: E402

# every annotator's points ride through the geometric transforms beside the
# ground truth (Attach after either loader, Detach before the target)
codec, model, train_pipeline = annotator_targets(_base_)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
