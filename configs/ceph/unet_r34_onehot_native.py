# The paper's recipe on the native ISBI 2015 grid (0.1 mm/px, images
# 1935x2400): no resizing, the network input is 1952x2400 (divisible by 32;
# GetBBoxCenterScale's whole-image box is widened by 17 px to the input's
# aspect, so TopdownAffine maps the image at scale 1, 8.5 px of padding on
# either side) and the heatmaps are at input resolution, as in the paper's
# config. The augmentation is the paper's in physical terms: the shift
# factor is a fraction of the box (+-10 px at 640x800 = +-30 px here) and
# ElasticDeformation scales its 640x800 sigma/alpha to the input
# (reference_size). Memory mode: activation checkpointing in the backbone
# and the decoder (with_cp=True: each residual block and decoder block keeps
# only its inputs for backward and recomputes the rest there; BN running
# statistics are updated once per step) and mixed precision (AMP, GPU).
#
# Data: convert without --resize (the JSON points at the original images):
#   python tools/convert_isbi.py /path/to/ISBI2015 data/isbi2015_coco_native
# Train / test:
#   python tools/train.py configs/ceph/unet_r34_onehot_native.py
#   python tools/test.py configs/ceph/unet_r34_onehot_native.py \
#       work_dirs/unet_r34_onehot_native/best_ceph_MRE_epoch_*.pth
#
# Memory (docs/native_resolution.md has the derivation and the commands):
# on paper, the network saves 699.93 MiB for backward per 640x800 image in
# fp32 without with_cp (docs/benchmarks.md), 1434 bytes per input pixel,
# i.e. 6.3 GiB per 1952x2400 image in fp32 and about 3.1 GiB with AMP.
# Measured (CPU peak RSS, one step, batch 1, fp32, at 992x1216):
#   .venv/bin/python benchmarks/run.py --worker-memory ours --device cpu \
#       --size 992 1216 --batches 1 --mem-steps 1     (and ours_cp)
# the image-dependent part is 2027 MB without and 943 MB with with_cp;
# scaled to 1952x2400 (3.88x the pixels) 7.7 GiB vs 3.6 GiB per image in
# fp32, about half of that with AMP: batch 2 needs about 4-5 GB of GPU
# memory on this estimate; with 16 GB, the paper's batch 4
# (--cfg-options train_dataloader.batch_size=4) should fit.
_base_ = ['./unet_r34_onehot.py']

input_size = (1952, 2400)  # (w, h): divisible by 32, covers 1935x2400
data_root = 'data/isbi2015_coco_native/'

codec = dict(_base_.codec, input_size=input_size, heatmap_size=input_size)
backbone = dict(_base_.backbone, with_cp=True)
model = dict(
    backbone=backbone,
    neck=dict(backbone=backbone, with_cp=True),
    head=dict(decoder=codec))
# AMP (dynamic loss scaling) needs a GPU; on a CPU train with
#   --cfg-options optim_wrapper.type=OptimWrapper
optim_wrapper = dict(type='AmpOptimWrapper')

train_pipeline, val_pipeline = ([
    dict(t, input_size=input_size) if t['type'] == 'TopdownAffine' else
    dict(t, encoder=codec) if 'encoder' in t else t for t in pipeline
] for pipeline in (_base_.train_pipeline, _base_.val_pipeline))
train_dataloader = dict(
    batch_size=2,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, dataset=dict(data_root=data_root, pipeline=val_pipeline))
test_dataloader = val_dataloader
calib_dataloader = val_dataloader
