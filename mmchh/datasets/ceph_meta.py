# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Facts about the ISBI 2015 cephalometric dataset, in one place.

Landmark order and classification labels as in the challenge release
(Wang et al., 2016); image size and spacing of the original X-rays.
"""

#: The 19 landmarks, in the order of the annotation files' first 19 lines.
CEPH_LANDMARK_NAMES = (
    'sella',
    'nasion',
    'orbitale',
    'porion',
    'subspinale',  # A point
    'supramentale',  # B point
    'pogonion',
    'menton',
    'gnathion',
    'gonion',
    'lower_incisal_incision',
    'upper_incisal_incision',
    'upper_lip',
    'lower_lip',
    'subnasale',
    'soft_tissue_pogonion',
    'posterior_nasal_spine',
    'anterior_nasal_spine',
    'articulare',
)

#: The 8 classification labels that follow the 19 coordinate lines.
CEPH_LABEL_NAMES = ('ANB', 'SNB', 'SNA', 'ODI', 'APDI', 'FHI', 'FMA', 'MW')

NUM_CEPH_LANDMARKS = len(CEPH_LANDMARK_NAMES)

#: Size (width, height) of the original ISBI 2015 X-rays, in pixels.
ISBI_IMAGE_SIZE = (1935, 2400)

#: Pixel spacing of the original ISBI 2015 X-rays, in mm per pixel.
ISBI_SPACING_MM = 0.1

#: Image folders under ``RawImage/`` and the split each one becomes.
ISBI_IMAGE_FOLDERS = (
    ('TrainingData', 'train'),
    ('Test1Data', 'test1'),
    ('Test2Data', 'test2'),
)

#: Image folders a user's partial copy may lack (the split is then empty
#: and its JSON is not written).
ISBI_OPTIONAL_IMAGE_FOLDERS = ('Test2Data', )

#: Annotator folders (under ``AnnotationsByMD/`` or directly under the root)
#: and the name each annotator gets in the converted JSON.
ISBI_ANNOTATOR_FOLDERS = (
    ('400_senior', 'senior'),
    ('400_junior', 'junior'),
)
