# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The trivial baseline: every landmark at its mean training position.

A model that does not beat this has learnt nothing about the image; the demo
prints it next to the model's results.
"""
import json
from typing import Dict, Sequence

import numpy as np

from .functional.radial_error import radial_errors_mm


def _load_points(ann_file: str):
    with open(ann_file) as f:
        data = json.load(f)
    images = {img['id']: img for img in data['images']}
    points, spacing = [], []
    for ann in data['annotations']:
        kpts = np.asarray(ann['keypoints'], np.float64).reshape(-1, 3)
        points.append(kpts[:, :2])
        img = images[ann['image_id']]
        spacing.append(np.broadcast_to(
            np.asarray(img.get('spacing', 1.0), np.float64), (2, )))
    if not points:
        raise ValueError(f'{ann_file}: no annotations')
    return np.stack(points), np.stack(spacing)


def mean_position_baseline(
        train_file: str,
        test_file: str,
        thresholds: Sequence[float] = (2.0, 2.5, 3.0, 4.0)
) -> Dict[str, float]:
    """MRE and SDR of predicting each landmark's mean training position.

    Args:
        train_file (str): COCO JSON whose landmarks give the means.
        test_file (str): COCO JSON to evaluate on (same image size, as
            written by ``convert_isbi --resize``).
        thresholds (sequence): SDR thresholds in mm.

    Returns:
        dict: ``MRE`` (mm), ``MRE_std`` and ``SDR_<t>mm`` (%).
    """
    train, _ = _load_points(train_file)
    test, spacing = _load_points(test_file)
    mean = train.mean(axis=0)
    errors = radial_errors_mm(mean[None], test, spacing[:, None, :])
    result = dict(MRE=float(errors.mean()), MRE_std=float(errors.std()))
    for t in thresholds:
        result[f'SDR_{t:g}mm'] = float((errors < t).mean() * 100)
    return result
