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

input_size = (640, 800)
codec = dict(
    type='SoftmaxHeatmap',
    input_size=input_size,
    heatmap_size=input_size,
    annotator_targets=True)
model = dict(head=dict(decoder=codec))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='AttachAnnotatorKeypoints'),
    dict(type='GetBBoxCenterScale', padding=1.0),
    dict(
        type='UniformRandomBBoxTransform',
        shift_factor=(10 / 640, 10 / 800),
        scale_factor=(0.95, 1.05),
        rotate_factor=3.0),
    dict(type='TopdownAffine', input_size=input_size),
    dict(type='RandomIntensityGamma'),
    dict(type='ElasticDeformation', reference_size=(640, 800)),
    dict(type='DetachAnnotatorKeypoints'),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs', meta_keys={{_base_.ceph_meta_keys}}),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
