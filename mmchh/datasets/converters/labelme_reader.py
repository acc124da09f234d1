# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Reading labelme JSON files (labelme 5.x), one folder per annotator.

A landmark is a shape with ``shape_type`` ``'point'`` whose ``label`` is a
keypoint name; its ``points`` hold one ``[x, y]``. ``group_id``, ``flags``
and ``description`` are not used. Each JSON is paired with its image by
file stem (``001.json`` with ``001.tif`` in the images folder): the
``imagePath`` inside is never trusted (renamed files keep an old one; it is
only reported when it names another file) and ``imageData`` is never read
(it may embed another file's image). ``imageWidth``/``imageHeight``, when
given, must match the paired image.

Coordinate convention: labelme stores continuous canvas coordinates. Its
canvas draws the image with pixel ``i`` covering ``[i, i + 1)`` and maps a
click back by ``pos / scale - offset`` (``labelme/widgets/canvas.py``,
``transformPos``), so a click on the centre of pixel ``i`` is stored as
``i + 0.5``, and points are clamped to ``[0, W - 1]`` while drawing;
labelme's own mask export (PIL ``ImageDraw``) instead puts pixel centres
at integers. We keep the coordinates exactly as given (no half-pixel
shift): the converted data's convention is pixel centres at integers, so
a labelme point clicked on a pixel's centre lands half a pixel right and
down of it (0.05 mm at 0.1 mm/pixel), the same for every image; points
written by mmchh and read back come back unchanged.

Faults (each reported to the :class:`~.validation.BadInputPolicy` with the
file and label): an unreadable file or one that is not labelme JSON (the
file is ignored), a label that is not a keypoint name, a shape that is not
a point, a point without two finite coordinates (the shape is ignored); two
files with one stem in a folder (both ignored).
"""
import json
import math
import os.path as osp
from typing import Dict, Sequence

from .errors import ConversionError
from .records import Marks, duplicate_message, stem_files
from .validation import BadInputPolicy

__all__ = ['LABELME_FILE_IGNORED', 'read_labelme_file', 'read_labelme_dirs']

#: What is done with an annotation file that cannot be used.
LABELME_FILE_IGNORED = ('file ignored: its landmarks are invisible for this '
                        'annotator')


def _point_of(shape: dict):
    """(x, y) of a point shape, or None when it is not one finite pair."""
    points = shape.get('points')
    if not isinstance(points, list) or len(points) != 1:
        return None
    pair = points[0]
    if not isinstance(pair, list) or len(pair) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v) for v in pair):
        return None
    return float(pair[0]), float(pair[1])


def _read_shape(marks: Marks, index: int, shape, keypoints: Sequence[str],
                policy: BadInputPolicy) -> None:
    """Adds one shape's point to ``marks``, or reports why it is not one."""
    where = f'{marks.file} (shape {index})'
    label = shape.get('label') if isinstance(shape, dict) else None
    if label not in keypoints:
        policy.report(marks.file,
                      f'{where}: unknown label {label!r} (not one of the '
                      f'keypoints {", ".join(keypoints)})',
                      label=str(label),
                      action='shape ignored')
        return
    shape_type = shape.get('shape_type', 'polygon')  # labelme's default
    if shape_type != 'point':
        policy.report(marks.file,
                      f'{where}: label {label!r} is a {shape_type} shape, '
                      'not a point',
                      label=label,
                      action='shape ignored')
        return
    point = _point_of(shape)
    if point is None:
        policy.report(marks.file,
                      f'{where}: label {label!r}: points must hold one '
                      f'[x, y] of finite numbers, got {shape.get("points")!r}',
                      label=label,
                      action='shape ignored')
        return
    marks.add(label, point[0], point[1], f'shape {index}')


def read_labelme_file(path: str, keypoints: Sequence[str],
                      policy: BadInputPolicy) -> Marks:
    """Reads one labelme JSON file (see the module docstring).

    Returns:
        Marks: the points by label (``rejected`` when the file cannot be
        used and ``policy`` skips it).

    Raises:
        BadImageError: for the first fault, unless ``policy`` skips.
    """
    marks = Marks(path)
    try:
        with open(path, 'rb') as f:
            data = json.loads(f.read().decode('utf-8-sig'))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        policy.report(path,
                      f'{path}: cannot read labelme JSON ({e})',
                      action=LABELME_FILE_IGNORED)
        return Marks(path, rejected=True)
    if not isinstance(data, dict) or not isinstance(data.get('shapes'), list):
        policy.report(path,
                      f'{path}: not a labelme file (no "shapes" list)',
                      action=LABELME_FILE_IGNORED)
        return Marks(path, rejected=True)
    for index, shape in enumerate(data['shapes']):
        _read_shape(marks, index, shape, keypoints, policy)
    width, height = data.get('imageWidth'), data.get('imageHeight')
    if all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0
            for v in (width, height)):
        marks.image_size = (width, height)
    if isinstance(data.get('imagePath'), str) and data['imagePath']:
        marks.image_path = data['imagePath']
    return marks


def read_labelme_dirs(dirs: Dict[str, str], keypoints: Sequence[str],
                      policy: BadInputPolicy) -> Dict[str, Dict[str, Marks]]:
    """Reads every annotator's folder of labelme JSON files.

    Args:
        dirs (dict): annotator name -> folder.
        keypoints (Sequence[str]): The keypoint names (labels).
        policy (BadInputPolicy): Where faults go.

    Returns:
        dict: image stem -> annotator -> :class:`~.records.Marks`.

    Raises:
        ConversionError: a folder that does not exist.
        BadImageError: for the first fault, unless ``policy`` skips.
    """
    found: Dict[str, Dict[str, Marks]] = {}
    for annotator, folder in dirs.items():
        if not osp.isdir(folder):
            raise ConversionError(f'--labelme {annotator}={folder}: not a '
                                  'folder')
        files, dups = stem_files(folder, ('.json', ))
        for stem, paths in dups.items():
            policy.report(paths[0],
                          duplicate_message(paths, 'labelme'),
                          action=LABELME_FILE_IGNORED)
            found.setdefault(stem, {})[annotator] = Marks(' and '.join(paths),
                                                          rejected=True)
        for stem, path in files.items():
            found.setdefault(stem, {})[annotator] = read_labelme_file(
                path, keypoints, policy)
    return found
