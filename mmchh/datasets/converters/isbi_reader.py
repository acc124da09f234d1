# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Reading the ISBI 2015 cephalometric release: layout, annotations, images.

Input layout (as users download it; see docs/isbi.md)::

    ROOT/RawImage/{TrainingData,Test1Data,Test2Data}/NNN.bmp
    ROOT/AnnotationsByMD/400_senior/NNN.txt    (or ROOT/400_senior/NNN.txt)
    ROOT/AnnotationsByMD/400_junior/NNN.txt    (or ROOT/400_junior/NNN.txt)

Each txt holds 19 lines ``x,y`` (0-based integer pixels) and then, when
present, 8 classification label lines (ANB, SNB, SNA, ODI, APDI, FHI, FMA,
MW). CRLF endings and trailing spaces are accepted. ``Test2Data`` may be
missing (a partial copy): the test2 split is then empty and noted;
annotation files numbered after the last image found are taken to be
Test2's and ignored (counted in the note). Every bad file goes to the
:class:`~.validation.BadInputPolicy`.
"""
import math
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from ..ceph_meta import (CEPH_LABEL_NAMES, CEPH_LANDMARK_NAMES,
                         ISBI_ANNOTATOR_FOLDERS, ISBI_IMAGE_FOLDERS,
                         ISBI_OPTIONAL_IMAGE_FOLDERS, NUM_CEPH_LANDMARKS)
from ..image_reader import ImageLoadError, check_exif_orientation
from .duplicates import image_hashes
from .errors import ConversionError
from .records import Annotation, duplicate_message, stem_files
from .splits import SPLITS
from .validation import BadInputPolicy

__all__ = [
    'IMAGE_EXTENSIONS', 'Annotation', 'AnnotationIndex',
    'parse_annotation_file', 'read_image_size', 'find_annotator_dirs',
    'read_annotation_index', 'read_isbi_release'
]

IMAGE_EXTENSIONS = ('.bmp', '.png', '.jpg', '.jpeg', '.tif', '.tiff')


@dataclass
class AnnotationIndex:
    """The annotation files of a release.

    Attributes:
        dirs (dict): annotator name -> folder.
        files (dict): annotator name -> {stem -> txt path}.
        bad_stems (set): stems already reported bad (duplicate files).
        stems (list): every other stem some annotator has, sorted.
    """
    dirs: Dict[str, str]
    files: Dict[str, Dict[str, str]]
    bad_stems: Set[str]
    stems: List[str]

    @property
    def annotators(self) -> List[str]:
        return list(self.dirs)

    def complete(self, stem: str) -> bool:
        """Whether every annotator has ``stem``."""
        return all(stem in self.files[a] for a in self.dirs)


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
    img = _decode(path)
    return img.shape[1], img.shape[0]


def _decode(path: str) -> np.ndarray:
    """The pixels of an image, as :func:`read_image_size` checks them."""
    import cv2
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ConversionError(f'{path}: cannot read image (missing, corrupt '
                              'or not an image)')
    check_exif_orientation(path)
    return img


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
        first = ISBI_ANNOTATOR_FOLDERS[0][0]
        raise ConversionError(
            f'{root}: no annotation folders; expected AnnotationsByMD/'
            f'{first} (or {first} directly under the root)')
    return found


def read_annotation_index(dirs: Dict[str, str],
                          policy: BadInputPolicy) -> AnnotationIndex:
    """Finds every annotator's txt files in ``dirs`` (from
    :func:`find_annotator_dirs`); duplicates and files only some
    annotators have are reported to ``policy``."""
    files = {}
    bad_stems = set()  # reported already
    for a, d in dirs.items():
        files[a], dups = stem_files(d, ('.txt', ))
        for stem, paths in dups.items():
            if stem not in bad_stems:
                policy.report(paths[0], duplicate_message(paths, 'annotation'))
            bad_stems.add(stem)
    index = AnnotationIndex(dirs, files, bad_stems,
                            sorted(set().union(*files.values()) - bad_stems))
    # every annotator must cover the same images
    for stem in index.stems:
        missing = [a for a in index.annotators if stem not in files[a]]
        if missing:
            have = next(a for a in index.annotators if stem in files[a])
            policy.report(
                files[have][stem],
                f'{files[have][stem]}: annotators disagree on which '
                f'files exist: no {stem}.txt in '
                f'{", ".join(dirs[a] for a in missing)}')
    return index


def _read_record(stem: str, img_path: str,
                 index: AnnotationIndex) -> dict:
    """One image's record: its size, its pixels' hashes and every
    annotator's reading."""
    pixels = _decode(img_path)
    size = pixels.shape[1], pixels.shape[0]
    anns = {
        a: parse_annotation_file(index.files[a][stem], size)
        for a in index.annotators
    }
    return dict(stem=stem, path=img_path, size=size, anns=anns,
                hashes=image_hashes(pixels))


def _read_image_folder(img_dir: str, index: AnnotationIndex,
                       seen_images: Set[str],
                       policy: BadInputPolicy) -> List[dict]:
    """The records of one ``RawImage`` folder (adds its stems to
    ``seen_images``)."""
    records = []
    images, dups = stem_files(img_dir, IMAGE_EXTENSIONS)
    for stem, paths in dups.items():
        seen_images.add(stem)
        policy.report(paths[0], duplicate_message(paths, 'image'))
    for stem, img_path in images.items():
        if stem in seen_images:
            raise ConversionError(
                f'{img_path}: image name {stem} appears in more than one '
                'RawImage folder; annotation files could not tell them '
                'apart')
        seen_images.add(stem)
        if stem in index.bad_stems:
            continue  # already reported
        if stem not in index.stems:
            policy.report(
                img_path, f'{img_path}: image has no annotation file in '
                f'{", ".join(index.dirs.values())}')
            continue
        if not index.complete(stem):
            continue  # already reported by read_annotation_index
        try:
            records.append(_read_record(stem, img_path, index))
        except (ConversionError, ImageLoadError) as e:
            policy.report(img_path, str(e))
    return records


def _report_orphans(root: str, index: AnnotationIndex, seen_images: Set[str],
                    notes: Dict[str, str], policy: BadInputPolicy) -> None:
    """Reports annotations without an image; without Test2Data, those
    numbered after the last image are Test2's: noted, not reported."""
    orphans = [
        stem for stem in index.stems
        if stem not in seen_images and index.complete(stem)
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
        path = index.files[index.annotators[0]][stem]
        policy.report(
            path, f'{path}: annotation has no image {stem}.* in '
            f'{osp.join(root, "RawImage")}/*')


def read_isbi_release(root: str, index: AnnotationIndex,
                      policy: BadInputPolicy
                      ) -> Tuple[Dict[str, List[dict]], Dict[str, str]]:
    """Reads every image of the release with its annotations.

    Args:
        root (str): The release's root folder.
        index (AnnotationIndex): From :func:`read_annotation_index`.
        policy (BadInputPolicy): Where bad images go.

    Returns:
        tuple: (split -> records, each a dict of ``stem``, ``path``,
        ``size`` (w, h) and ``anns`` (annotator -> :class:`Annotation`);
        split -> why it is empty, for a missing optional folder).

    Raises:
        ConversionError: a missing required folder, or one image name in
            two folders.
    """
    records: Dict[str, List[dict]] = {s: [] for s in SPLITS}
    notes: Dict[str, str] = {}
    seen_images: Set[str] = set()
    for folder, split in ISBI_IMAGE_FOLDERS:
        img_dir = osp.join(root, 'RawImage', folder)
        if not osp.isdir(img_dir):
            if folder in ISBI_OPTIONAL_IMAGE_FOLDERS:
                notes[split] = f'RawImage/{folder} not found'
                continue
            raise ConversionError(f'{img_dir}: missing image folder')
        records[split] += _read_image_folder(img_dir, index, seen_images,
                                             policy)
    _report_orphans(root, index, seen_images, notes, policy)
    return records, notes
