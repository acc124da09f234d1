# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The output folder of a folder inference (``tools/infer.py --out-dir``).

* One run at a time: :class:`InferOutput` holds ``OUT_DIR/.infer.lock``
  (:class:`~mmchh.utils.run_lock.RunLock`) for the whole run.
* Nothing finished is lost: without ``overwrite`` the run writes into
  ``OUT_DIR`` and refuses one that holds an earlier run's outputs
  (:func:`check_out_dir`); with ``overwrite`` it writes into a staging
  sibling ``OUT_DIR.tmp-<pid>-<random>`` (same filesystem) that replaces
  ``OUT_DIR`` only when the run succeeded (:meth:`InferOutput.commit`,
  the converters' atomic swap), so a bad checkpoint or a crash leaves the
  earlier results as they were.
* Nothing we did not write is lost: files of ``OUT_DIR`` that a run does
  not write (:func:`foreign_entries`) are carried into the staging folder
  as hard links before the swap (the same files, never copies). The
  labelme folder's review copies (:func:`~.labelme_export.is_review_copy`:
  marked PNGs) are a run's outputs, not carried; a ``report.html`` is
  a run's only when it carries the review report's mark
  (:func:`~mmchh.visualization.review_report.is_our_report`), and a run
  with ``--report`` refuses a folder holding one we did not write.
"""
import os
import os.path as osp
import shutil
import warnings
from typing import List

from mmchh.datasets.converters.atomic_output import (make_sibling_tmp,
                                                     recover_output_folder,
                                                     swap_in)
from mmchh.utils.errors import InputError
from mmchh.utils.run_lock import RunLock
from mmchh.visualization.review_report import (REPORT_FILE, REPORT_FOLDER,
                                               check_report_folder,
                                               is_our_report)

from .labelme_export import LABELME_FOLDER, is_review_copy

__all__ = [
    'LOCK_FILE', 'OUTPUT_FILES', 'OUTPUT_FOLDERS', 'InferOutput',
    'check_out_dir', 'earlier_outputs', 'foreign_entries'
]

#: The lock file a run holds in its output folder.
LOCK_FILE = '.infer.lock'
#: What a run writes into the output folder: files, and folders with the
#: extension of the files it writes there.
OUTPUT_FILES = ('landmarks.json', 'landmarks.csv', 'measurements.csv',
                REPORT_FILE)
OUTPUT_FOLDERS = (('results', '.json'), ('overlays', '.png'),
                  (LABELME_FOLDER, '.json'), (REPORT_FOLDER, '.png'))
#: Prefix of the atomic writer's temporary files (a killed run's are ours).
_TMP_PREFIX = '.tmp_'


def _is_ours(name: str, path: str, ext: str = '') -> bool:
    """Whether ``path`` (called ``name``) is a file a run writes (with
    ``ext`` inside an output folder; at the top with ``ext`` empty)."""
    if osp.islink(path) or not osp.isfile(path):
        return False
    if name.startswith(_TMP_PREFIX):
        return True
    if not ext and name == REPORT_FILE:
        return is_our_report(path)
    return name.endswith(ext) if ext else name in OUTPUT_FILES + (LOCK_FILE,)


def earlier_outputs(out_dir: str) -> List[str]:
    """The files of an earlier run in ``out_dir`` (paths; the lock and
    temporary files are not outputs)."""
    found = [osp.join(out_dir, n) for n in OUTPUT_FILES
             if osp.isfile(osp.join(out_dir, n)) and (
                 n != REPORT_FILE or is_our_report(osp.join(out_dir, n)))]
    for folder, ext in OUTPUT_FOLDERS:
        path = osp.join(out_dir, folder)
        if osp.isdir(path):
            found += [osp.join(path, n) for n in sorted(os.listdir(path))
                      if n.endswith(ext) and not n.startswith(_TMP_PREFIX)]
    return found


def foreign_entries(out_dir: str) -> List[str]:
    """What ``out_dir`` holds that no run writes (paths relative to it):
    top-level entries other than the outputs, and in the output folders
    anything but their files (and the labelme folder's review copies)."""
    folders = dict(OUTPUT_FOLDERS)
    found = []
    for name in sorted(os.listdir(out_dir)):
        path = osp.join(out_dir, name)
        if name in folders and osp.isdir(path) and not osp.islink(path):
            found += [
                osp.join(name, n) for n in sorted(os.listdir(path))
                if not _is_ours(n, osp.join(path, n), folders[name]) and
                not (name == LABELME_FOLDER
                     and is_review_copy(osp.join(path, n)))
            ]
        elif not _is_ours(name, path):
            found.append(name)
    return found


def check_out_dir(out_dir: str, overwrite: bool,
                  report: bool = False) -> None:
    """Makes ``out_dir`` ready for a run, or says why it cannot be.

    Puts back an earlier output a killed swap left aside and removes the
    staging folders of runs no longer alive (each with a warning), creates
    the folder, checks it is writable and, without ``overwrite``, that it
    holds no earlier run's outputs; with ``report``, that it holds no
    ``report.html`` we did not write.

    Raises:
        InputError: naming ``--out-dir`` and the reason.
    """
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise InputError(f'--out-dir {out_dir} is a file, not a folder')
    target = osp.realpath(out_dir)
    try:
        if osp.isdir(osp.dirname(target)):
            for line in recover_output_folder(target):
                warnings.warn(f'--out-dir {out_dir}: {line}')
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise InputError(f'--out-dir {out_dir} cannot be created: '
                         f'{e.strerror or e}') from e
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise InputError(f'--out-dir {out_dir} is not writable')
    if report:
        check_report_folder(out_dir, '--out-dir')
    earlier = earlier_outputs(out_dir)
    if earlier and not overwrite:
        raise InputError(
            f'--out-dir {out_dir} already holds the outputs of an earlier run '
            f'({len(earlier)} file(s), e.g. {earlier[0]}); choose another '
            'folder or pass --overwrite to replace them')


def _carry(target: str, staging: str) -> None:
    """Hard-links every foreign entry of ``target`` into ``staging``."""
    for rel in foreign_entries(target):
        src, dst = osp.join(target, rel), osp.join(staging, rel)
        os.makedirs(osp.dirname(dst), exist_ok=True)
        if osp.isdir(src) and not osp.islink(src):
            shutil.copytree(src, dst, symlinks=True, copy_function=os.link)
        else:
            os.link(src, dst, follow_symlinks=False)


class InferOutput:
    """The folder one run writes into, for the length of a ``with`` block.

    Args:
        out_dir (str): ``--out-dir`` (checked by :func:`check_out_dir`).
        overwrite (bool): Write into a staging folder that replaces
            ``out_dir`` at :meth:`commit`.
        tool (str): The tool, named to a second run.

    Attributes:
        path (str): Where the run writes (``out_dir`` or the staging
            folder); set on entering.

    Raises:
        RunLockError: on entering, when another run writes into
            ``out_dir``.
    """

    def __init__(self, out_dir: str, overwrite: bool, tool: str):
        self.out_dir, self.overwrite = out_dir, overwrite
        self.target = osp.realpath(out_dir)  # a symlink: swap its target
        self.lock = RunLock(osp.join(self.target, LOCK_FILE), tool,
                            f'--out-dir {out_dir}')
        self.path = out_dir
        self._done = False

    def __enter__(self) -> 'InferOutput':
        self.lock.__enter__()
        if self.overwrite:
            try:
                self.path = make_sibling_tmp(self.target)
            except OSError as e:
                self.lock.__exit__(None, None, None)
                raise InputError(f'--out-dir {self.out_dir}: cannot create '
                                 f'the staging folder beside it ({e})') from e
        return self

    def commit(self) -> None:
        """Puts a staged run in place (its foreign files carried over).

        Raises:
            InputError: when it cannot (e.g. a file that cannot be hard
                linked): the earlier results are unchanged.
        """
        if not self.overwrite:
            return
        try:
            _carry(self.target, self.path)
            swap_in(self.path, self.target)
        except OSError as e:
            raise InputError(
                f'--out-dir {self.out_dir}: the new results could not '
                f'replace the earlier ones ({e}); the earlier results are '
                'unchanged') from e
        self._done = True

    def keep(self) -> None:
        """Leaves a staged run's folder where it is (not swapped in), for
        the user to read."""
        self._done = True

    def __exit__(self, *exc) -> None:
        try:
            if self.overwrite and not self._done:
                shutil.rmtree(self.path, ignore_errors=True)
        finally:
            self.lock.__exit__(*exc)
