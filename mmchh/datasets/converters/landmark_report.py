# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What :func:`~.landmarks.convert_landmarks` reports and describes: its
summary, the content of ``conversion_report.json`` and the text of
``metainfo.py``."""
import os.path as osp
import pprint
from dataclasses import dataclass, field
from typing import Dict, List, Sequence

from .duplicates import MIN_CORRELATION, PHASH_MAX_DISTANCE
from .splits import LANDMARK_SPLITS
from .summary import SplitSummary

__all__ = [
    'TOOL', 'METAINFO_FILE', 'REPORT_FILE', 'LandmarkConversionSummary',
    'conversion_report', 'metainfo_source'
]

TOOL = 'tools/convert_landmarks.py'
METAINFO_FILE = 'metainfo.py'
REPORT_FILE = 'conversion_report.json'
#: Keypoint colours (RGB), cycled.
_PALETTE = ((255, 128, 0), (0, 200, 255), (0, 255, 0), (255, 0, 255),
            (255, 255, 0), (0, 128, 255), (255, 0, 0), (128, 0, 255))


@dataclass
class LandmarkConversionSummary(SplitSummary):
    """What a landmark conversion wrote, and every fault it met (see
    :class:`~.summary.SplitSummary`).

    ``faults`` holds the :class:`~.validation.BadInputPolicy` records
    (``file``, ``label``, ``problem``, ``action``); ``skipped`` the same as
    (file, problem) pairs; ``notes`` maps a split to why it was not written.
    """
    keypoints: List[str] = field(default_factory=list)
    faults: List[dict] = field(default_factory=list)
    spacing_sources: Dict[str, int] = field(default_factory=dict)
    images_without_spacing: List[str] = field(default_factory=list)
    stale_image_paths: List[dict] = field(default_factory=list)
    duplicates: dict = field(default_factory=dict)
    small_splits: List[dict] = field(default_factory=list)

    def format(self, max_faults: int = 20) -> str:
        lines = self.head_lines('convert_landmarks', LANDMARK_SPLITS,
                                len(self.keypoints))
        sources = ', '.join(
            f'{n} unknown' if s == 'unknown' else f'{n} from {s}'
            for s, n in sorted(self.spacing_sources.items()))
        lines.append(f'  spacing: {sources or "none known"}')
        if self.images_without_spacing:
            lines.append(
                f'  {len(self.images_without_spacing)} image(s) without '
                'spacing (written as null; give --spacing MM to set it): '
                f'{", ".join(self.images_without_spacing[:5])}'
                f'{" ..." if len(self.images_without_spacing) > 5 else ""}')
        if self.stale_image_paths:
            first = self.stale_image_paths[0]
            lines.append(
                f'  note: {len(self.stale_image_paths)} annotation file(s) '
                'name another image in imagePath (paired by file stem '
                f'instead), e.g. {first["file"]} names {first["imagePath"]}'
                f' for {first["image"]}')
        lines += self.duplicate_lines()
        for small in self.small_splits:
            lines.append(f'  warning: {small["split"]} has {small["images"]} '
                         f'image(s), fewer than {small["minimum"]}: '
                         f'{small["why"]}')
        lines.append(f'  faults: {len(self.faults)} (every one in '
                     f'{osp.join(self.out_dir, REPORT_FILE)})')
        for fault in self.faults[:max_faults]:
            lines.append(f'    {fault["problem"]} -> {fault["action"]}')
        if len(self.faults) > max_faults:
            lines.append(f'    ... and {len(self.faults) - max_faults} more')
        return '\n'.join(lines)


    def duplicate_lines(self, max_pairs: int = 20) -> List[str]:
        """The duplicate pairs, what was done, and the groups."""
        found = self.duplicates or {}
        pairs = found.get('pairs', [])
        lines = []
        if found.get('images_with_group'):
            lines.append(f'  groups: {found["groups"]} patient group(s) over '
                         f'{found["images_with_group"]} image(s), each kept '
                         'in one split')
        if not pairs:
            return lines + ['  duplicates: none found']
        action = dict(together='each cluster kept in one split',
                      drop=f'{len(found["dropped"])} image(s) dropped (the '
                      'first of each cluster by name kept)')[found['policy']]
        lines.append(f'  duplicates: {len(pairs)} pair(s) in '
                     f'{len(found["clusters"])} cluster(s), {action}')
        for p in pairs[:max_pairs]:
            same = dict(same='same annotations',
                        differ='annotations differ' + (
                            f' by up to {p["max_difference_px"]:g} px'
                            if p['max_difference_px'] is not None else
                            ' (visibility)'),
                        unknown='annotations not compared')[p['annotations']]
            lines.append(f'    {p["images"][0]} ~ {p["images"][1]}: '
                         f'{p["kind"]} (phash distance '
                         f'{p["phash_distance"]}), {same}')
        if len(pairs) > max_pairs:
            lines.append(f'    ... and {len(pairs) - max_pairs} more')
        for name in found['dropped']:
            lines.append(f'    dropped {name} (a duplicate)')
        return lines


def metainfo_source(keypoints: Sequence[str], dataset_name: str) -> str:
    """The text of ``metainfo.py``: MMPose ``dataset_info`` for these
    keypoints (no skeleton, nothing swaps, uniform weights and sigmas)."""
    info = dict(
        dataset_name=dataset_name,
        paper_info={},
        keypoint_info={
            i:
            dict(name=name,
                 id=i,
                 color=list(_PALETTE[i % len(_PALETTE)]),
                 type='',
                 swap='')
            for i, name in enumerate(keypoints)
        },
        skeleton_info={},
        joint_weights=[1.0] * len(keypoints),
        # OKS sigmas are not used for landmarks (errors are in mm); a
        # uniform value keeps MMPose's metainfo parser satisfied
        sigmas=[0.025] * len(keypoints))
    return (f'# MMPose dataset metainfo written by {TOOL}.\n'
            '# Keypoints in the order of the converted JSON; no skeleton;\n'
            '# nothing swaps under flipping (flip_indices = identity).\n'
            f'dataset_info = {pprint.pformat(info, sort_dicts=False)}\n')


def conversion_report(summary: LandmarkConversionSummary, images: str) -> dict:
    """The content of :data:`REPORT_FILE`."""
    return dict(
        tool=TOOL,
        images=osp.abspath(images),
        images_per_split=summary.images_per_split,
        small_splits=dict(
            rule='a written split with fewer images than its minimum '
            '(mmchh.datasets.converters.split_sizes.SMALL_SPLIT_IMAGES)',
            splits=summary.small_splits),
        ground_truth=summary.gt,
        missing_landmarks='a landmark an annotator did not usably mark is '
        'invisible (v = 0) in keypoints_<ANNOTATOR>; the ground truth mean '
        'comes from the other annotators; a landmark nobody marked (or the '
        '--gt annotator did not) is invisible in the ground truth; an image '
        'without any usable landmark is skipped',
        faults=summary.faults,
        spacing_sources=summary.spacing_sources,
        images_without_spacing=summary.images_without_spacing,
        duplicates=dict(
            rule='exact: the same decoded pixels (pixel_sha256); near: '
            f'phash Hamming distance <= {PHASH_MAX_DISTANCE} of 64, verified '
            f'on the pixels (32x32 detail correlation >= {MIN_CORRELATION})'
            '; a cluster joins pairs transitively, and its images (like a '
            'patient group\'s) share one split',
            **summary.duplicates),
        stale_image_paths=dict(
            count=len(summary.stale_image_paths),
            note='imagePath is never used: annotation files are paired with '
            'images by file stem',
            files=summary.stale_image_paths))
