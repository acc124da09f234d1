# CPU demo of the paper's recipe on the embedded synthetic ISBI-format set
# (`make demo` runs it end to end). Same model, loss, codec and
# augmentation as unet_r34_onehot.py, shrunk for 2 CPU cores: 128x160
# input (heatmaps at input resolution), no ImageNet weights, more epochs on
# fewer images.
#   python tools/make_synthetic_ceph.py data/synthetic_ceph --num-train 24 \
#       --num-test1 8
#   python tools/convert_isbi.py data/synthetic_ceph data/synthetic_ceph_coco \
#       --num-val 4 --num-calib 4 --resize 128 160 --spacing 0.6047 0.6
#   python tools/train.py configs/ceph/unet_r34_onehot_synthetic_demo.py
_base_ = ['./unet_r34_onehot.py']

input_size = (128, 160)
data_root = 'data/synthetic_ceph_coco/'

train_cfg = dict(max_epochs=40, val_interval=10)
# lr x 0.1 at 3/4 and 9/10 of the run (epochs 30 and 36 of 40)
param_scheduler = [
    dict(_base_.param_scheduler[0], milestone_fractions=(0.75, 0.9))
]
default_hooks = dict(
    logger=dict(interval=5), checkpoint=dict(interval=10, max_keep_ckpts=1))
randomness = dict(seed=0)

codec = dict(_base_.codec, input_size=input_size, heatmap_size=input_size)
model = dict(backbone=dict(init_cfg=None), head=dict(decoder=codec))

# the base's pipelines at the demo's input size
train_pipeline, val_pipeline = ([
    dict(t, input_size=input_size) if t.type == 'TopdownAffine' else
    dict(t, encoder=codec) if 'encoder' in t else t
    for t in pipeline
] for pipeline in (_base_.train_pipeline, _base_.val_pipeline))
train_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
# val, test and calib read the demo's own splits at the demo's input size
val_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=val_pipeline))
test_dataloader = val_dataloader
calib_dataloader = val_dataloader
