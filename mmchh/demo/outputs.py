# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What the demo promises to write, and the checks that hold it to that.

:data:`DEMO_OUTPUTS` and :data:`DEMO_DATA_OUTPUTS` are the single source of
what the documentation may promise (``tests/test_reliability/test_docs.py``
checks the documentation against them); :func:`outputs_markdown` is the
table of outputs in ``docs/getting_started.md``.
"""
import glob
import os
import os.path as osp

__all__ = [
    'DEMO_DATA_OUTPUTS', 'DEMO_OUTPUTS', 'missing_outputs',
    'outputs_markdown', 'remove_stale_outputs'
]

#: Every file the demo writes under ``--work-dir`` that the documentation
#: may name (shell patterns), with what it holds. The demo removes them
#: before it starts (an earlier run's copies) and fails at the end if one of
#: them is missing.
DEMO_OUTPUTS = {
    'calibrated.pth':
    'the calibrated checkpoint (temperatures and flag threshold inside)',
    'best_ceph_MRE_epoch_*.pth':
    'the best checkpoint by validation MRE, uncalibrated (only one is kept; '
    'the epoch depends on the run)',
    'calibration.json':
    'the temperature fit on the calibration split: temperatures, NLL and '
    'ECE before/after, the ERE flag threshold',
    'calib_reliability_before_after.png':
    'reliability diagram of the calibration split before and after',
    'test1_reliability_before_after.png':
    'Test1 reliability diagram before and after calibration',
    'unc_reliability.png':
    'Test1 reliability diagram (calibrated)',
    'unc_ere_vs_error.png':
    'ERE vs radial error on Test1 (calibrated)',
    'unc_roc.png':
    'ROC of ERE for errors > 2 mm on Test1 (calibrated)',
    'unc_uncertainty.json':
    'every uncertainty number on Test1 (calibrated)',
    'unc_landmarks.npz':
    'per landmark of Test1 (calibrated): error, ERE, confidence, NLL ... '
    '(what the paired before/after intervals are computed from)',
    'uncalibrated/unc_uncertainty.json':
    'the same for the best checkpoint before calibration',
    'uncalibrated/unc_landmarks.npz':
    'per landmark of Test1 before calibration',
    'demo_results.json':
    'every number the demo printed, with the machine, the command and the '
    'duration',
    'demo_results.md':
    'the results table of docs/results.md for this run, with the machine '
    'and the command',
}

#: What the data stages write under ``--data-dir`` (shell patterns).
DEMO_DATA_OUTPUTS = (
    'synthetic_ceph',
    'synthetic_ceph/RawImage/TrainingData/*.bmp',
    'synthetic_ceph/RawImage/Test1Data/*.bmp',
    'synthetic_ceph/RawImage/Test2Data/*.bmp',
    'synthetic_ceph/AnnotationsByMD/400_senior/*.txt',
    'synthetic_ceph/AnnotationsByMD/400_junior/*.txt',
    'synthetic_ceph_coco',
    'synthetic_ceph_coco/train.json',
    'synthetic_ceph_coco/val.json',
    'synthetic_ceph_coco/calib.json',
    'synthetic_ceph_coco/test1.json',
    'synthetic_ceph_coco/test2.json',
    'synthetic_ceph_coco/conversion.json',
    'synthetic_ceph_coco/images/*.png',
)


def outputs_markdown():
    """The table of :data:`DEMO_OUTPUTS` in ``docs/getting_started.md``."""
    lines = ['| file | what |', '|---|---|']
    lines += [f'| `{name}` | {what} |' for name, what in DEMO_OUTPUTS.items()]
    return '\n'.join(lines) + '\n'


def missing_outputs(work_dir):
    """The :data:`DEMO_OUTPUTS` patterns that match no file in ``work_dir``.
    """
    return [
        name for name in DEMO_OUTPUTS
        if not glob.glob(osp.join(glob.escape(work_dir), name))
    ]


def remove_stale_outputs(work_dir):
    """Deletes the :data:`DEMO_OUTPUTS` an earlier run left in ``work_dir``.

    Only files matching those names are touched. Afterwards every promised
    output that exists was written by this run: a stage that fails to write
    its file cannot be hidden by the previous run's copy, and the best
    checkpoint pattern names exactly one file.

    Returns:
        list[str]: the removed paths.
    """
    removed = []
    for name in DEMO_OUTPUTS:
        for path in glob.glob(osp.join(glob.escape(work_dir), name)):
            if osp.isfile(path):
                os.remove(path)
                removed.append(path)
    return removed
