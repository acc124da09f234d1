# The demo (unet_r34_onehot_synthetic_demo.py) trained on every annotator
# instead of their mean: the comparison of docs/multi_annotator.md.
#   python tools/train.py configs/ceph/unet_r34_multiannotator_synthetic_demo.py
_base_ = ['./unet_r34_onehot_synthetic_demo.py']

input_size = (128, 160)
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
