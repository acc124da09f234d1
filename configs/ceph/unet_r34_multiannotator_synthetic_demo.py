# The demo (unet_r34_onehot_synthetic_demo.py) trained on every annotator
# instead of their mean: the comparison of docs/multi_annotator.md.
#   python tools/train.py configs/ceph/unet_r34_multiannotator_synthetic_demo.py
_base_ = ['./unet_r34_onehot_synthetic_demo.py']

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
