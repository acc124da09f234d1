# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Carry every annotator's points through the geometric augmentation.

MMPose's geometric transforms (``TopdownAffine``, flips) and ours
(``ElasticDeformation``) move ``keypoints`` / ``transformed_keypoints``.
To train on every annotator's points (the codec's ``annotator_targets``),
those points must be moved by exactly the same warp. The pair below does it
without touching any geometric transform: :class:`AttachAnnotatorKeypoints`
appends the annotators' points to ``keypoints`` as extra keypoints (right
after loading), :class:`DetachAnnotatorKeypoints` splits them off again
(right before ``GenerateTarget``) into ``transformed_annotator_keypoints``.
"""
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmpose.registry import TRANSFORMS

_STATE = '_annotator_attach'  # (num_keypoints, annotator names)


@TRANSFORMS.register_module()
class AttachAnnotatorKeypoints(BaseTransform):
    """Appends each annotator's points to ``keypoints`` (after LoadImage).

    Required keys: ``keypoints`` (1, K, 2), ``keypoints_visible`` (1, K),
    ``annotator_keypoints`` (dict: name -> (K, 2), as
    :class:`~mmchh.datasets.CephalometricDataset` provides).

    Modified keys: ``keypoints`` becomes (1, (1 + A) * K, 2): the ground
    truth, then annotator 1's K points, annotator 2's ...;
    ``keypoints_visible`` likewise (an annotator's point counts where the
    ground truth does and its coordinates are finite).

    Args:
        annotators (Sequence[str], optional): Names to use, in this order.
            Default: every annotator of the sample, sorted by name.
    """

    def __init__(self, annotators: Optional[Sequence[str]] = None) -> None:
        self.annotators = None if annotators is None else list(annotators)

    def transform(self, results: dict) -> dict:
        where = results.get('img_path', '<sample>')
        ann = results.get('annotator_keypoints')
        if not ann:
            raise KeyError(
                f'{where}: AttachAnnotatorKeypoints needs the annotators\' '
                'points ("annotator_keypoints"); the annotation file has no '
                '"keypoints_<annotator>" fields (tools/convert_isbi.py '
                'writes them)')
        names = self.annotators or sorted(ann)
        missing = [n for n in names if n not in ann]
        if missing:
            raise KeyError(f'{where}: no points of annotator(s) {missing}; '
                           f'the sample has {sorted(ann)}')
        kpts = np.asarray(results['keypoints'], dtype=np.float32)
        if kpts.ndim != 3 or kpts.shape[0] != 1:
            raise ValueError(f'{where}: AttachAnnotatorKeypoints expects one '
                             f'instance, keypoints (1, K, 2); got '
                             f'{kpts.shape}')
        k = kpts.shape[1]
        extra = []
        for n in names:
            p = np.asarray(ann[n], dtype=np.float32).reshape(-1, 2)
            if p.shape[0] != k:
                raise ValueError(f'{where}: annotator {n!r} has {p.shape[0]}'
                                 f' points, the ground truth {k}')
            extra.append(p)
        vis = np.asarray(results['keypoints_visible'],
                         dtype=np.float32).reshape(1, k)
        extra_vis = [
            vis[0] * np.isfinite(p).all(-1).astype(np.float32) for p in extra
        ]
        results['keypoints'] = np.concatenate(
            [kpts[..., :2]] + [np.nan_to_num(p)[None] for p in extra], axis=1)
        results['keypoints_visible'] = np.concatenate(
            [vis] + [v[None] for v in extra_vis], axis=1)
        results[_STATE] = (k, names)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(annotators={self.annotators})'


@TRANSFORMS.register_module()
class DetachAnnotatorKeypoints(BaseTransform):
    """Splits the annotators' points off again (before GenerateTarget).

    Restores ``keypoints``, ``transformed_keypoints`` and
    ``keypoints_visible`` to the K ground-truth points and adds
    ``transformed_annotator_keypoints`` (1, A, K, 2) and
    ``transformed_annotator_visible`` (1, A, K): the annotators' points in
    the model input, moved by every transform in between.
    """

    def transform(self, results: dict) -> dict:
        if _STATE not in results:
            raise KeyError(
                f'{results.get("img_path", "<sample>")}: '
                'DetachAnnotatorKeypoints without AttachAnnotatorKeypoints '
                'earlier in the pipeline')
        k, names = results.pop(_STATE)
        a = len(names)
        src = results.get('transformed_keypoints', results['keypoints'])
        src = np.asarray(src, dtype=np.float32)
        vis = np.asarray(results['keypoints_visible'], dtype=np.float32)
        points = src[:, k:].reshape(1, a, k, -1)[..., :2].copy()
        visible = vis[:, k:].reshape(1, a, k).copy()
        # a point that does not count must not be encoded anywhere
        points[visible <= 0] = np.nan
        results['transformed_annotator_keypoints'] = points
        results['transformed_annotator_visible'] = visible
        for key in ('keypoints', 'transformed_keypoints'):
            if key in results:
                results[key] = np.asarray(results[key])[:, :k].copy()
        results['keypoints_visible'] = vis[:, :k].copy()
        return results
