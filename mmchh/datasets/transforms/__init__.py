# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Training augmentation of the paper as MMPose pipeline transforms.

Importing this package registers, in MMPose's ``TRANSFORMS`` registry:

* :class:`UniformRandomBBoxTransform` -- uniform bbox shift / scale /
  rotation; the warp itself is MMPose's ``TopdownAffine``;
* :class:`RandomIntensityGamma` -- intensity factor and gamma (pixel-only);
* :class:`ElasticDeformation` -- imgaug-style elastic deformation with exact
  keypoint mapping;
* :class:`AttachAnnotatorKeypoints` / :class:`DetachAnnotatorKeypoints` --
  move every annotator's points through the same augmentation (for
  multi-annotator targets).
"""
from .annotator_keypoints import (AttachAnnotatorKeypoints,
                                  DetachAnnotatorKeypoints)
from .elastic import ElasticDeformation
from .intensity import RandomIntensityGamma
from .random_affine import UniformRandomBBoxTransform

__all__ = [
    'AttachAnnotatorKeypoints', 'DetachAnnotatorKeypoints',
    'ElasticDeformation', 'RandomIntensityGamma', 'UniformRandomBBoxTransform'
]
