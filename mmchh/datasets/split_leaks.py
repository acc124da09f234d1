# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The tools' check that a split is fit to calibrate on or to score.

A converted split (its folder holds the conversion's ``conversion.json``)
is refused

- for calibration, when it is the split the conversion marked as a test
  split (``info.role``/the marker's ``split_roles``; a conversion written
  before roles were recorded: by its split name), or when one of its
  images is also in the conversion's ``train`` split;
- for scoring (``tools/test.py``, ``tools/measure.py``), when one of its
  images is also in the ``train`` or the ``calib`` split (scoring either
  split itself included).

"The same image" means the same decoded pixels (``pixel_sha256``), the
same recorded duplicate cluster (``duplicate_cluster``: a near duplicate)
or the same patient ``group``. Splits written before the converter
recorded hashes are compared by role only, with one warning line (convert
again to compare images). The error names both files and an example pair;
``allow_overlap`` (the tools' ``--allow-split-overlap``) proceeds with a
warning line and returns what overlapped, for the outputs to record
(:func:`record_override`). A split outside a conversion is not checked.
"""
import json
import os.path as osp
import sys
from typing import Dict, List, Optional

from mmchh.utils.errors import InputError
from mmchh.utils.io import write_json
from .conversion_folder import CONVERSION_MARKER, split_role

__all__ = [
    'SplitLeakError', 'OVERRIDE_FLAG', 'loader_ann_file', 'check_split',
    'record_override'
]

#: The tools' flag that proceeds despite a leak.
OVERRIDE_FLAG = '--allow-split-overlap'
#: What a split is compared with, per use.
_REFERENCES = dict(calibrate=('train', ), score=('train', 'calib'))
#: Image fields naming the same image (first: the pixels).
_IDENTITY = (('pixel_sha256', 'same pixels'),
             ('duplicate_cluster', 'near duplicates'), ('group',
                                                        'same group'))


class SplitLeakError(InputError):
    """A split shares images with the data the model learnt from."""


def loader_ann_file(loader) -> Optional[str]:
    """The annotation file of a dataloader config (``data_root`` joined as
    MMEngine does); None when it names none."""
    dataset = (loader or {}).get('dataset') or {}
    ann = dataset.get('ann_file')
    if not isinstance(ann, str) or not ann:
        return None
    root = dataset.get('data_root') or ''
    return ann if osp.isabs(ann) or not root else osp.join(root, ann)


def _load(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f'{path}: cannot read the split ({e})') from e


def _keys(image: dict) -> List[tuple]:
    return [(field, image[field]) for field, _ in _IDENTITY
            if image.get(field) is not None]


def _overlap(images: List[dict], others: List[dict]) -> Optional[dict]:
    """How many of ``images`` share a key with ``others``, with an
    example; None when none does."""
    seen: Dict[tuple, str] = {}
    for image in others:
        for key in _keys(image):
            seen.setdefault(key, image['file_name'])
    shared, example = 0, None
    for image in images:
        hit = next((k for k in _keys(image) if k in seen), None)
        if hit is not None:
            shared += 1
            example = example or dict(
                images=[image['file_name'], seen[hit]],
                why=dict(_IDENTITY)[hit[0]])
    return None if not shared else dict(count=shared, example=example)


def _problems(ann_file: str, use: str, tool: str) -> List[dict]:
    """Every reason ``ann_file`` is unfit for ``use``."""
    folder = osp.dirname(osp.abspath(ann_file))
    marker = _load(osp.join(folder, CONVERSION_MARKER))
    roles = marker.get('split_roles') or {
        s: split_role(s)
        for s in marker.get('splits_written', [])
    }
    data = _load(ann_file)
    info = data.get('info') or {}
    role = info.get('role') or split_role(str(info.get('split')))
    problems = []
    if use == 'calibrate' and role == 'test':
        problems.append(
            dict(reason=f'it is the conversion\'s test split '
                 f'({info.get("split")})'))
    images = data.get('images') or []
    if any('pixel_sha256' not in i for i in images):
        print(f'{tool}: warning: {ann_file} was converted without pixel '
              'hashes (an older mmchh): only its role is checked; convert '
              'again to check its images against the training split',
              file=sys.stderr)
        return problems
    for split, split_use in roles.items():
        if split_use not in _REFERENCES[use]:
            continue
        other = osp.join(folder, f'{split}.json')
        found = _overlap(images, _load(other).get('images') or [])
        if found:
            problems.append(
                dict(reason=f'{found["count"]} of its {len(images)} images '
                     f'are in {other} (the {split_use} split), e.g. '
                     f'{found["example"]["images"][0]} and '
                     f'{found["example"]["images"][1]} '
                     f'({found["example"]["why"]})',
                     other_split=other,
                     **found))
    return problems


def check_split(ann_file: Optional[str],
                use: str,
                allow_overlap: bool = False,
                tool: str = 'mmchh') -> Optional[dict]:
    """Checks a split before a tool calibrates on it or scores it.

    Args:
        ann_file (str, optional): The split's JSON; None or a file outside
            a conversion: nothing to check.
        use (str): ``'calibrate'`` or ``'score'``.
        allow_overlap (bool): Proceed despite a leak (one warning line).
        tool (str): Names the tool in the warning lines.

    Returns:
        dict | None: None when nothing overlapped; with ``allow_overlap``
        and a leak, the record for the outputs (``overridden``, ``split``,
        ``use``, ``problems``).

    Raises:
        SplitLeakError: the leak, naming both files and an example pair
            (without ``allow_overlap``).
    """
    if not ann_file or not osp.isfile(ann_file) or not osp.isfile(
            osp.join(osp.dirname(osp.abspath(ann_file)),
                     CONVERSION_MARKER)):
        return None
    problems = _problems(ann_file, use, tool)
    if not problems:
        return None
    what = 'calibrate on' if use == 'calibrate' else 'score'
    reasons = '; '.join(p['reason'] for p in problems)
    if not allow_overlap:
        raise SplitLeakError(
            f'refusing to {what} {ann_file}: {reasons}; use a held-out '
            f'split, or {OVERRIDE_FLAG} to proceed (recorded in the '
            'outputs)')
    print(f'{tool}: warning: {OVERRIDE_FLAG}: proceeding to {what} '
          f'{ann_file} although {reasons}', file=sys.stderr)
    return dict(overridden=True, split=ann_file, use=use, problems=problems)


def record_override(path: str, record: Optional[dict]) -> None:
    """Adds ``record`` (from :func:`check_split`) to the JSON file at
    ``path`` as ``split_check``; nothing when None."""
    if record is None:
        return
    data = _load(path)
    data['split_check'] = record
    write_json(path, data)
