# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Converts the ISBI 2015 cephalometric release to COCO-keypoint JSON.

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

Every image record carries the hashes of its pixels (``pixel_sha256``,
``phash``: :mod:`.duplicates`). Duplicates among the release's images are
reported in the summary and the marker; the release's own splits are
kept, a duplicate cluster within the training images is held out whole
(so val and calib hold at least their counts).

Nothing is silently dropped: bad input (including two files with the same
name in one folder, e.g. ``002.bmp`` and ``002.png``) stops the conversion
with an error naming the file (and line), unless ``skip_bad`` is set, in
which case the image is skipped with a warning and counted in the summary.
Options (``resize``, ``num_val``, ``num_calib``, ``spacing``,
``split_seed``) and the output folder are validated before anything is
read or written.

The steps, one module each: :mod:`.isbi_reader` (layout, annotations,
images), :mod:`.validation` (options, bad-input policy), :mod:`.splits`
(val/calib hold-out), :mod:`.resize` (padded resize, coordinate mapping),
:mod:`.coco_writer` (the JSON) and :mod:`.atomic_output`: the output
folder is built beside ``OUT_DIR``, checks itself (every JSON is re-read
and each image it names must exist with the recorded size), gets
``conversion.json`` last and is swapped in atomically, so a run killed at
any moment (SIGKILL included) leaves ``OUT_DIR`` with either the complete
previous conversion or the complete new one. The next run removes what
killed runs left. A conversion only ever replaces its own earlier output:
an existing non-empty ``OUT_DIR`` without ``conversion.json`` or split
JSONs, or holding anything a conversion does not write, or containing the
input release, is refused with an error naming it.
"""
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmchh.utils.io import dumps_json
from ..ceph_meta import ISBI_SPACING_MM, NUM_CEPH_LANDMARKS
from .atomic_output import (build_aside_and_swap, check_replaceable,
                            fsync_dir, kill_point, prepare_output,
                            write_synced)
from .coco_writer import (CONVERSION_MARKER, ConversionPlan,
                          check_written_conversion, coco_payloads,
                          conversion_marker)
from .duplicates import duplicate_clusters, find_duplicates, split_units
from .errors import ConversionError
from .isbi_reader import (IMAGE_EXTENSIONS, find_annotator_dirs,
                          read_annotation_index, read_isbi_release)
from .resize import padded_resize_params, write_resized_image
from .splits import SPLITS, hold_out_splits
from .summary import SplitSummary
from .validation import BadInputPolicy, validate_options

__all__ = ['ConversionSummary', 'convert_isbi']

#: What a conversion writes besides ``images/`` and the marker.
_SPLIT_FILES = tuple(f'{s}.json' for s in SPLITS)
_TOOL = 'tools/convert_isbi.py'


@dataclass
class ConversionSummary(SplitSummary):
    """What an ISBI conversion wrote (and skipped); see
    :class:`~.summary.SplitSummary`. ``duplicates`` lists the duplicate
    pairs found (``images``, ``splits``, ``kind``, ``phash_distance``)."""
    duplicates: List[dict] = field(default_factory=list)

    def format(self) -> str:
        lines = self.head_lines('convert_isbi', SPLITS, NUM_CEPH_LANDMARKS)
        lines.append(f'  skipped {len(self.skipped)} bad image(s)')
        for path, why in self.skipped:
            lines.append(f'    {path}: {why}')
        lines.append(f'  duplicates: {len(self.duplicates)} pair(s)')
        for p in self.duplicates:
            lines.append(f'    {p["images"][0]} ({p["splits"][0]}) ~ '
                         f'{p["images"][1]} ({p["splits"][1]}): {p["kind"]} '
                         f'(phash distance {p["phash_distance"]})')
        return '\n'.join(lines)


def _duplicates(records: Dict[str, List[dict]]
                ) -> Tuple[List[dict], List[List[str]]]:
    """The release's duplicate pairs (reported; the release's own splits
    are kept) and the clusters (stems); clustered records get their
    ``duplicate_cluster``."""
    split_of = {r['stem']: s for s in SPLITS for r in records[s]}
    by_stem = {r['stem']: r for s in SPLITS for r in records[s]}
    pairs = find_duplicates({s: r['hashes'] for s, r in by_stem.items()})
    clusters = duplicate_clusters(sorted(by_stem), pairs)
    for cluster in clusters:
        for stem in cluster:
            by_stem[stem]['duplicate_cluster'] = cluster[0]
    return [
        dict(images=[p.first, p.second],
             splits=[split_of[p.first], split_of[p.second]],
             kind=p.kind, phash_distance=p.distance) for p in pairs
    ], clusters


def _write_resized_images(tmp: str, records: Dict[str, List[dict]],
                          resize: Tuple[int, int], progress: bool) -> None:
    """Writes every record's padded, resized PNG to ``tmp/images/``."""
    os.mkdir(osp.join(tmp, 'images'))
    total = sum(len(v) for v in records.values())
    done = 0
    for split in SPLITS:
        for rec in records[split]:
            write_resized_image(rec['path'],
                                osp.join(tmp, 'images', f'{rec["stem"]}.png'),
                                padded_resize_params(*rec['size'], resize))
            done += 1
            kill_point(f'image-{done}')
            if progress and (done % 10 == 0 or done == total):
                print(f'convert_isbi: resized {done}/{total} images',
                      flush=True)
    fsync_dir(osp.join(tmp, 'images'))


def _build_and_swap(out_dir: str, plan: ConversionPlan,
                    records: Dict[str, List[dict]], payloads: Dict[str, dict],
                    summary: ConversionSummary, progress: bool) -> None:
    """Writes the conversion beside ``plan.out_dir`` (``out_dir``'s real
    path), checks it, writes the marker last and swaps it in; a failure
    removes the half-built one."""

    def write(tmp: str) -> None:
        if summary.resize is not None:
            _write_resized_images(tmp, records, summary.resize, progress)
        for split, payload in payloads.items():
            write_synced(osp.join(tmp, f'{split}.json'),
                         dumps_json(payload, indent=1).encode())
        kill_point('written')
        check_written_conversion(tmp, summary.written)
        marker = conversion_marker(summary, plan,
                                   extra=dict(duplicates=summary.duplicates))
        write_synced(osp.join(tmp, CONVERSION_MARKER),
                     dumps_json(marker, indent=1).encode())
        kill_point('checked')

    build_aside_and_swap(
        out_dir, plan.out_dir, write, lambda: check_replaceable(
            plan.out_dir, plan.root, CONVERSION_MARKER, _SPLIT_FILES,
            IMAGE_EXTENSIONS, _TOOL))


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
    resize, spacing_xy = validate_options(resize, spacing, num_val, num_calib,
                                          split_seed)
    if not osp.isdir(root):
        raise ConversionError(f'{root}: not a folder')
    target = osp.realpath(out_dir)  # a symlinked OUT_DIR: swap its target
    prepare_output(out_dir, target, root, CONVERSION_MARKER, _SPLIT_FILES,
                   IMAGE_EXTENSIONS, _TOOL)
    annotator_dirs = find_annotator_dirs(root)
    annotators = list(annotator_dirs)
    if gt not in ('mean', *annotators):
        raise ConversionError(
            f'--gt {gt}: choose mean or one of the annotators found in '
            f'{root}: {", ".join(annotators)}')
    policy = BadInputPolicy(skip_bad)
    index = read_annotation_index(annotator_dirs, policy)
    records, notes = read_isbi_release(root, index, policy)

    if not records['train']:
        raise ConversionError(f'{root}: no usable training images')
    pairs, clusters = _duplicates(records)
    train = [r['stem'] for r in records['train']]
    held = hold_out_splits(train, num_val, num_calib, split_seed,
                           split_units(train, [[s for s in c if s in train]
                                               for c in clusters]))
    by_stem = {r['stem']: r for r in records['train']}
    for split in ('train', 'val', 'calib'):
        records[split] = [by_stem[s] for s in held[split]]

    plan = ConversionPlan(root=root, out_dir=target, annotators=annotators,
                          gt=gt, spacing_xy=spacing_xy, split_seed=split_seed,
                          num_val=len(held['val']),
                          num_calib=len(held['calib']), resize=resize,
                          skip=set(notes))
    payloads = coco_payloads(records, plan)
    summary = ConversionSummary(
        out_dir=out_dir,
        images_per_split={s: len(records[s])
                          for s in SPLITS},
        annotators=annotators,
        gt=gt,
        skipped=policy.skipped,
        resize=resize,
        notes=notes,
        written=list(payloads),
        duplicates=pairs)
    # everything is checked: build the new conversion beside the old one
    _build_and_swap(out_dir, plan, records, payloads, summary, progress)
    return summary
