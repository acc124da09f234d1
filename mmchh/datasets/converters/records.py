# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What every annotation reader produces, and pairing files by stem.

- :class:`Annotation`: one annotator's K points of one image (checked,
  with a visibility per point), what the COCO writer writes.
- :class:`Marks`: one annotator's marks on one image *as read* (a label
  may have no point or several), before the checks of
  :mod:`.landmarks` turn them into an :class:`Annotation`.
- :func:`split_image_name` (from :mod:`mmchh.datasets.image_reader`),
  :func:`stem_files`, :func:`duplicate_message`:
  files are paired by stem (``001.json`` with ``001.tif``), never by a path
  written inside a file.
"""
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..image_reader import split_image_name
from .embedded_image import PictureSignature

__all__ = [
    'Annotation', 'Marks', 'split_image_name', 'stem_files',
    'duplicate_message'
]


@dataclass
class Annotation:
    """One annotator's reading of one image.

    Note:
        - points: (K, 2) float64, image coordinates (x, y)
        - visible: (K, ) bool, or None when every point is given
    """
    points: np.ndarray
    labels: Optional[Dict[str, int]] = None  # ISBI's classification labels
    visible: Optional[np.ndarray] = None


@dataclass
class Marks:
    """One annotator's marks on one image, as the annotation file gives them.

    Attributes:
        file (str): The annotation file (named in reports).
        points (dict): keypoint name -> every ``(x, y, where)`` given for it
            (``where`` names the shape, line or annotation in ``file``).
        image_size (tuple, optional): (width, height) the file says its image
            has (labelme's ``imageWidth``/``imageHeight``), checked against
            the image paired by stem.
        image_path (str, optional): The image the file names (labelme's
            ``imagePath``); never used to find the image, only reported when
            it disagrees with the image paired by stem.
        rejected (bool): The file could not be used (already reported):
            every landmark of this annotator is invisible for the image.
        group (str, optional): The patient (or other unit) the image
            belongs to, when the annotation source names one (a CSV
            ``group`` column); images of one group stay in one split.
        embedded (PictureSignature, optional): The image the file embeds
            (labelme's ``imageData``), compared with the image paired by
            stem (:mod:`.embedded_image`).
    """
    file: str
    points: Dict[str, List[Tuple[float, float,
                                 str]]] = field(default_factory=dict)
    image_size: Optional[Tuple[int, int]] = None
    image_path: Optional[str] = None
    rejected: bool = False
    group: Optional[str] = None
    embedded: Optional[PictureSignature] = None

    def add(self, label: str, x: float, y: float, where: str) -> None:
        """Records one point given for ``label``."""
        self.points.setdefault(label, []).append((x, y, where))


def stem_files(
        folder: str, extensions: Sequence[str]
) -> Tuple[Dict[str, str], Dict[str, List[str]]]:
    """Stem -> file in ``folder`` for the given extensions (any case).

    Returns:
        tuple: (stem -> path of the stems found once, stem -> every path of
        the stems found more than once, e.g. ``002.bmp`` and ``002.png``).
    """
    found: Dict[str, List[str]] = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = split_image_name(name)
        if ext.lower() in extensions and not name.startswith('.'):
            found.setdefault(stem, []).append(osp.join(folder, name))
    once = {stem: paths[0] for stem, paths in found.items() if len(paths) == 1}
    dups = {stem: paths for stem, paths in found.items() if len(paths) > 1}
    return once, dups


def duplicate_message(paths: Sequence[str], what: str) -> str:
    """Says that ``paths`` are ``what`` files with the same name."""
    stem = split_image_name(osp.basename(paths[0]))[0]
    return (f'{" and ".join(paths)}: {len(paths)} {what} files with the same '
            f'name {stem}; which one is meant? Remove or rename all but one')
