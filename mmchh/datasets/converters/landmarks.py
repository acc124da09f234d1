# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Converts any folder of annotated images to the COCO-keypoint layout.

Input: a folder of images (PNG, JPEG, BMP, TIFF 8/16-bit, DICOM, MetaImage,
NRRD, NIfTI; :mod:`.image_reader`) and their landmarks from one source:
labelme JSON, one folder per annotator (:mod:`.labelme_reader`), a
long-format CSV (:mod:`.csv_reader`) or an existing COCO file
(:mod:`.coco_reader`). Annotations are paired with images by file stem.
Coordinates are kept exactly as each format gives them (floats, no
rounding, no shift; each reader states its convention).

Output (``OUT_DIR``), the layout ``tools/convert_isbi.py`` writes:

- ``{train,val,calib,test}.json``: COCO keypoints; per image ``spacing``
  (x, y mm/pixel, ``null`` when unknown) with its ``spacing_source``, and
  ``original_file`` (relative to the images folder); per annotation the
  ground truth ``keypoints`` and every annotator's own points as
  ``keypoints_<ANNOTATOR>``. An invisible point is ``0, 0, 0``.
- ``images/``: every image readable by the training pipeline: 8-bit PNG,
  JPEG and BMP copied byte for byte, everything else written as PNG
  (16-bit kept 16-bit); with ``resize``, padded and resized PNGs (as in
  :mod:`.resize`).
- ``metainfo.py``: MMPose dataset metainfo (keypoint names and colours, no
  skeleton, nothing swaps under flipping, uniform sigmas) for a config's
  ``metainfo=dict(from_file=...)``.
- ``conversion_report.json``: every fault with its file, label and what
  was done; the images without spacing; annotation files whose
  ``imagePath`` names another image.
- ``conversion.json``: written last, marks a complete conversion.

Spacing: the image file's header (DICOM, MetaImage, NRRD, NIfTI), else
``spacing``, else unknown: written as ``null`` and listed in the report
(never invented).

Ground truth (``gt``): ``'mean'`` of the annotators who marked each
landmark, or one annotator's points. A landmark one annotator did not
(usably) mark keeps the image: that annotator's point is invisible (v = 0)
in ``keypoints_<ANNOTATOR>`` and the mean comes from the others; a
landmark no annotator marked (or, with ``gt`` an annotator, that annotator
did not) is invisible in the ground truth, and reported. An image with no
usable landmark at all is skipped.

Faults: a keypoint labelled twice by one annotator (its point invisible
for that annotator: which one is meant is unknown), missing, an unknown
label, a shape that is not a point, a point outside the image, an
annotation file whose image size differs from the image's, an image
without annotations and an annotation without image, two files with one
stem, an unreadable image. By default the first stops the conversion with
an error naming the file and label; with ``skip_bad`` each is recorded
with what was done, and printed in the summary. Nothing is dropped
silently.

Duplicates and groups (:mod:`.split_grouping`): every image's decoded
pixels are hashed (``pixel_sha256``, ``phash`` in its record); exact and
near duplicates are found and, by ``duplicates``, kept in one split
(``together``), reduced to their first image (``drop``) or a fault
(``error``); images of one patient ``group`` (``groups`` file, or the
CSV's ``group`` column) land in one split. Every pair is named in the
report and the summary.

Splits: ``test_fraction`` of the images are held out as ``test`` by the
seed, then ``num_val`` and ``num_calib`` of the rest (as
:func:`~.splits.hold_out_splits`); a held-out selection moves whole units
(a group, a duplicate cluster), so it holds at least its count.
``test_fraction`` 1 converts every image, one included, into ``test.json``
alone (a test-only folder, e.g. a reviewed batch to score; the marker's
``test_only`` and ``notes`` say so). A written split below its minimum
(:mod:`.split_sizes`) is warned about in the summary and the report. The
output folder is built aside, checked and swapped in atomically
(:mod:`.atomic_output`).
"""
import os
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmchh.utils.io import dumps_json

from ..image_reader import COPY_AS_IS_EXTENSIONS, read_image
from .atomic_output import (build_aside_and_swap, check_replaceable, fsync_dir,
                            kill_point, prepare_output, write_synced)
from .coco_writer import (CONVERSION_MARKER, CocoLayout, ConversionPlan,
                          check_written_conversion, coco_payloads,
                          conversion_marker)
from .errors import ConversionError
from .landmark_options import (AnnotationSources, SplitOptions,
                               check_landmark_options)
from .landmark_records import (PROGRESS_EVERY, annotators_of, pair_images,
                               read_marks, read_records)
from .landmark_report import (METAINFO_FILE, REPORT_FILE, TOOL,
                              LandmarkConversionSummary, conversion_report,
                              metainfo_source)
from .resize import padded_resize_params, resize_padded, write_png
from .split_grouping import group_records
from .split_sizes import small_splits
from .splits import LANDMARK_SPLITS, hold_out_splits, hold_out_test
from .validation import BadInputPolicy

__all__ = [
    'METAINFO_FILE', 'REPORT_FILE', 'LandmarkConversionSummary',
    'metainfo_source', 'convert_landmarks'
]

#: Why a test-only conversion writes no train/val/calib split.
TEST_ONLY_NOTE = 'test-only conversion: --test-fraction 1'

_OWN_FILES = tuple(f'{s}.json'
                   for s in LANDMARK_SPLITS) + (METAINFO_FILE, REPORT_FILE)

# -- splitting and writing ---------------------------------------------------


def _split(records: List[dict], units: List[List[str]],
           options: SplitOptions):
    """split -> records, and split -> why it is not written; ``units``
    (stems sharing a split) are moved whole. ``test_fraction`` 1: every
    image in ``test``, no other split (a test-only conversion)."""
    by_stem = {r['stem']: r for r in records}
    test = hold_out_test(sorted(by_stem), options.test_fraction,
                         options.split_seed, units)
    if options.test_fraction == 1:
        held = dict(train=[], val=[], calib=[], test=test['test'])
        notes = {s: TEST_ONLY_NOTE for s in ('train', 'val', 'calib')}
    else:
        rest = set(test['rest'])
        try:
            held = hold_out_splits(test['rest'], options.num_val,
                                   options.num_calib, options.split_seed,
                                   [u for u in units if u[0] in rest])
        except ConversionError as e:
            raise ConversionError(
                f'{e}, or give --test-fraction 1 to convert every image '
                'as a test-only folder') from None
        held['test'] = test['test']
        notes = {} if test['test'] else dict(test='--test-fraction 0')
    return {s: [by_stem[x] for x in held[s]] for s in LANDMARK_SPLITS}, notes


def _write_image(rec: dict, dst: str, resize) -> None:
    if resize is not None:
        loaded = read_image(rec['path'])
        write_png(
            dst,
            resize_padded(loaded.array,
                          padded_resize_params(*rec['size'], resize)),
            'resized image')
    elif rec['copy_as_is']:
        with open(rec['path'], 'rb') as f:
            write_synced(dst, f.read())
    else:
        write_png(dst, read_image(rec['path']).array)


def _write_images(tmp: str, records: Dict[str, List[dict]], resize,
                  progress: bool) -> None:
    os.mkdir(osp.join(tmp, 'images'))
    every = [r for s in LANDMARK_SPLITS for r in records[s]]
    for done, rec in enumerate(every, 1):
        name = osp.join('images', f'{rec["stem"]}.png') \
            if resize is not None else rec['file_name']
        _write_image(rec, osp.join(tmp, name), resize)
        kill_point(f'image-{done}')
        if progress and (done % PROGRESS_EVERY == 0 or done == len(every)):
            print(f'convert_landmarks: wrote {done}/{len(every)} images',
                  flush=True)
    fsync_dir(osp.join(tmp, 'images'))


def _still_ours(target: str, inputs: Sequence[str]) -> None:
    for path in inputs:
        check_replaceable(target, path, CONVERSION_MARKER, _OWN_FILES,
                          COPY_AS_IS_EXTENSIONS, TOOL)


def _layout(keypoints: Sequence[str]) -> CocoLayout:
    return CocoLayout(
        keypoint_names=tuple(keypoints),
        splits=LANDMARK_SPLITS,
        tool=TOOL,
        description=f'Landmarks converted by {TOOL}',
        category='landmarks',
        supercategory='image',
        coordinates='pixels of the original image as the annotation format '
        'gives them, kept exactly; read with pixel centres at integers',
        decimals=None)


def _write_conversion(tmp: str, splits: Dict[str, List[dict]], resize,
                      progress: bool, files: Dict[str, bytes],
                      written: Sequence[str], marker: dict) -> None:
    """Writes the images and ``files`` into ``tmp``, checks them, then
    writes the marker last."""
    _write_images(tmp, splits, resize, progress)
    for name, data in files.items():
        write_synced(osp.join(tmp, name), data)
    kill_point('written')
    check_written_conversion(tmp, written)
    write_synced(osp.join(tmp, CONVERSION_MARKER),
                 dumps_json(marker, indent=1).encode())
    kill_point('checked')


def _split_counts(splits: Dict[str, List[dict]],
                  payloads: Dict[str, dict]) -> dict:
    """The summary's per-split fields: images per split, the splits
    written and those below their minimum."""
    sizes = {s: len(splits[s]) for s in LANDMARK_SPLITS}
    return dict(images_per_split=sizes,
                written=list(payloads),
                small_splits=small_splits(dict(sizes), list(payloads)))


def _spacing_counts(records: List[dict], images: str) -> dict:
    """The summary's spacing fields: where each record's spacing came
    from, and the images without one (relative to ``images``)."""
    return dict(
        spacing_sources=dict(
            Counter(r['spacing_source'] or 'unknown' for r in records)),
        images_without_spacing=[
            osp.relpath(r['path'], images) for r in records
            if r['spacing'] is None
        ])


def _marker_extra(keypoints: List[str], options: SplitOptions,
                  summary: LandmarkConversionSummary) -> dict:
    """What this converter's marker adds to the common one."""
    return dict(keypoints=keypoints,
                test_fraction=options.test_fraction,
                test_only=options.test_fraction == 1,
                duplicates=options.duplicates,
                groups=None
                if options.groups is None else osp.abspath(options.groups),
                metainfo=METAINFO_FILE,
                report=REPORT_FILE,
                faults=len(summary.faults))


def convert_landmarks(out_dir: str,
                      images: str,
                      keypoints: Sequence[str],
                      labelme: Optional[Dict[str, str]] = None,
                      csv: Optional[str] = None,
                      coco: Optional[str] = None,
                      gt: str = 'mean',
                      spacing: Optional[Union[float, Sequence[float]]] = None,
                      skip_bad: bool = False,
                      resize: Optional[Tuple[int, int]] = None,
                      test_fraction: float = 0.2,
                      num_val: Optional[int] = None,
                      num_calib: Optional[int] = None,
                      split_seed: int = 0,
                      progress: bool = True,
                      duplicates: str = 'together',
                      groups: Optional[str] = None
                      ) -> LandmarkConversionSummary:
    """Converts annotated images (see the module docstring).

    Nothing is written before every option, the output folder and every
    input have been checked; the output folder is replaced atomically.

    Args:
        out_dir (str): Output folder: new, empty, or an earlier conversion.
        images (str): The folder of images.
        keypoints (Sequence[str]): The K keypoint names, in output order.
        labelme (dict, optional): annotator -> folder of labelme JSON.
        csv (str, optional): A long-format CSV file.
        coco (str, optional): A COCO-keypoint file. Give exactly one source.
        gt (str): ``'mean'`` or an annotator's name.
        spacing (float | tuple, optional): mm/pixel (one value, or x and y)
            of images whose file has none.
        skip_bad (bool): Record faults and go on instead of stopping.
        resize (tuple, optional): (W, H): padded, resized PNG copies.
        test_fraction (float): Share of the images held out as ``test``
            (1: every image, a test-only conversion).
        num_val (int, optional): Images held out for validation (>= 1);
            None: 10 % of the rest, at least 1, at most 15.
        num_calib (int, optional): The same for temperature scaling.
        split_seed (int): Seed of the held-out selections.
        progress (bool): Print a progress line every 25 images.
        duplicates (str): ``'together'`` (each duplicate cluster in one
            split), ``'drop'`` (keep its first image by name) or
            ``'error'``.
        groups (str, optional): CSV ``image,group`` (or ``stem,group``):
            each group's images share a split.

    Returns:
        LandmarkConversionSummary: counts, annotators, faults, spacing.

    Raises:
        ConversionError: an ``InputError`` naming the option, file or label
            (a ``BadImageError`` for a fault without ``skip_bad``).
    """
    sources = AnnotationSources(labelme=labelme, csv=csv, coco=coco)
    split_options = SplitOptions(test_fraction=test_fraction, num_val=num_val,
                                 num_calib=num_calib, split_seed=split_seed,
                                 duplicates=duplicates, groups=groups)
    keypoints, resize, spacing_xy = check_landmark_options(
        keypoints, sources, resize, spacing, split_options)
    if not osp.isdir(images):
        raise ConversionError(f'--images {images}: not a folder')
    target = osp.realpath(out_dir)
    inputs = [images, *sources.paths()]
    prepare_output(out_dir, target, images, CONVERSION_MARKER, _OWN_FILES,
                   COPY_AS_IS_EXTENSIONS, TOOL)
    _still_ours(target, inputs)

    policy = BadInputPolicy(skip_bad)
    marks = read_marks(labelme, csv, coco, keypoints, policy)
    annotators = annotators_of(labelme, marks)
    if gt not in ('mean', *annotators):
        raise ConversionError(f'--gt {gt}: choose mean or one of the '
                              f'annotators: {", ".join(annotators)}')
    source = ', '.join(p for p in inputs[1:])
    paired = pair_images(images, marks, source, policy)
    records, stale = read_records(paired, marks, annotators, keypoints, gt,
                                  spacing_xy, policy, progress)
    if not records:
        raise ConversionError(f'{images}: no usable annotated images')
    records, units, found = group_records(records, images, gt, duplicates,
                                          groups)
    splits, notes = _split(records, units, split_options)
    plan = ConversionPlan(
        root=images, out_dir=target, annotators=annotators, gt=gt,
        spacing_xy=spacing_xy, split_seed=split_seed,
        num_val=len(splits['val']), num_calib=len(splits['calib']),
        resize=resize, skip=set(notes), layout=_layout(keypoints),
        info_extra=dict(spacing='per image: the file header, then '
                        '--spacing, else null (see spacing_source)',
                        metainfo=METAINFO_FILE,
                        report=REPORT_FILE))
    payloads = coco_payloads(splits, plan)
    summary = LandmarkConversionSummary(
        out_dir=out_dir, annotators=annotators, gt=gt, keypoints=keypoints,
        skipped=policy.skipped, faults=policy.faults, resize=resize,
        notes=notes, stale_image_paths=stale, duplicates=found,
        **_split_counts(splits, payloads), **_spacing_counts(records, images))

    files = {f'{split}.json': payload for split, payload in payloads.items()}
    files[REPORT_FILE] = conversion_report(summary, images)
    files = {
        name: dumps_json(v, indent=1).encode()
        for name, v in files.items()
    }
    files[METAINFO_FILE] = metainfo_source(keypoints,
                                           osp.basename(target)).encode()
    marker = conversion_marker(
        summary, plan, _marker_extra(keypoints, split_options, summary))
    build_aside_and_swap(
        out_dir, target, lambda tmp: _write_conversion(
            tmp, splits, resize, progress, files, summary.written, marker),
        lambda: _still_ours(target, inputs))
    return summary
