# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""A deterministic synthetic stand-in for the ISBI 2015 cephalometric set.

The real challenge data cannot be downloaded everywhere the demo and the
tests run, so :func:`make_synthetic_ceph` writes a small set in exactly the
same on-disk layout::

    out_root/
        RawImage/TrainingData/001.bmp ...
        RawImage/Test1Data/...
        RawImage/Test2Data/...
        AnnotationsByMD/400_senior/001.txt ...   (``nested=False``: the two
        AnnotationsByMD/400_junior/001.txt ...    folders sit in out_root)

Each image is a miniature lateral head radiograph facing +x (skull vault,
cranial base with sella turcica, orbit, ear canal, nasal bone, maxilla,
mandible, teeth, cervical spine, airway and the soft-tissue profile). The
anatomy is built first as contours in the frame of a full-size ISBI image
(1935 x 2400 px at 0.1 mm/px, Frankfort plane roughly horizontal); the 19
landmarks are knots of those contours, so they sit exactly on what is drawn.
A random pose (rotation, scale, translation) and the resize to the requested
image size are one affine map applied to contours, landmarks and landmark
tangents alike.

Two synthetic annotators ("senior" and "junior") click the true point plus
independent Gaussian noise that is three times larger along the local
contour than across it, sized so that they disagree by about 2 mm on
average, like the real clinicians.

Every image draws from its own generator seeded with ``(seed, number)``,
where ``number`` is the image's file number, so the same arguments always
give byte-identical files, and an image does not change when other splits
grow. Anatomy and annotator clicks are drawn before the pixel noise, so the
same seed at another ``image_size`` gives the same heads, resized.

Modules, in the order a sample is made: :mod:`.geometry` (points, splines),
:mod:`.anatomy` (the landmarks, placed from clinical parameters; their
contour directions as data), :mod:`.drawing` (contours through them),
:mod:`.render` (pose and pixels), :mod:`.sample` (one sample with the two
annotators' clicks) and :mod:`.writer` (the data set on disk).
"""
from .anatomy import BONY_LANDMARKS, SOFT_TISSUE_LANDMARKS
from .sample import (ANNOTATOR_SIGMA_NORMAL_PX, ANNOTATOR_TANGENT_RATIO,
                     MIN_IMAGE_SIZE, synthetic_ceph_sample)
from .writer import make_synthetic_ceph

__all__ = [
    'ANNOTATOR_SIGMA_NORMAL_PX', 'ANNOTATOR_TANGENT_RATIO', 'BONY_LANDMARKS',
    'MIN_IMAGE_SIZE', 'SOFT_TISSUE_LANDMARKS', 'make_synthetic_ceph',
    'synthetic_ceph_sample'
]
