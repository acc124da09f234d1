# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Converts the ISBI 2015 cephalometric release to COCO-keypoint JSON.

Input layout (as users download it; see docs/isbi.md)::

    ROOT/RawImage/{TrainingData,Test1Data,Test2Data}/NNN.bmp
    ROOT/AnnotationsByMD/400_senior/NNN.txt    (or ROOT/400_senior/NNN.txt)
    ROOT/AnnotationsByMD/400_junior/NNN.txt    (or ROOT/400_junior/NNN.txt)

Each txt holds 19 lines ``x,y`` (0-based integer pixels) and then, when
present, 8 classification label lines (ANB, SNB, SNA, ODI, APDI, FHI, FMA,
MW). CRLF endings and trailing spaces are accepted. ``Test2Data`` may be
missing (a partial copy): the test2 split is then empty, ``test2.json`` is
not written and the summary says why; annotation files numbered after the
last image found are taken to be Test2's and ignored (counted in the
summary).

Output: ``OUT_DIR/{train,val,calib,test1,test2}.json`` and
``OUT_DIR/conversion.json`` (what was converted, how, and per split the
image count and any note). ``val`` (model selection) and ``calib``
(temperature scaling) are held out of the training images by a fixed seed,
so temperatures are never fitted on a test set; each needs at least one
image (an empty split cannot be loaded). Every image file name is relative
to ``OUT_DIR`` (use ``data_root=OUT_DIR`` and an empty image prefix). With
``resize``, images are padded right/bottom to the target aspect, resized,
and written to ``OUT_DIR/images/``; keypoints follow with
``x' = (x + 0.5) * sx - 0.5`` (pixel centres map to where their pixel went)
and the spacing becomes ``spacing / s`` per axis.

Nothing is silently dropped: bad input (including two files with the same
name in one folder, e.g. ``002.bmp`` and ``002.png``) stops the conversion
with an error naming the file (and line), unless ``skip_bad`` is set, in
which case the image is skipped with a warning and counted in the summary.
Options (``resize``, ``num_val``, ``num_calib``, ``spacing``,
``split_seed``) and the output folder are validated before anything is
read or written.

The output folder is replaced as a whole, atomically:

1. The whole conversion is written to a sibling folder
   ``OUT_DIR.tmp-<pid>-<random>`` (same filesystem), every file synced.
2. It checks itself: every JSON is re-read and each image it names must
   exist with the recorded width and height (read from the header).
3. ``conversion.json`` is written last; then the folder is swapped in: on
   Linux with ``renameat2(RENAME_EXCHANGE)`` (one atomic step: ``OUT_DIR``
   holds the old conversion, then the new one, never a mix), after which
   the old one (now at the temporary name) is removed. Where the exchange
   is unavailable, the old folder is renamed aside to
   ``OUT_DIR.old-<pid>-<random>``, the new one renamed in, and the old one
   removed; a run killed between the two renames leaves no ``OUT_DIR``, and
   the next run (or reading the dataset, which says so) finds the old one
   aside and puts it back.

So a run killed at any moment (SIGKILL included) leaves ``OUT_DIR`` with
either the complete previous conversion or the complete new one. The next
run into the same folder removes leftover ``.tmp-``/``.old-`` folders of
runs that are no longer alive (a live run's are left alone). A conversion
only ever replaces its own earlier output: an existing non-empty
``OUT_DIR`` without ``conversion.json`` or split JSONs, or holding anything
a conversion does not write, or containing the input release, is refused
with an error naming it.
"""
import ctypes
import datetime
import errno
import math
import os
import os.path as osp
import re
import secrets
import shutil
import signal
import sys
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from mmchh.utils.errors import InputError
from mmchh.utils.io import dumps_json
from .ceph_meta import (CEPH_LABEL_NAMES, CEPH_LANDMARK_NAMES,
                        ISBI_ANNOTATOR_FOLDERS, ISBI_IMAGE_FOLDERS,
                        ISBI_OPTIONAL_IMAGE_FOLDERS, ISBI_SPACING_MM,
                        NUM_CEPH_LANDMARKS)
from .data_checks import check_image_size

SPLITS = ('train', 'val', 'calib', 'test1', 'test2')
IMAGE_EXTENSIONS = ('.bmp', '.png', '.jpg', '.jpeg', '.tif', '.tiff')

#: Written last into every conversion: marks a folder as a complete
#: conversion (and says what was converted, how).
CONVERSION_MARKER = 'conversion.json'

#: Largest ``resize`` side accepted (pixels).
MAX_RESIZE_SIDE = 16384

#: Testing hooks (used by the tests' kill-at-every-step checks): the
#: process SIGKILLs itself at the named step (see ``_kill_point``), and the
#: ``RENAME_EXCHANGE`` swap can be turned off to exercise the fallback.
KILL_AT_ENV = 'MMCHH_CONVERT_KILL_AT'
NO_EXCHANGE_ENV = 'MMCHH_CONVERT_NO_EXCHANGE'


class ConversionError(InputError):
    """Bad input or output folder found while converting; the message names
    the file, field or option."""


class BadImageError(ConversionError):
    """One image's files are bad; ``skip_bad`` skips that image instead."""


@dataclass
class Annotation:
    """One annotator's reading of one image."""
    points: np.ndarray  # (19, 2) float64, 0-based pixels
    labels: Optional[Dict[str, int]]  # the 8 classification labels, if any


@dataclass
class ConversionSummary:
    """What a conversion wrote (and skipped).

    ``notes`` maps a split to why it is empty or incomplete (e.g. test2:
    ``RawImage/Test2Data not found``); ``written`` lists the split JSONs
    written.
    """
    out_dir: str
    images_per_split: Dict[str, int]
    annotators: List[str]
    gt: str
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    resize: Optional[Tuple[int, int]] = None
    notes: Dict[str, str] = field(default_factory=dict)
    written: List[str] = field(default_factory=list)

    def format(self) -> str:
        lines = [f'convert_isbi: wrote {self.out_dir}']
        for split in SPLITS:
            line = (f'  {split:6s} {self.images_per_split[split]:4d} '
                    'images')
            if split in self.notes:
                line += f' ({self.notes[split]})'
            lines.append(line)
        lines.append(f'  landmarks {NUM_CEPH_LANDMARKS}; annotators '
                     f'{", ".join(self.annotators)}; ground truth {self.gt}')
        if self.resize:
            lines.append(f'  images resized to {self.resize[0]}x'
                         f'{self.resize[1]} (padded right/bottom)')
        lines.append(f'  skipped {len(self.skipped)} bad image(s)')
        for path, why in self.skipped:
            lines.append(f'    {path}: {why}')
        return '\n'.join(lines)


def parse_annotation_file(path: str,
                          image_size: Optional[Tuple[int, int]] = None
                          ) -> Annotation:
    """Reads one annotator's txt file.

    Args:
        path (str): The txt file.
        image_size (tuple, optional): (width, height); when given, every
            point must lie inside ``[0, width) x [0, height)``.

    Returns:
        Annotation: the 19 points and the labels (None when the file has no
        label lines).

    Raises:
        ConversionError: naming the file and line for a short file, a
            non-numeric or non-finite value, a point outside the image, an
            incomplete label block or unexpected extra lines.
    """
    try:
        with open(path, 'rb') as f:
            raw = f.read()
        text = raw.decode('utf-8-sig')
    except (OSError, UnicodeDecodeError) as e:
        raise ConversionError(f'{path}: cannot read annotation file ({e})')
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    n = NUM_CEPH_LANDMARKS
    if len(lines) < n:
        raise ConversionError(f'{path}: expected {n} coordinate lines '
                              f'"x,y", found {len(lines)} lines')
    points = np.empty((n, 2), dtype=np.float64)
    for i, line in enumerate(lines[:n]):
        parts = [p.strip() for p in line.split(',')]
        try:
            if len(parts) != 2:
                raise ValueError
            x, y = float(parts[0]), float(parts[1])
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError
        except ValueError:
            raise ConversionError(
                f'{path}:{i + 1}: expected "x,y" for landmark {i + 1} '
                f'({CEPH_LANDMARK_NAMES[i]}), got {line!r}') from None
        if image_size is not None and not (0 <= x < image_size[0]
                                           and 0 <= y < image_size[1]):
            raise ConversionError(
                f'{path}:{i + 1}: landmark {i + 1} ({CEPH_LANDMARK_NAMES[i]})'
                f' at ({x:g}, {y:g}) is outside the {image_size[0]}x'
                f'{image_size[1]} image')
        points[i] = x, y

    rest = lines[n:]
    labels = None
    if rest:
        m = len(CEPH_LABEL_NAMES)
        if len(rest) != m:
            raise ConversionError(
                f'{path}:{n + 1}: expected no label lines or exactly {m} '
                f'({", ".join(CEPH_LABEL_NAMES)}), found {len(rest)}')
        labels = {}
        for j, (name, line) in enumerate(zip(CEPH_LABEL_NAMES, rest)):
            try:
                labels[name] = int(line)
            except ValueError:
                raise ConversionError(
                    f'{path}:{n + j + 1}: label {name} must be an integer, '
                    f'got {line!r}') from None
    return Annotation(points=points, labels=labels)


def read_image_size(path: str) -> Tuple[int, int]:
    """(width, height) of an image, checking that it decodes.

    An EXIF orientation other than "normal" is refused: the annotations
    are in stored pixels, but the training pipeline's ``LoadImage`` would
    rotate the image.
    """
    import cv2
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ConversionError(f'{path}: cannot read image (missing, corrupt '
                              'or not an image)')
    from PIL import Image
    try:
        with Image.open(path) as pil:
            orientation = pil.getexif().get(0x0112, 1)
    except (OSError, ValueError):  # Pillow cannot parse it: no EXIF
        orientation = 1
    if orientation not in (0, 1):
        raise ConversionError(
            f'{path}: EXIF orientation {orientation} (rotated/flipped): the '
            'annotations are in stored pixels but LoadImage would rotate '
            'the image; save it without the orientation tag first')
    return img.shape[1], img.shape[0]


def find_annotator_dirs(root: str) -> Dict[str, str]:
    """Annotator name -> folder, for either release layout."""
    found = {}
    for folder, name in ISBI_ANNOTATOR_FOLDERS:
        for parent in (osp.join(root, 'AnnotationsByMD'), root):
            path = osp.join(parent, folder)
            if osp.isdir(path):
                found[name] = path
                break
    if not found:
        raise ConversionError(
            f'{root}: no annotation folders; expected AnnotationsByMD/'
            f'{ISBI_ANNOTATOR_FOLDERS[0][0]} (or {ISBI_ANNOTATOR_FOLDERS[0][0]}'
            ' directly under the root)')
    return found


def _stem_files(folder: str, extensions: Sequence[str]
                ) -> Tuple[Dict[str, str], Dict[str, List[str]]]:
    """Stem -> file in ``folder`` for the given extensions (any case).

    Returns:
        tuple: (stem -> path of the stems found once, stem -> every path of
        the stems found more than once, e.g. ``002.bmp`` and ``002.png``).
    """
    found: Dict[str, List[str]] = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = osp.splitext(name)
        if ext.lower() in extensions and not name.startswith('.'):
            found.setdefault(stem, []).append(osp.join(folder, name))
    once = {stem: paths[0] for stem, paths in found.items()
            if len(paths) == 1}
    dups = {stem: paths for stem, paths in found.items() if len(paths) > 1}
    return once, dups


def _duplicate_message(paths: Sequence[str], what: str) -> str:
    return (f'{" and ".join(paths)}: {len(paths)} {what} files with the same '
            f'name {osp.splitext(osp.basename(paths[0]))[0]}; which one is '
            'meant? Remove or rename all but one')


def default_hold_out(num_train: int) -> int:
    """Images held out per split (val, calib) when not given: 10 % of the
    training images, at least 1 and at most 15 (15 of ISBI's 150, the
    paper-sized split)."""
    return int(min(15, max(1, round(0.1 * num_train))))


def _check_count(name: str, value) -> None:
    """An optional held-out count: None or an int >= 1."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConversionError(f'--{name} must be an integer; got {value!r}')
    if value < 1:
        need = dict(
            num_val='the validation loop and best-checkpoint selection of '
            'the configs (val_dataloader on val.json)',
            num_calib='temperature scaling (TemperatureScalingHook at the '
            'end of training, tools/calibrate.py on calib.json)')[
                name.replace('-', '_')]
        raise ConversionError(
            f'--{name} {value}: {need} need at least 1 held-out image (an '
            'empty split cannot be loaded); give --' + name + ' >= 1')


def hold_out_splits(stems: Sequence[str], num_val: Optional[int],
                    num_calib: Optional[int],
                    seed: int) -> Dict[str, List[str]]:
    """Splits training stems into train / val / calib by a fixed seed.

    ``None`` for a count means :func:`default_hold_out`; a count must be at
    least 1 and leave at least 1 training image.

    Raises:
        ConversionError: for a count below 1 or too many held out.
    """
    _check_count('num-val', num_val)
    _check_count('num-calib', num_calib)
    if num_val is None:
        num_val = default_hold_out(len(stems))
    if num_calib is None:
        num_calib = default_hold_out(len(stems))
    if num_val + num_calib >= len(stems):
        raise ConversionError(
            f'cannot hold out {num_val} val + {num_calib} calib images of '
            f'{len(stems)} training images; lower --num-val/--num-calib')
    order = np.random.default_rng(seed).permutation(len(stems))
    picked = [stems[i] for i in order]
    return dict(
        val=sorted(picked[:num_val]),
        calib=sorted(picked[num_val:num_val + num_calib]),
        train=sorted(picked[num_val + num_calib:]))


def padded_resize_params(width: int, height: int,
                         target: Tuple[int, int]) -> dict:
    """Right/bottom padding to the target aspect, then the resize factors."""
    tw, th = target
    pw = max(width, int(math.ceil(height * tw / th)))
    ph = max(height, int(math.ceil(width * th / tw)))
    return dict(
        padded_size=(pw, ph), scale=(tw / pw, th / ph), size=(tw, th))


def _keypoints_field(points: np.ndarray) -> List[float]:
    kpts = np.concatenate([points, np.full((len(points), 1), 2.0)], axis=1)
    return [round(float(v), 6) for v in kpts.reshape(-1)]


def validate_options(resize=None,
                     spacing: Union[float, Sequence[float]] = ISBI_SPACING_MM,
                     num_val: Optional[int] = None,
                     num_calib: Optional[int] = None,
                     split_seed: int = 0
                     ) -> Tuple[Optional[Tuple[int, int]], np.ndarray]:
    """Checks the conversion options before anything is read or written.

    Args:
        resize: None or (W, H), two integers in ``[1, MAX_RESIZE_SIDE]``.
        spacing: One or two positive finite mm/pixel values.
        num_val, num_calib: None (default) or an integer >= 1.
        split_seed: A non-negative integer.

    Returns:
        tuple: (resize as a tuple of ints or None, spacing as (2,) float64).

    Raises:
        ConversionError: naming the option and the value given.
    """
    if resize is not None:
        vals = list(resize) if isinstance(resize, (list, tuple,
                                                   np.ndarray)) else None
        if vals is None or len(vals) != 2 or not all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                for v in vals) or not all(1 <= v <= MAX_RESIZE_SIDE
                                          for v in vals):
            raise ConversionError(
                f'--resize must be two integers W H in 1..{MAX_RESIZE_SIDE}'
                f'; got {resize!r}')
        resize = (int(vals[0]), int(vals[1]))
    try:
        arr = np.asarray(spacing, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim > 1 or arr.size not in (1, 2) or not (
            np.isfinite(arr).all() and (arr > 0).all()):
        raise ConversionError('--spacing must be one or two positive finite '
                              f'mm/pixel values; got {spacing!r}')
    spacing_xy = np.broadcast_to(arr.reshape(-1), (2, )).copy()
    _check_count('num-val', num_val)
    _check_count('num-calib', num_calib)
    if isinstance(split_seed, bool) or not isinstance(
            split_seed, (int, np.integer)) or split_seed < 0:
        raise ConversionError('--split-seed must be a non-negative integer; '
                              f'got {split_seed!r}')
    return resize, spacing_xy


# ---------------------------------------------------------------------------
# the output folder: refuse foreign folders, recover, build aside, swap in
# ---------------------------------------------------------------------------
def _is_inside(path: str, folder: str) -> bool:
    path, folder = osp.realpath(path), osp.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _check_replaceable(out_dir: str, root: Optional[str] = None) -> None:
    """Refuses an output folder a conversion must not replace.

    ``out_dir`` may be missing, empty, or an earlier conversion: a folder
    holding ``conversion.json`` or a split JSON and nothing but what a
    conversion writes (split JSONs, ``conversion.json``, ``images/`` of
    image files, ``*.tmp-*`` files of an older converter).
    """
    if not osp.lexists(out_dir):
        return
    if not osp.isdir(out_dir):
        raise ConversionError(f'{out_dir}: output path exists and is not a '
                              'folder')
    if root is not None and _is_inside(root, out_dir):
        raise ConversionError(
            f'{out_dir}: output folder contains the input release {root}; '
            'replacing it would delete the input. Choose another output '
            'folder')
    entries = sorted(os.listdir(out_dir))
    if not entries:
        return
    ours = {f'{s}.json' for s in SPLITS} | {CONVERSION_MARKER}
    if not any(e in ours for e in entries):
        raise ConversionError(
            f'{out_dir}: output folder is not empty and does not hold a '
            f'conversion (no {CONVERSION_MARKER}, no split JSONs; it holds '
            f'{entries[0]!r}{" and more" if len(entries) > 1 else ""}); '
            'refusing to replace it. Choose an empty or new folder')
    for e in entries:
        path = osp.join(out_dir, e)
        if e in ours and osp.isfile(path) or '.tmp-' in e:
            continue
        if e == 'images' and osp.isdir(path) and not osp.islink(path):
            foreign = [n for n in sorted(os.listdir(path))
                       if not osp.isfile(osp.join(path, n))
                       or osp.islink(osp.join(path, n))
                       or not (osp.splitext(n)[1].lower() in IMAGE_EXTENSIONS
                               or '.tmp-' in n)]
            if not foreign:
                continue
            path = osp.join(path, foreign[0])
        raise ConversionError(
            f'{out_dir}: the earlier conversion there also holds {path}, '
            'which tools/convert_isbi.py does not write; refusing to replace '
            '(and delete) it. Move it away or choose another output folder')


def _sibling_re(out_dir: str) -> 're.Pattern':
    return re.compile(re.escape(osp.basename(out_dir)) +
                      r'\.(tmp|old)-(\d+)-[0-9a-f]+$')


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _leftovers(out_dir: str) -> Dict[str, List[str]]:
    """``.tmp-``/``.old-`` siblings of ``out_dir`` left by runs that are no
    longer alive, by kind."""
    parent = osp.dirname(out_dir)
    pattern = _sibling_re(out_dir)
    found: Dict[str, List[str]] = dict(tmp=[], old=[])
    if not osp.isdir(parent):
        return found
    for name in sorted(os.listdir(parent)):
        m = pattern.match(name)
        path = osp.join(parent, name)
        if m and osp.isdir(path) and not osp.islink(path) and not _pid_alive(
                int(m.group(2))):
            found[m.group(1)].append(path)
    return found


def find_interrupted_conversion(out_dir: str) -> Optional[str]:
    """The earlier conversion a killed fallback swap left aside, if
    ``out_dir`` is missing because of it (else None)."""
    out_dir = osp.realpath(out_dir)
    if osp.lexists(out_dir):
        return None
    # only the swap makes ``.old-`` folders, each from ``out_dir`` itself
    # (possibly an older converter's output, without the marker)
    aside = _leftovers(out_dir)['old']
    return max(aside, key=osp.getmtime) if aside else None


def recover_output_folder(out_dir: str) -> List[str]:
    """Repairs what a killed conversion into ``out_dir`` left behind.

    Puts back the earlier conversion a killed fallback swap left aside (when
    ``out_dir`` is missing), then removes the ``.tmp-``/``.old-`` siblings
    of runs no longer alive.

    Returns:
        list: what was done, one line each (for the log).
    """
    out_dir = osp.realpath(out_dir)
    done = []
    aside = find_interrupted_conversion(out_dir)
    if aside is not None:
        os.rename(aside, out_dir)
        done.append(f'restored the earlier conversion {aside} -> {out_dir} '
                    '(an interrupted run had moved it aside)')
    for kind, paths in _leftovers(out_dir).items():
        for path in paths:
            shutil.rmtree(path)
            done.append(f'removed {path} (left by an interrupted run)')
    return done


def _kill_point(step: str) -> None:
    """Testing hook: SIGKILL this process at ``step`` when asked (see
    ``KILL_AT_ENV``); nothing otherwise."""
    if os.environ.get(KILL_AT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not supported on this filesystem
    finally:
        os.close(fd)


def _write_synced(path: str, data: bytes) -> None:
    """Writes a file of the temporary conversion and syncs it to disk (the
    whole folder is swapped in at once, so no per-file rename is needed)."""
    with open(path, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _rename_exchange(a: str, b: str) -> bool:
    """Atomically exchanges two paths (Linux ``renameat2``).

    Returns:
        bool: False when the exchange is unavailable here (no
        ``renameat2``, or the filesystem does not support it).
    """
    if os.environ.get(NO_EXCHANGE_ENV) or not sys.platform.startswith(
            'linux'):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                          ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b),
                 rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP,
               errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), a, None, b)


def _swap_in(tmp: str, out_dir: str) -> None:
    """Replaces ``out_dir`` (missing, empty or a conversion) by ``tmp``."""
    parent = osp.dirname(out_dir)
    _fsync_dir(tmp)
    if not osp.lexists(out_dir) or (osp.isdir(out_dir)
                                    and not os.listdir(out_dir)):
        os.rename(tmp, out_dir)  # replaces an empty folder atomically
        _fsync_dir(parent)
        return
    if _rename_exchange(tmp, out_dir):
        _fsync_dir(parent)
        _kill_point('exchanged')
        _remove_earlier(tmp)  # now the earlier conversion
        return
    aside = f'{out_dir}.old-{os.getpid()}-{secrets.token_hex(4)}'
    os.rename(out_dir, aside)
    _kill_point('aside')
    try:
        os.rename(tmp, out_dir)
    except BaseException:
        os.rename(aside, out_dir)
        raise
    _fsync_dir(parent)
    _kill_point('swapped')
    _remove_earlier(aside)


def _remove_earlier(path: str) -> None:
    """Removes the replaced conversion; a failure only warns (the new one
    is in place, and the next run removes what is left)."""
    try:
        shutil.rmtree(path)
    except OSError as e:
        warnings.warn(f'could not remove the replaced conversion at {path} '
                      f'({e}); the next conversion into the same folder '
                      'removes it')


def _self_check(folder: str, written: Sequence[str]) -> None:
    """Re-reads each split JSON in ``folder``; each image it names must
    exist with the recorded size (header only)."""
    import json
    for split in written:
        path = osp.join(folder, f'{split}.json')
        with open(path) as f:
            data = json.load(f)
        for img in data['images']:
            check_image_size(
                osp.join(folder, img['file_name']), img['width'],
                img['height'], f'{split}.json of the new conversion')


def _resize_image(src: str, dst: str, params: dict) -> None:
    import cv2
    img = cv2.imread(src, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ConversionError(f'{src}: cannot read image')
    pw, ph = params['padded_size']
    pad = [(0, ph - img.shape[0]), (0, pw - img.shape[1])]
    pad += [(0, 0)] * (img.ndim - 2)
    img = np.pad(img, pad)
    img = cv2.resize(img, params['size'], interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode('.png', img)
    if not ok:
        raise ConversionError(f'{dst}: could not encode resized image')
    _write_synced(dst, buf.tobytes())


def convert_isbi(root: str,
                 out_dir: str,
                 gt: str = 'mean',
                 num_val: Optional[int] = None,
                 num_calib: Optional[int] = None,
                 split_seed: int = 0,
                 resize: Optional[Tuple[int, int]] = None,
                 spacing: Union[float, Sequence[float]] = ISBI_SPACING_MM,
                 skip_bad: bool = False,
                 progress: bool = True) -> ConversionSummary:
    """Converts an ISBI 2015 release (see the module docstring).

    The output folder is replaced as a whole and atomically (see the module
    docstring); nothing is written before every option, the output folder
    and every input file have been checked.

    Args:
        root (str): The release's root folder.
        out_dir (str): Where the JSON files (and resized images) go: a new
            or empty folder, or an earlier conversion (replaced).
        gt (str): Training ground truth: ``'mean'`` of the annotators (as in
            the paper), ``'senior'`` or ``'junior'``.
        num_val (int, optional): Training images held out for validation
            (>= 1); None: 10 % of them, at least 1, at most 15.
        num_calib (int, optional): Training images held out for temperature
            scaling (>= 1); None: as ``num_val``.
        split_seed (int): Seed of the held-out selection.
        resize (tuple, optional): (W, H): write padded, resized PNG copies.
        spacing (float | tuple): mm per pixel of the original images, one
            value or (x, y).
        skip_bad (bool): Skip bad images with a warning instead of stopping.
        progress (bool): Print progress while resizing.

    Returns:
        ConversionSummary: counts per split, annotators, skipped images,
        notes on empty splits.

    Raises:
        ConversionError: an ``InputError`` naming the option, folder or file.
    """
    resize, spacing_xy = validate_options(resize, spacing, num_val,
                                          num_calib, split_seed)
    if not osp.isdir(root):
        raise ConversionError(f'{root}: not a folder')
    target = osp.realpath(out_dir)  # a symlinked OUT_DIR: swap its target
    if osp.isdir(osp.dirname(target)):
        try:
            for line in recover_output_folder(target):
                warnings.warn(f'{out_dir}: {line}')
        except OSError as e:
            raise ConversionError(f'{out_dir}: cannot repair what an '
                                  f'interrupted conversion left ({e})') from e
    _check_replaceable(target, root)
    annotator_dirs = find_annotator_dirs(root)
    annotators = list(annotator_dirs)
    if gt not in ('mean', *annotators):
        raise ConversionError(
            f'--gt {gt}: choose mean or one of the annotators found in '
            f'{root}: {", ".join(annotators)}')

    skipped: List[Tuple[str, str]] = []

    def bad(path: str, message: str) -> None:
        if not skip_bad:
            raise BadImageError(message)
        warnings.warn(f'skipping {path}: {message}')
        skipped.append((path, message))

    ann_files = {}
    bad_stems = set()  # reported already
    for a, d in annotator_dirs.items():
        ann_files[a], dups = _stem_files(d, ('.txt', ))
        for stem, paths in dups.items():
            if stem not in bad_stems:
                bad(paths[0], _duplicate_message(paths, 'annotation'))
            bad_stems.add(stem)

    # every annotator must cover the same images
    all_stems = sorted(set().union(*ann_files.values()) - bad_stems)
    for stem in all_stems:
        missing = [a for a in annotators if stem not in ann_files[a]]
        if missing:
            have = next(a for a in annotators if stem in ann_files[a])
            bad(ann_files[have][stem],
                f'{ann_files[have][stem]}: annotators disagree on which '
                f'files exist: no {stem}.txt in '
                f'{", ".join(annotator_dirs[a] for a in missing)}')

    records: Dict[str, List[dict]] = {s: [] for s in SPLITS}
    notes: Dict[str, str] = {}
    seen_images = set()
    for folder, split in ISBI_IMAGE_FOLDERS:
        img_dir = osp.join(root, 'RawImage', folder)
        if not osp.isdir(img_dir):
            if folder in ISBI_OPTIONAL_IMAGE_FOLDERS:
                notes[split] = f'RawImage/{folder} not found'
                continue
            raise ConversionError(f'{img_dir}: missing image folder')
        images, dups = _stem_files(img_dir, IMAGE_EXTENSIONS)
        for stem, paths in dups.items():
            seen_images.add(stem)
            bad(paths[0], _duplicate_message(paths, 'image'))
        for stem, img_path in images.items():
            if stem in seen_images:
                raise ConversionError(
                    f'{img_path}: image name {stem} appears in more than one '
                    'RawImage folder; annotation files could not tell them '
                    'apart')
            seen_images.add(stem)
            if stem in bad_stems:
                continue  # already reported
            if stem not in all_stems:
                bad(img_path, f'{img_path}: image has no annotation file in '
                    f'{", ".join(annotator_dirs.values())}')
                continue
            if any(stem not in ann_files[a] for a in annotators):
                continue  # already reported above
            try:
                size = read_image_size(img_path)
                anns = {
                    a: parse_annotation_file(ann_files[a][stem], size)
                    for a in annotators
                }
            except ConversionError as e:
                bad(img_path, str(e))
                continue
            records[split].append(
                dict(stem=stem, path=img_path, size=size, anns=anns))
    orphans = [
        stem for stem in all_stems if stem not in seen_images and all(
            stem in ann_files[a] for a in annotators)
    ]
    if notes and seen_images:
        # a copy without Test2Data: its annotations come after the last image
        last = max(seen_images)
        ignored = [s for s in orphans if s > last]
        orphans = [s for s in orphans if s <= last]
        if ignored:
            for split in notes:
                notes[split] += (f'; {len(ignored)} annotation file(s) '
                                 f'numbered after the last image ({last}) '
                                 'ignored')
    for stem in orphans:
        path = ann_files[annotators[0]][stem]
        bad(path, f'{path}: annotation has no image {stem}.* in '
            f'{osp.join(root, "RawImage")}/*')

    if not records['train']:
        raise ConversionError(f'{root}: no usable training images')
    held = hold_out_splits([r['stem'] for r in records['train']], num_val,
                           num_calib, split_seed)
    num_val, num_calib = len(held['val']), len(held['calib'])
    by_stem = {r['stem']: r for r in records['train']}
    for split in ('train', 'val', 'calib'):
        records[split] = [by_stem[s] for s in held[split]]

    payloads = _payloads(root, target, records, annotators, gt, spacing_xy,
                         split_seed, num_val, num_calib, resize,
                         skip=set(notes))
    written = list(payloads)

    # everything is checked: build the new conversion beside the old one
    parent = osp.dirname(target)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = f'{target}.tmp-{os.getpid()}-{secrets.token_hex(4)}'
        os.mkdir(tmp)
    except OSError as e:
        raise ConversionError(f'{out_dir}: cannot write the output folder '
                              f'({e})') from e
    try:
        if resize is not None:
            os.mkdir(osp.join(tmp, 'images'))
            total = sum(len(v) for v in records.values())
            done = 0
            for split in SPLITS:
                for rec in records[split]:
                    _resize_image(
                        rec['path'],
                        osp.join(tmp, 'images', f'{rec["stem"]}.png'),
                        padded_resize_params(*rec['size'], resize))
                    done += 1
                    _kill_point(f'image-{done}')
                    if progress and (done % 10 == 0 or done == total):
                        print(f'convert_isbi: resized {done}/{total} images',
                              flush=True)
            _fsync_dir(osp.join(tmp, 'images'))
        for split, payload in payloads.items():
            _write_synced(osp.join(tmp, f'{split}.json'),
                          dumps_json(payload, indent=1).encode())
        _kill_point('written')
        _self_check(tmp, written)
        summary = ConversionSummary(
            out_dir=out_dir,
            images_per_split={s: len(records[s])
                              for s in SPLITS},
            annotators=annotators,
            gt=gt,
            skipped=skipped,
            resize=resize,
            notes=notes,
            written=written)
        marker = dict(
            tool='tools/convert_isbi.py',
            source=osp.abspath(root),
            date_created=datetime.datetime.now().isoformat(timespec='seconds'),
            resize=list(resize) if resize else None,
            spacing_mm=spacing_xy.tolist(),
            ground_truth=gt,
            annotators=annotators,
            split_seed=split_seed,
            images_per_split=summary.images_per_split,
            splits_written=written,
            notes=notes,
            skipped=[dict(file=p, reason=r) for p, r in skipped])
        _write_synced(osp.join(tmp, CONVERSION_MARKER),
                      dumps_json(marker, indent=1).encode())
        _kill_point('checked')
        _check_replaceable(target, root)  # still ours to replace?
        _swap_in(tmp, target)
    except BaseException as e:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):  # e.g. disk full: the user's to fix
            raise ConversionError(
                f'{out_dir}: writing the conversion failed ({e}); the '
                'folder is unchanged') from e
        raise
    return summary


def _payloads(root, out_dir, records, annotators, gt, spacing_xy,
              split_seed, num_val, num_calib, resize, skip):
    """The COCO JSON of every split (``skip``: splits not written), with
    file names relative to ``out_dir``."""
    payloads = {}
    image_id = 0
    for split in SPLITS:
        if split in skip:
            continue
        images, annotations = [], []
        for rec in records[split]:
            image_id += 1
            w, h = rec['size']
            points = {a: ann.points for a, ann in rec['anns'].items()}
            image = dict(
                id=image_id,
                file_name=osp.relpath(osp.abspath(rec['path']), out_dir),
                width=w,
                height=h,
                split=split,
                original_file=osp.relpath(rec['path'], root),
                spacing=spacing_xy.tolist())
            if resize is not None:
                params = padded_resize_params(w, h, resize)
                sx, sy = params['scale']
                points = {
                    a: (p + 0.5) * np.array([sx, sy]) - 0.5
                    for a, p in points.items()
                }
                image.update(
                    file_name=osp.join('images', f'{rec["stem"]}.png'),
                    width=resize[0],
                    height=resize[1],
                    original_width=w,
                    original_height=h,
                    padded_size=list(params['padded_size']),
                    resize_scale=[sx, sy],
                    spacing=[spacing_xy[0] / sx, spacing_xy[1] / sy])
            # top-level labels: the first annotator's (the senior's in the
            # official release); every annotator's own under `labels`
            labels = next((ann.labels for ann in rec['anns'].values()
                           if ann.labels is not None), None)
            if labels is not None:
                image['labels'] = {
                    a: ann.labels
                    for a, ann in rec['anns'].items() if ann.labels
                }
                image.update(labels)
            images.append(image)
            gt_points = np.mean(list(points.values()), axis=0) \
                if gt == 'mean' else points[gt]
            ann = dict(
                id=image_id,
                image_id=image_id,
                category_id=1,
                keypoints=_keypoints_field(gt_points),
                num_keypoints=NUM_CEPH_LANDMARKS,
                bbox=[0, 0, image['width'], image['height']],
                area=image['width'] * image['height'],
                iscrowd=0)
            for a, p in points.items():
                ann[f'keypoints_{a}'] = _keypoints_field(p)
            annotations.append(ann)
        info = dict(
            description=f'ISBI 2015 cephalometric landmarks, split {split}',
            source=osp.abspath(root),
            date_created=datetime.datetime.now().isoformat(timespec='seconds'),
            ground_truth=gt,
            annotators=annotators,
            spacing_mm=spacing_xy.tolist(),
            split=split,
            split_seed=split_seed,
            num_val=num_val,
            num_calib=num_calib,
            coordinates='0-based pixels of file_name; pixel centres at '
            'integers',
        )
        if resize is not None:
            info['resize'] = dict(
                size=list(resize),
                method='pad right/bottom with 0 to the target aspect, then '
                'cv2.INTER_AREA resize',
                keypoint_mapping="x' = (x + 0.5) * sx - 0.5, "
                "y' = (y + 0.5) * sy - 0.5 with (sx, sy) = resize_scale",
                spacing_mapping="spacing' = spacing / (sx, sy)")
        payloads[split] = dict(
            info=info,
            images=images,
            annotations=annotations,
            categories=[
                dict(
                    id=1,
                    name='cephalometric',
                    supercategory='head',
                    keypoints=list(CEPH_LANDMARK_NAMES),
                    skeleton=[])
            ])
    return payloads
