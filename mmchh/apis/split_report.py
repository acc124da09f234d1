# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The review report of a test split (``tools/test.py --report DIR``).

:class:`SplitReportHook`, registered on the test Runner, turns each
predicted sample into a :class:`~mmchh.apis.LandmarkResult` (the API's own
conversion, with the sample's spacing), draws its overlay and its flagged
landmarks' crops (with the true positions) into ``DIR/report/``; after the
test, :func:`write_split_report` adds the split's reliability diagram, ERE
vs true error and Good/Erroneous table from the ``UncertaintyMetric``, and
writes ``DIR/report.html``
(:mod:`~mmchh.visualization.review_report`).
"""
import os
import os.path as osp
from typing import List, Optional

import numpy as np
from mmengine.hooks import Hook

from mmchh.models.heads.flag_basis import describe_flag_status, flag_status
from mmchh.utils.errors import InputError
from mmchh.utils.spacing import Spacing
from mmchh.visualization.review_report import (REPORT_FILE, REPORT_FOLDER,
                                               ReviewImage, SplitSummary,
                                               is_our_report, review_image,
                                               write_report)
from .flag_reasons import configuration_status, describe_configuration_status
from .image_loading import load_xray
from .landmark_result import landmark_result

__all__ = ['SplitReportHook', 'check_split_report_dir', 'split_summary',
           'write_split_report']


def check_split_report_dir(out_dir: str, option: str = '--report') -> None:
    """Makes ``out_dir`` ready for a split's report, or says why not: it
    may hold nothing but an earlier report (our ``report.html`` and the
    PNGs of ``report/``), so no file we did not write is replaced.

    Raises:
        InputError: naming ``option``, the folder and what is in the way.
    """
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise InputError(f'{option} {out_dir} is a file, not a folder')
    os.makedirs(out_dir, exist_ok=True)
    for name in sorted(os.listdir(out_dir)):
        path = osp.join(out_dir, name)
        ours = (name == REPORT_FILE and not osp.islink(path)
                and is_our_report(path)) or (
                    name == REPORT_FOLDER and osp.isdir(path)
                    and not osp.islink(path) and all(
                        n.endswith('.png') and osp.isfile(osp.join(path, n))
                        for n in os.listdir(path)))
        if not ours:
            raise InputError(
                f'{option} {out_dir} holds {name}, which the report does '
                'not write; choose an empty folder (or one holding only an '
                'earlier report)')


def _truth(sample) -> Optional[np.ndarray]:
    """(K, 2) true positions of ``sample`` (image pixels; NaN where not
    annotated), or None without ground truth."""
    gt = sample.get('gt_instances')
    if gt is None or 'keypoints' not in gt:
        return None
    points = np.asarray(gt.keypoints, np.float64)[0, :, :2].copy()
    visible = gt.get('keypoints_visible', None)
    if visible is not None:
        points[np.asarray(visible).reshape(-1) <= 0] = np.nan
    return points


class SplitReportHook(Hook):
    """Collects a test split's report entries, one sample at a time.

    Needs the model's ``test_cfg.output_heatmaps`` (the overlays'
    contours and the regions' outlines).

    Args:
        out_dir (str): The report's folder (``--report DIR``).
        show (str): What the overlays draw (``tools/test.py --draw``; see
            :func:`mmchh.visualization.draw_overlay`).
    """

    priority = 'LOW'

    def __init__(self, out_dir: str, show: str = 'all'):
        self.out_dir = out_dir
        self.show = show
        self.images: List[ReviewImage] = []
        self._used = set()

    def _key(self, path: Optional[str]) -> str:
        """A distinct output name for ``path``."""
        stem = osp.splitext(osp.basename(path))[0] if path else 'image'
        key, i = stem, 1
        while key.lower() in self._used:
            i += 1
            key = f'{stem}~{i}'
        self._used.add(key.lower())
        return key

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        from mmchh.visualization import draw_overlay
        model = getattr(runner.model, 'module', runner.model)
        for sample in outputs or []:
            meta = sample.metainfo
            grey = load_xray(meta['img_path'])
            spacing = meta.get('spacing')
            spacing = None if spacing is None else Spacing.parse(
                spacing, f'{meta["img_path"]}: "spacing"').xy
            result = landmark_result(sample, model, grey.shape,
                                     path=meta['img_path'], spacing=spacing,
                                     return_heatmaps=True)
            key = self._key(meta['img_path'])
            overlay = f'{REPORT_FOLDER}/{key}.overlay.png'
            draw_overlay(grey, result, osp.join(self.out_dir, overlay),
                         show=self.show)
            result.heatmaps = None
            self.images.append(review_image(result, key, self.out_dir, grey,
                                            overlay, _truth(sample)))


def _uncertainty_metric(runner):
    """The test evaluator's first metric with details (the
    ``UncertaintyMetric``), or None."""
    for metric in getattr(runner.test_loop.evaluator, 'metrics', []):
        if getattr(metric, 'last_details', None) and \
                getattr(metric, 'last_arrays', None):
            return metric
    return None


def split_summary(metric, out_dir: str) -> SplitSummary:
    """The split's section of the report from an ``UncertaintyMetric``
    after a test: its figures drawn into ``out_dir/report/``, the
    Good/Erroneous table and the headline numbers with their intervals."""
    from mmchh.visualization import ere_vs_error_png, reliability_diagram_png
    d, a = metric.last_details, metric.last_arrays
    unit = d['unit']
    figures = [
        ('reliability diagram (accuracy vs confidence of the mode pixel)',
         f'{REPORT_FOLDER}/reliability.png'),
        (f'ERE vs true radial error ({unit})',
         f'{REPORT_FOLDER}/ere_vs_error.png')]
    reliability_diagram_png(osp.join(out_dir, figures[0][1]),
                            d['reliability'])
    ere_vs_error_png(osp.join(out_dir, figures[1][1]), a['ere'], a['error'],
                     d['binned_correlation'], unit=unit)
    intervals = {k: (v['low'], v['high'])
                 for k, v in (d.get('intervals') or {}).items()}
    m = d['metrics']

    def number(key, fmt):
        text = format(m[key], fmt)
        if key in intervals and None not in intervals[key]:
            low, high = intervals[key]
            text += f' [{low:{fmt}}, {high:{fmt}}]'
        return text

    lines = [f'MERE {number("MERE", ".3g")} {unit}, ECE '
             f'{number("ECE", ".3g")}, AUC {number("AUC", ".3g")} '
             f'({a["ere"].size} landmarks; erroneous: true error > '
             f'{d[f"erroneous_{unit}"]:g} {unit})']
    return SplitSummary(figures=figures, table=d.get('table'),
                        intervals=intervals, unit=unit, lines=lines)


def write_split_report(runner, hook: SplitReportHook) -> str:
    """Writes ``report.html`` of a finished test: the hook's images and,
    with an ``UncertaintyMetric`` that measured the split, its section.

    Returns:
        str: The report's path.
    """
    model = getattr(runner.model, 'module', runner.model)
    notes = [f'checkpoint: {runner.cfg.get("load_from")}',
             describe_flag_status(flag_status(model.head)),
             describe_configuration_status(configuration_status(model.head))]
    metric = _uncertainty_metric(runner)
    if metric is None:
        notes.append('no uncertainty metric measured this split: no '
                     'reliability diagram or Good/Erroneous table')
    split = None if metric is None else split_summary(metric, hook.out_dir)
    return write_report(hook.out_dir, hook.images,
                        'Review report: test split', notes, split)

