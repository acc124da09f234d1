# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Converts the ISBI 2015 cephalometric release to COCO-keypoint JSON.

Input layout (as users download it; see docs/isbi.md)::

    ROOT/RawImage/{TrainingData,Test1Data,Test2Data}/NNN.bmp
    ROOT/AnnotationsByMD/400_senior/NNN.txt    (or ROOT/400_senior/NNN.txt)
    ROOT/AnnotationsByMD/400_junior/NNN.txt    (or ROOT/400_junior/NNN.txt)

Each txt holds 19 lines ``x,y`` (0-based integer pixels) and then, when
present, 8 classification label lines (ANB, SNB, SNA, ODI, APDI, FHI, FMA,
MW). CRLF endings and trailing spaces are accepted.

Output: ``OUT_DIR/{train,val,calib,test1,test2}.json``. ``val`` (model
selection) and ``calib`` (temperature scaling) are held out of the training
images by a fixed seed, so temperatures are never fitted on a test set.
Every image file name is relative to ``OUT_DIR`` (use ``data_root=OUT_DIR``
and an empty image prefix). With ``resize``, images are padded right/bottom
to the target aspect, resized, and written to ``OUT_DIR/images/``; keypoints
follow with ``x' = (x + 0.5) * sx - 0.5`` (pixel centres map to where their
pixel went) and the spacing becomes ``spacing / s`` per axis.

Nothing is silently dropped: bad input stops the conversion with an error
naming the file (and line), unless ``skip_bad`` is set, in which case the
image is skipped with a warning and counted in the summary. JSON files and
images are written to temporary names first and renamed into place, so an
interrupted run never leaves a half-written output.
"""
import datetime
import json
import math
import os
import os.path as osp
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .ceph_meta import (CEPH_LABEL_NAMES, CEPH_LANDMARK_NAMES,
                        ISBI_ANNOTATOR_FOLDERS, ISBI_IMAGE_FOLDERS,
                        ISBI_SPACING_MM, NUM_CEPH_LANDMARKS)

SPLITS = ('train', 'val', 'calib', 'test1', 'test2')
IMAGE_EXTENSIONS = ('.bmp', '.png', '.jpg', '.jpeg', '.tif', '.tiff')


class ConversionError(ValueError):
    """Bad input found while converting; the message names the file."""


@dataclass
class Annotation:
    """One annotator's reading of one image."""
    points: np.ndarray  # (19, 2) float64, 0-based pixels
    labels: Optional[Dict[str, int]]  # the 8 classification labels, if any


@dataclass
class ConversionSummary:
    """What a conversion wrote (and skipped)."""
    out_dir: str
    images_per_split: Dict[str, int]
    annotators: List[str]
    gt: str
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    resize: Optional[Tuple[int, int]] = None

    def format(self) -> str:
        lines = [f'convert_isbi: wrote {self.out_dir}']
        for split in SPLITS:
            lines.append(f'  {split:6s} {self.images_per_split[split]:4d} '
                         'images')
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
    """(width, height) of an image, checking that it decodes."""
    import cv2
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ConversionError(f'{path}: cannot read image (missing, corrupt '
                              'or not an image)')
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


def _stem_files(folder: str, extensions: Sequence[str]) -> Dict[str, str]:
    out = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = osp.splitext(name)
        if ext.lower() in extensions and not name.startswith('.'):
            out[stem] = osp.join(folder, name)
    return out


def default_hold_out(num_train: int) -> int:
    """Images held out per split (val, calib) when not given: 10 % of the
    training images, at least 1 and at most 15 (15 of ISBI's 150, the
    paper-sized split)."""
    return int(min(15, max(1, round(0.1 * num_train))))


def hold_out_splits(stems: Sequence[str], num_val: Optional[int],
                    num_calib: Optional[int],
                    seed: int) -> Dict[str, List[str]]:
    """Splits training stems into train / val / calib by a fixed seed.

    ``None`` for a count means :func:`default_hold_out`.
    """
    if num_val is None:
        num_val = default_hold_out(len(stems))
    if num_calib is None:
        num_calib = default_hold_out(len(stems))
    if num_val < 0 or num_calib < 0:
        raise ValueError('num_val and num_calib must be >= 0')
    if num_val + num_calib >= len(stems):
        raise ValueError(
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


def _write_atomic_bytes(path: str, data: bytes) -> None:
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)


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
    _write_atomic_bytes(dst, buf.tobytes())


def _keypoints_field(points: np.ndarray) -> List[float]:
    kpts = np.concatenate([points, np.full((len(points), 1), 2.0)], axis=1)
    return [round(float(v), 6) for v in kpts.reshape(-1)]


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

    Args:
        root (str): The release's root folder.
        out_dir (str): Where the JSON files (and resized images) go.
        gt (str): Training ground truth: ``'mean'`` of the annotators (as in
            the paper), ``'senior'`` or ``'junior'``.
        num_val (int, optional): Training images held out for validation;
            None: 10 % of them, at least 1, at most 15.
        num_calib (int, optional): Training images held out for temperature
            scaling; None: as ``num_val``.
        split_seed (int): Seed of the held-out selection.
        resize (tuple, optional): (W, H): write padded, resized PNG copies.
        spacing (float | tuple): mm per pixel of the original images, one
            value or (x, y).
        skip_bad (bool): Skip bad images with a warning instead of stopping.
        progress (bool): Print progress while resizing.

    Returns:
        ConversionSummary: counts per split, annotators, skipped images.
    """
    if not osp.isdir(root):
        raise ConversionError(f'{root}: not a folder')
    spacing_xy = np.broadcast_to(np.asarray(spacing, np.float64),
                                 (2, )).copy() if np.ndim(spacing) <= 1 and (
                                     np.size(spacing) in (1, 2)) else None
    if spacing_xy is None or not (np.isfinite(spacing_xy).all()
                                  and (spacing_xy > 0).all()):
        raise ValueError('spacing must be one or two positive mm/pixel '
                         f'values; got {spacing}')
    annotator_dirs = find_annotator_dirs(root)
    annotators = list(annotator_dirs)
    if gt not in ('mean', *annotators):
        raise ConversionError(
            f'--gt {gt}: choose mean or one of the annotators found in '
            f'{root}: {", ".join(annotators)}')

    ann_files = {a: _stem_files(d, ('.txt', )) for a, d in
                 annotator_dirs.items()}
    skipped: List[Tuple[str, str]] = []

    def bad(path: str, message: str) -> None:
        if not skip_bad:
            raise ConversionError(message)
        warnings.warn(f'skipping {path}: {message}')
        skipped.append((path, message))

    # every annotator must cover the same images
    all_stems = sorted(set().union(*ann_files.values()))
    for stem in all_stems:
        missing = [a for a in annotators if stem not in ann_files[a]]
        if missing:
            have = next(a for a in annotators if stem in ann_files[a])
            bad(ann_files[have][stem],
                f'{ann_files[have][stem]}: annotators disagree on which '
                f'files exist: no {stem}.txt in '
                f'{", ".join(annotator_dirs[a] for a in missing)}')

    records: Dict[str, List[dict]] = {s: [] for s in SPLITS}
    seen_images = set()
    for folder, split in ISBI_IMAGE_FOLDERS:
        img_dir = osp.join(root, 'RawImage', folder)
        if not osp.isdir(img_dir):
            raise ConversionError(f'{img_dir}: missing image folder')
        for stem, img_path in _stem_files(img_dir, IMAGE_EXTENSIONS).items():
            if stem in seen_images:
                raise ConversionError(
                    f'{img_path}: image name {stem} appears in more than one '
                    'RawImage folder; annotation files could not tell them '
                    'apart')
            seen_images.add(stem)
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
    for stem in all_stems:
        if stem not in seen_images and all(stem in ann_files[a]
                                           for a in annotators):
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

    os.makedirs(out_dir, exist_ok=True)
    if resize is not None:
        os.makedirs(osp.join(out_dir, 'images'), exist_ok=True)
    total = sum(len(v) for v in records.values())
    done = 0
    payloads = {}
    image_id = 0
    for split in SPLITS:
        images, annotations = [], []
        for rec in records[split]:
            image_id += 1
            w, h = rec['size']
            points = {a: ann.points for a, ann in rec['anns'].items()}
            file_name = osp.relpath(osp.abspath(rec['path']),
                                    osp.abspath(out_dir))
            img_spacing = spacing_xy.tolist()
            image = dict(
                id=image_id,
                file_name=file_name,
                width=w,
                height=h,
                split=split,
                original_file=osp.relpath(rec['path'], root))
            if resize is not None:
                params = padded_resize_params(w, h, resize)
                sx, sy = params['scale']
                file_name = osp.join('images', f'{rec["stem"]}.png')
                _resize_image(rec['path'], osp.join(out_dir, file_name),
                              params)
                points = {
                    a: (p + 0.5) * np.array([sx, sy]) - 0.5
                    for a, p in points.items()
                }
                img_spacing = [spacing_xy[0] / sx, spacing_xy[1] / sy]
                image.update(
                    file_name=file_name,
                    width=resize[0],
                    height=resize[1],
                    original_width=w,
                    original_height=h,
                    padded_size=list(params['padded_size']),
                    resize_scale=[sx, sy])
                done += 1
                if progress and (done % 10 == 0 or done == total):
                    print(f'convert_isbi: resized {done}/{total} images',
                          flush=True)
            image['spacing'] = img_spacing
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

    # all JSON files are complete on disk before any of them is renamed in
    tmp_paths = {}
    for split, payload in payloads.items():
        path = osp.join(out_dir, f'{split}.json')
        tmp_paths[split] = f'{path}.tmp-{os.getpid()}'
        with open(tmp_paths[split], 'w') as f:
            json.dump(payload, f, indent=1)
    for split, tmp in tmp_paths.items():
        os.replace(tmp, osp.join(out_dir, f'{split}.json'))

    return ConversionSummary(
        out_dir=out_dir,
        images_per_split={s: len(records[s])
                          for s in SPLITS},
        annotators=annotators,
        gt=gt,
        skipped=skipped,
        resize=tuple(resize) if resize else None)
