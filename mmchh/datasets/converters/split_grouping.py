# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Grouping step of a conversion: which images must share a split.

- Patient groups: ``--groups FILE`` (a CSV with the header ``image,group``
  or ``stem,group``; every listed image must exist in the images folder,
  and every converted image needs a group) and/or the annotation source's
  own group (a CSV ``group`` column, :attr:`~.records.Marks.group`).
- Duplicates (:mod:`.duplicates`): each cluster is kept in one split
  (``together``), reduced to its first image by name (``drop``: the others
  are not converted, and reported), or a fault (``error``). Pairs whose
  ground truths differ are kept (two readings of one radiograph are real
  data) and reported as such.

:func:`group_records` returns the records to convert, the units a split
selection moves whole (:func:`~.duplicates.split_units`) and the report.
"""
import csv
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .coco_writer import ground_truth
from .duplicates import (DuplicatePair, duplicate_clusters, find_duplicates,
                         split_units)
from .errors import ConversionError
from .records import split_image_name

__all__ = ['read_groups_file', 'group_records']

#: A ground-truth point differing by more than this (pixels of the first
#: image) makes a duplicate pair's annotations differ.
ANNOTATION_TOLERANCE_PX = 0.5


def read_groups_file(path: str) -> Dict[str, str]:
    """``image name or stem -> group`` from a ``--groups`` CSV.

    Raises:
        ConversionError: naming the file (and line) for a missing file, a
            header other than ``image,group``/``stem,group``, a row without
            two non-empty cells, or a name listed twice.
    """
    if not osp.isfile(path):
        raise ConversionError(f'--groups {path}: file does not exist')
    with open(path, newline='', encoding='utf-8-sig') as f:
        rows = list(csv.reader(f))
    header = [c.strip() for c in rows[0]] if rows else []
    if header not in (['image', 'group'], ['stem', 'group']):
        raise ConversionError(
            f'--groups {path}: the header must be "image,group" or '
            f'"stem,group"; got {",".join(header) or "an empty file"}')
    groups: Dict[str, str] = {}
    for n, row in enumerate(rows[1:], 2):
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if len(cells) != 2 or not all(cells):
            raise ConversionError(
                f'{path}:{n}: expected two non-empty cells '
                f'({header[0]},group); got {",".join(row)!r}')
        if cells[0] in groups:
            raise ConversionError(
                f'{path}:{n}: {header[0]} {cells[0]!r} is listed twice')
        groups[cells[0]] = cells[1]
    return groups


def _file_groups(listed: Dict[str, str], path: str, images: str,
                 records: Sequence[dict]) -> Dict[str, str]:
    """stem -> group of every record, from the ``--groups`` file."""
    files = [n for n in os.listdir(images) if not n.startswith('.')]
    known = set(files) | {split_image_name(n)[0] for n in files}
    missing = sorted(k for k in listed if k not in known)
    if missing:
        raise ConversionError(
            f'--groups {path}: {len(missing)} listed image(s) not in '
            f'{images}, e.g. {missing[0]!r}')
    found = {}
    for rec in records:
        name = osp.basename(rec['path'])
        group = listed.get(name, listed.get(rec['stem']))
        if group is None:
            raise ConversionError(
                f'--groups {path}: no group for image {name}; every image '
                'needs one when --groups is given')
        found[rec['stem']] = group
    return found


def _groups(records: Sequence[dict], groups_file: Optional[str],
            images: str) -> Dict[str, str]:
    """stem -> group (the file's, then the annotation source's)."""
    listed = {} if groups_file is None else _file_groups(
        read_groups_file(groups_file), groups_file, images, records)
    found = {}
    for rec in records:
        named = set(rec.get('groups') or ())
        if stem_group := listed.get(rec['stem']):
            named.add(stem_group)
        if len(named) > 1:
            raise ConversionError(
                f'{rec["path"]}: the image is given more than one group: '
                f'{", ".join(sorted(named))} (annotation source'
                f'{" and --groups " + groups_file if groups_file else ""})')
        if named:
            found[rec['stem']] = named.pop()
    return found


def _annotation_difference(a: dict, b: dict, gt: str) -> Optional[float]:
    """Largest distance (pixels of ``a``) between the two ground truths,
    ``b``'s scaled to ``a``'s size; inf when visibilities differ; None when
    either image has no ground truth for ``gt``."""
    if any(gt != 'mean' and gt not in r['anns'] for r in (a, b)):
        return None
    ta, tb = ground_truth(a['anns'], gt), ground_truth(b['anns'], gt)
    if not np.array_equal(ta.visible, tb.visible):
        return float('inf')
    if not ta.visible.any():
        return 0.0
    scale = np.asarray(a['size'], float) / np.asarray(b['size'], float)
    moved = (tb.points + 0.5) * scale - 0.5
    return float(
        np.abs(ta.points - moved)[ta.visible].max())


def _pair_entry(p: DuplicatePair, by_stem: Dict[str, dict], images: str,
                gt: str) -> dict:
    a, b = by_stem[p.first], by_stem[p.second]
    diff = _annotation_difference(a, b, gt)
    return dict(
        images=[osp.relpath(a['path'], images),
                osp.relpath(b['path'], images)],
        kind=p.kind,
        phash_distance=p.distance,
        correlation=p.correlation,
        annotations='unknown' if diff is None else
        ('differ' if diff > ANNOTATION_TOLERANCE_PX else 'same'),
        max_difference_px=None if diff is None or not np.isfinite(diff)
        else round(diff, 3))


def group_records(records: List[dict], images: str, gt: str,
                  duplicates: str = 'together',
                  groups_file: Optional[str] = None
                  ) -> Tuple[List[dict], List[Tuple[str, ...]], dict]:
    """Finds duplicates and groups; applies the ``duplicates`` policy.

    Each record (from :func:`~.landmark_records.read_records`) needs
    ``stem``, ``path``, ``size``, ``anns`` and ``hashes``; kept records
    get ``group`` and ``duplicate_cluster`` (the cluster's first stem, or
    None).

    Returns:
        tuple: (the records kept, the units of their stems, the report:
        ``pairs``, ``clusters``, ``policy``, ``dropped``, ``groups``).

    Raises:
        ConversionError: for a bad ``--groups`` file, an image in two
            groups, or (``duplicates='error'``) the first duplicate pair.
    """
    by_stem = {r['stem']: r for r in records}
    group_of = _groups(records, groups_file, images)
    pairs = find_duplicates({s: r['hashes'] for s, r in by_stem.items()})
    entries = [_pair_entry(p, by_stem, images, gt) for p in pairs]
    if entries and duplicates == 'error':
        e = entries[0]
        raise ConversionError(
            f'{e["images"][0]} and {e["images"][1]} (in {images}) are '
            f'{e["kind"]} duplicates (phash distance '
            f'{e["phash_distance"]}); {len(entries)} pair(s) in all. Remove '
            'the copies, or use --duplicates together (one split) or drop')
    clusters = duplicate_clusters(sorted(by_stem), pairs)
    dropped = [s for c in clusters
               for s in c[1:]] if duplicates == 'drop' else []
    kept = [r for r in records if r['stem'] not in set(dropped)]
    first_of = {s: c[0] for c in clusters for s in c}
    for rec in kept:
        rec['group'] = group_of.get(rec['stem'])
        rec['duplicate_cluster'] = None if duplicates == 'drop' else \
            first_of.get(rec['stem'])
    stems = sorted(r['stem'] for r in kept)
    units = split_units(stems,
                        [] if duplicates == 'drop' else clusters,
                        {s: group_of[s] for s in stems if s in group_of})
    report = dict(
        policy=duplicates,
        pairs=entries,
        clusters=[[osp.relpath(by_stem[s]['path'], images) for s in c]
                  for c in clusters],
        dropped=[osp.relpath(by_stem[s]['path'], images) for s in dropped],
        groups=len(set(group_of.values())),
        images_with_group=len(group_of))
    return kept, units, report
