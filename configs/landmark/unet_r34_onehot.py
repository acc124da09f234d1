# The paper's recipe (configs/ceph/unet_r34_onehot.py) for any landmark set
# converted by tools/convert_landmarks.py: the landmark names (and count)
# from the converted folder's metainfo.py, per-image spacing, every
# annotator kept, 8- and 16-bit images at their full range. Metrics work
# for any K: MRE/SDR in mm per landmark name, UncertaintyMetric.
#
# A config for one converted folder derives from this one (its data_root and
# landmark count; see docs/own_data.md):
#   python tools/convert_landmarks.py data/own_coco --images xrays/ \
#       --keypoints sella nasion menton --labelme dr_a=labels_a/ --spacing 0.1
#   python tools/landmark_config.py data/own_coco own_unet_r34_onehot.py
#   python tools/train.py own_unet_r34_onehot.py
_base_ = ['../ceph/unet_r34_onehot.py']

# the converted folder (tools/landmark_config.py sets it)
data_root = 'data/own_coco/'

# metainfo.py is read from data_root; num_keypoints (the head's
# out_channels) is checked against it when the dataset is built; the
# pipelines are the base's (LoadFullRangeImage: 16-bit images at their
# full range)
dataset = dict(
    _base_.dataset,
    data_root=data_root,
    metainfo=dict(from_file='metainfo.py'),
    num_keypoints=_base_.num_keypoints)
train_dataloader = dict(dataset=dataset)
val_dataloader = dict(dataset=dataset)
# convert_landmarks writes one held-out test split, test.json
test_dataloader = dict(dataset=dict(dataset, ann_file='test.json'))
calib_dataloader = dict(dataset=dataset)
