# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Tests of the calibration figure writers: valid PNGs, written atomically."""
import os

import numpy as np

from mmchh.evaluation.functional.calibration_metrics import (
    binned_correlation, expected_calibration_error, roc_auc, threshold_at_tpr)
from mmchh.visualization.calibration_plots import (ere_vs_error_png,
                                                   reliability_diagram_png,
                                                   roc_png)


def _is_png(path):
    with open(path, 'rb') as f:
        head = f.read(8)
    return head == b'\x89PNG\r\n\x1a\n' and os.path.getsize(path) > 1000


def test_png_writers(tmp_path):
    rng = np.random.default_rng(3)
    conf = rng.beta(2, 10, 300)
    hit = rng.random(300) < conf
    before = expected_calibration_error(np.clip(conf * 1.5, 0, 1), hit)
    after = expected_calibration_error(conf, hit)
    ere = rng.gamma(2, 0.7, 300)
    err = np.abs(ere + rng.normal(0, 0.5, 300))
    out = tmp_path / 'figs'  # created on demand
    paths = [str(out / n) for n in ('rel2.png', 'rel1.png', 'ere.png',
                                    'roc.png', 'roc_t.png')]
    reliability_diagram_png(paths[0], before, after, title='T scaling')
    reliability_diagram_png(paths[1], after)
    ere_vs_error_png(paths[2], ere, err, binned_correlation(ere, err))
    roc = roc_auc(ere, err > 2)
    roc_png(paths[3], roc)
    roc_png(paths[4], roc, threshold=threshold_at_tpr(ere, err > 2))
    for p in paths:
        assert _is_png(p), p
    # atomic writes leave nothing else behind, and overwrite in place
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p)
                                             for p in paths)
    roc_png(paths[3], roc)
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p)
                                             for p in paths)
