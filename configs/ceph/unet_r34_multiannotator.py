# The paper's recipe trained on every annotator instead of their mean (the
# paper's future work (1)): each landmark's target is the distribution with
# mass 1/A on each annotator's pixel (1/2 each for ISBI's two clinicians;
# coincident points add up) and the loss is the cross-entropy against it,
# which for one annotator is the one-hot NLL. The annotators' points go
# through the same augmentation as the image (Attach/DetachAnnotatorKeypoints
# around the geometric transforms). Validation, calibration and testing are
# unchanged: against the mean of the annotators, as in the paper.
#   python tools/train.py configs/ceph/unet_r34_multiannotator.py
_base_ = ['./unet_r34_onehot.py']

from mmchh.utils.config_variants import annotator_targets  # noqa: E402

# every annotator's points ride through the geometric transforms beside the
# ground truth (Attach after either loader, Detach before the target)
codec, model, train_pipeline = annotator_targets(_base_)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
