# The ISBI 2015 cephalometric data as written by tools/convert_isbi.py:
#   python tools/convert_isbi.py /path/to/ISBI2015 data/isbi2015_coco \
#       --resize 640 800
# Image paths in the JSON files are relative to the output folder.
dataset_type = 'CephalometricDataset'
data_mode = 'topdown'
data_root = 'data/isbi2015_coco/'

# per-image values the metrics need travel as meta keys
ceph_meta_keys = ('id', 'img_id', 'img_path', 'category_id', 'ori_shape',
                  'img_shape', 'input_size', 'input_center', 'input_scale',
                  'flip', 'flip_direction', 'flip_indices', 'dataset_name',
                  'spacing', 'annotator_keypoints')

# MRE/SDR in mm with the challenge's thresholds, and how honest the
# uncertainty is: ERE, NLL, ECE, ERE-error correlation, ROC AUC of ERE and,
# once calibrated, the Good/Erroneous table (tools/test.py writes the plots
# and a JSON into the work dir)
ceph_evaluator = [
    dict(type='CephalometricMetric'),
    dict(type='UncertaintyMetric', erroneous_mm=2.0)
]
val_evaluator = ceph_evaluator
test_evaluator = ceph_evaluator
