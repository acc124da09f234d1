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

codec = dict(_base_.codec, annotator_targets=True)
model = dict(head=dict(decoder=codec))

# every annotator's points ride through the geometric transforms beside the
# ground truth (Attach after loading, Detach before the target); either
# loader counts, so a base that loads with MMPose's LoadImage works too
train_pipeline = [
    step for t in _base_.train_pipeline for step in (
        [t, dict(type='AttachAnnotatorKeypoints')]
        if t.type in ('LoadFullRangeImage', 'LoadImage')
        else [dict(type='DetachAnnotatorKeypoints'),
              dict(t, encoder=codec)] if t.type == 'GenerateTarget' else [t])
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
