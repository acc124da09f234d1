# The paper's baseline (its Fig. 4a): the same ResNet-34 U-Net and data, but
# MMPose's Gaussian heatmap targets regressed with MSE, for side-by-side
# comparison with unet_r34_onehot.py. Its scores are heatmap values, not
# probabilities: there is no temperature and no ERE.
#   python tools/train.py configs/ceph/unet_r34_gaussian.py
_base_ = ['./unet_r34_onehot.py']

# sigma 2 px at 640x800 is about 0.6 mm on ISBI
codec = dict(
    type='MSRAHeatmap',
    input_size=_base_.input_size,
    heatmap_size=_base_.input_size,
    sigma=2)

model = dict(
    head=dict(
        _delete_=True,
        type='HeatmapHead',
        in_channels=32,
        out_channels=19,
        deconv_out_channels=None,
        final_layer=dict(kernel_size=3, padding=1),
        loss=dict(type='KeypointMSELoss', use_target_weight=True),
        decoder=codec),
    # HeatmapHead's training accuracy copies full-resolution maps to the
    # CPU every iteration; skip it
    train_cfg=dict(compute_acc=False))

train_pipeline = [
    dict(t, encoder=codec) if t.type == 'GenerateTarget' else t
    for t in _base_.train_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# HeatmapHead scores nothing against the ground truth: no target at test
val_pipeline = [t for t in _base_.val_pipeline if 'encoder' not in t]
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
calib_dataloader = val_dataloader

# Gaussian heatmaps are not distributions: no temperature scaling, no ERE
custom_hooks = [dict(type='SyncBuffersHook')]
val_evaluator = [dict(type='CephalometricMetric')]
test_evaluator = val_evaluator
