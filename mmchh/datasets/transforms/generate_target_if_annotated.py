# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
from mmpose.datasets.transforms import GenerateTarget
from mmpose.registry import TRANSFORMS


@TRANSFORMS.register_module()
class GenerateTargetIfAnnotated(GenerateTarget):
    """``GenerateTarget`` for val/test/calibration pipelines.

    Encodes the ground truth exactly as ``GenerateTarget`` does in training
    (the codec's targets in ``gt_instance_labels``), so the head can score
    its predictions against it and calibration can fit on it without
    mapping the ground truth back itself. A sample without keypoints (an
    image at inference: ``mmpose.apis.inference_topdown``, ``mmchh.apis``)
    has nothing to encode and passes through unchanged, so the one test
    pipeline serves both.

    Args:
        encoder (dict): The codec config; use the head's decoder with
            one-hot targets (e.g. ``SoftmaxHeatmap`` without
            ``annotator_targets``): predictions are scored against the
            ground truth itself.
        Other arguments as ``GenerateTarget``.

    Note:
        - Required keys (when annotated): ``keypoints`` (N, K, 2) and,
          after ``TopdownAffine``, ``transformed_keypoints`` (N, K, 2);
          ``keypoints_visible`` (N, K)
        - Added keys: the codec's encoded targets, e.g. ``heatmap_indices``
          (N, K) and ``keypoint_weights`` (N, K) for ``SoftmaxHeatmap``
    """

    def transform(self, results: dict) -> dict:
        # the sample's own keypoints decide: at inference MMPose's
        # TopdownAffine leaves a placeholder ``transformed_keypoints``
        # (an empty array) that is no ground truth
        if results.get('keypoints', None) is None:
            return results
        return super().transform(results)
