# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
# MMPose dataset metainfo of the ISBI 2015 cephalometric landmarks, in the
# order of the annotation files (see mmchh/datasets/ceph_meta.py).
# Lateral X-rays have no left/right symmetric pairs, so nothing swaps and
# flip augmentation / flip test are not meaningful for this dataset.
_names = [
    'sella', 'nasion', 'orbitale', 'porion', 'subspinale', 'supramentale',
    'pogonion', 'menton', 'gnathion', 'gonion', 'lower_incisal_incision',
    'upper_incisal_incision', 'upper_lip', 'lower_lip', 'subnasale',
    'soft_tissue_pogonion', 'posterior_nasal_spine', 'anterior_nasal_spine',
    'articulare'
]
_bone = [255, 128, 0]
_soft = [0, 200, 255]
_soft_tissue = {'upper_lip', 'lower_lip', 'subnasale', 'soft_tissue_pogonion'}

dataset_info = dict(
    dataset_name='isbi2015_ceph',
    paper_info=dict(
        author='Wang, Ching-Wei and Huang, Cheng-Ta and others',
        title='A benchmark for comparison of dental radiography analysis '
        'algorithms',
        container='Medical Image Analysis',
        year='2016',
        homepage='https://www.isbi2015.org/',
    ),
    keypoint_info={
        i: dict(
            name=name,
            id=i,
            color=_soft if name in _soft_tissue else _bone,
            type='',
            swap='')
        for i, name in enumerate(_names)
    },
    skeleton_info={},
    joint_weights=[1.0] * len(_names),
    # OKS sigmas are not used for cephalometry (errors are in mm); a uniform
    # value keeps MMPose's metainfo parser and COCO tools satisfied.
    sigmas=[0.025] * len(_names))
