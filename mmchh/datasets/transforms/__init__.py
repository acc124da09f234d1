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
  multi-annotator targets);
* :class:`LoadFullRangeImage` -- ``LoadImage`` for 8- and 16-bit images
  (a 16-bit one scaled by its bit depth onto [0, 255]);
* :class:`GenerateTargetIfAnnotated` -- the ground truth on the model's
  grid in val/test/calibration pipelines (skipped for images without
  keypoints, i.e. at inference).
"""
from .annotator_keypoints import (AttachAnnotatorKeypoints,
                                  DetachAnnotatorKeypoints)
from .elastic import ElasticDeformation
from .generate_target_if_annotated import GenerateTargetIfAnnotated
from .intensity import RandomIntensityGamma
from .load_full_range_image import LoadFullRangeImage
from .random_affine import UniformRandomBBoxTransform

__all__ = [
    'AttachAnnotatorKeypoints', 'DetachAnnotatorKeypoints',
    'ElasticDeformation', 'GenerateTargetIfAnnotated', 'LoadFullRangeImage',
    'RandomIntensityGamma', 'UniformRandomBBoxTransform'
]
