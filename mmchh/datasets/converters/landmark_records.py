# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Reading step of :func:`~.landmarks.convert_landmarks`: the annotation
source's marks, paired with the images by file stem, resolved per image
and annotator into points (every problem reported through the
:class:`~.validation.BadInputPolicy`), with each image's spacing."""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..image_reader import (ALL_IMAGE_EXTENSIONS, ImageLoadError, LoadedImage,
                            read_image)
from .coco_reader import read_coco_marks
from .csv_reader import read_csv_marks
from .duplicates import image_hashes
from .embedded_image import picture_mismatch, picture_signature
from .labelme_reader import read_labelme_dirs
from .landmark_options import check_annotator_name
from .records import (Annotation, Marks, duplicate_message, split_image_name,
                      stem_files)
from .validation import BadInputPolicy

__all__ = [
    'PROGRESS_EVERY', 'annotators_of', 'pair_images', 'read_marks',
    'read_records'
]

_INVISIBLE = 'invisible for this annotator'
_ALL_INVISIBLE = 'all its landmarks invisible for this annotator'
#: Images between two progress lines.
PROGRESS_EVERY = 25


def read_marks(labelme, csv, coco, keypoints,
               policy) -> Dict[str, Dict[str, Marks]]:
    if labelme:
        return read_labelme_dirs(labelme, keypoints, policy)
    if csv:
        return read_csv_marks(csv, keypoints, policy)
    return read_coco_marks(coco, keypoints, policy)


def annotators_of(labelme, marks: Dict[str, Dict[str, Marks]]) -> List[str]:
    if labelme:
        return list(labelme)
    names = sorted({a for by_ann in marks.values() for a in by_ann})
    for name in names:
        check_annotator_name(name, 'annotator column/field')
    return names


def pair_images(images: str, marks: Dict[str, Dict[str, Marks]], source: str,
                policy: BadInputPolicy) -> Dict[str, str]:
    """stem -> image file for the stems with both an image and marks;
    everything else is reported."""
    files, dups = stem_files(images, ALL_IMAGE_EXTENSIONS)
    for stem, paths in dups.items():
        policy.report(paths[0], duplicate_message(paths, 'image'))
    paired = {}
    for stem in sorted(set(files) | set(marks)):
        if stem in dups:
            continue
        if stem not in marks:
            policy.report(
                files[stem], f'{files[stem]}: image has no '
                f'annotation in {source}')
        elif stem not in files:
            for by in marks[stem].values():
                policy.report(by.file, f'{by.file}: annotation has no image '
                              f'{stem}.* in {images}',
                              action='annotation ignored')
        else:
            paired[stem] = files[stem]
    return paired


def _invisible(k: int) -> Annotation:
    return Annotation(np.zeros((k, 2)), visible=np.zeros(k, bool))


def _made_for_another_image(marks: Marks, image: str,
                            loaded: LoadedImage) -> Optional[str]:
    """Why ``marks`` was not made for ``image``: the size it gives, or the
    image it embeds (:mod:`.embedded_image`); None when it fits."""
    size = loaded.size
    if marks.image_size is not None and tuple(marks.image_size) != size:
        return (f'{marks.file}: made for a {marks.image_size[0]}x'
                f'{marks.image_size[1]} image but {image} is '
                f'{size[0]}x{size[1]}')
    if marks.embedded is not None:
        why = picture_mismatch(marks.embedded,
                               picture_signature(loaded.array))
        if why is not None:
            return (f'{marks.file}: its embedded image (imageData) is not '
                    f'{image}: {why}')
    return None


def _resolve(marks: Optional[Marks], annotator: str, image: str,
             loaded: LoadedImage, keypoints: Sequence[str],
             policy: BadInputPolicy) -> Annotation:
    """One annotator's points on one image; every problem reported (the
    point then invisible for this annotator)."""
    k = len(keypoints)
    size = loaded.size
    if marks is None:
        policy.report(image, f'{image}: no annotation from annotator '
                      f'{annotator}',
                      action=_ALL_INVISIBLE)
        return _invisible(k)
    if marks.rejected:
        return _invisible(k)  # reported by the reader
    other = _made_for_another_image(marks, image, loaded)
    if other is not None:
        policy.report(marks.file, other,
                      action=f'file ignored: {_ALL_INVISIBLE}')
        return _invisible(k)
    ann = _invisible(k)
    for i, name in enumerate(keypoints):
        given = marks.points.get(name, [])
        if len(given) != 1:
            problem = (f'landmark {name!r} missing' if not given else
                       f'landmark {name!r} labelled {len(given)} times (' +
                       '; '.join(f'({x:g}, {y:g}) at {w}'
                                 for x, y, w in given) + ')')
            policy.report(marks.file,
                          f'{marks.file}: {problem}',
                          label=name,
                          action=_INVISIBLE)
            continue
        x, y, where = given[0]
        # pixel centres at integers: the image spans [-0.5, size - 0.5]
        if not (-0.5 <= x <= size[0] - 0.5 and -0.5 <= y <= size[1] - 0.5):
            policy.report(marks.file, f'{marks.file} ({where}): landmark '
                          f'{name!r} at '
                          f'({x:g}, {y:g}) is outside the {size[0]}x'
                          f'{size[1]} image {image}',
                          label=name,
                          action=_INVISIBLE)
            continue
        ann.points[i] = x, y
        ann.visible[i] = True
    return ann


def _check_ground_truth(anns: Dict[str, Annotation], gt: str, image: str,
                        keypoints: Sequence[str],
                        policy: BadInputPolicy) -> bool:
    """Reports the landmarks invisible in the ground truth; False when the
    image has no usable landmark at all (it is reported and skipped)."""
    any_visible = np.any([a.visible for a in anns.values()], axis=0)
    if not any_visible.any():
        policy.report(image, f'{image}: no usable landmark from any '
                      'annotator')
        return False
    truth = any_visible if gt == 'mean' else anns[gt].visible
    for name in np.asarray(keypoints)[~truth]:
        who = 'any annotator' if gt == 'mean' else f'annotator {gt} (--gt)'
        policy.report(image, f'{image}: landmark {name!r} not marked by '
                      f'{who}',
                      label=str(name),
                      action='invisible in the ground truth')
    return True


def _stale_path(marks: Marks, image: str) -> Optional[dict]:
    """A note when ``marks`` names another image than ``image``."""
    if marks.image_path is None:
        return None
    named = osp.basename(marks.image_path.replace('\\', '/'))
    if named == osp.basename(image):
        return None
    return dict(file=marks.file, imagePath=marks.image_path, image=image)


def _spacing(loaded: LoadedImage, fallback: Optional[np.ndarray]):
    """(spacing or None, its source): the file's header, then the option."""
    if loaded.spacing is not None:
        return list(loaded.spacing), loaded.spacing_source
    if fallback is not None:
        return fallback.tolist(), '--spacing'
    return None, None


def read_records(paired: Dict[str, str], marks, annotators, keypoints, gt,
                 spacing_xy, policy, progress) -> Tuple[List[dict], list]:
    """Reads each paired image and resolves its annotators' points."""
    records, stale = [], []
    for done, (stem, path) in enumerate(sorted(paired.items()), 1):
        if progress and (done % PROGRESS_EVERY == 0 or done == len(paired)):
            print(f'convert_landmarks: read {done}/{len(paired)} images',
                  flush=True)
        try:
            loaded = read_image(path)
        except ImageLoadError as e:
            policy.report(path, str(e))
            continue
        anns = {
            a:
            _resolve(marks[stem].get(a), a, path, loaded, keypoints,
                     policy)
            for a in annotators
        }
        stale += [
            n for n in (_stale_path(m, path) for m in marks[stem].values())
            if n
        ]
        if not _check_ground_truth(anns, gt, path, keypoints, policy):
            continue
        spacing, source = _spacing(loaded, spacing_xy)
        ext = split_image_name(path)[1].lower()
        records.append(
            dict(stem=stem,
                 path=path,
                 size=loaded.size,
                 anns=anns,
                 spacing=spacing,
                 spacing_source=source,
                 file_name=osp.join(
                     'images', stem + (ext if loaded.copy_as_is else '.png')),
                 copy_as_is=loaded.copy_as_is,
                 hashes=image_hashes(loaded.array),
                 groups=sorted({
                     m.group
                     for m in marks[stem].values() if m.group is not None
                 })))
    return records, stale
